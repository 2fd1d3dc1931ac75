"""TCP segments and options (RFC 9293 §3.1, RFC 7323, RFC 2018)."""

from __future__ import annotations

import struct

from ..buffers import ReadableBuffer, WritableBuffer
from ..stats import DropReason
from .checksum import checksum, fold, pseudo_header_sum
from .ip import PROTO_TCP, IpPacket
from .malformed import Malformed

__all__ = [
    "TCP_HEADER",
    "FIN",
    "SYN",
    "RST",
    "PSH",
    "ACK",
    "URG",
    "ECE",
    "CWR",
    "TcpOptions",
    "TcpSegment",
    "parse_tcp",
    "encode_options",
    "write_tcp",
]

TCP_HEADER = 20
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

_TCP = struct.Struct("!HHIIHHHH")
_CHECKSUM = struct.Struct("!H")
_U16 = struct.Struct("!H")
_U32_PAIR = struct.Struct("!II")

_OPT_EOL = 0
_OPT_NOP = 1
_OPT_MSS = 2
_OPT_WSCALE = 3
_OPT_SACK_PERMITTED = 4
_OPT_SACK = 5
_OPT_TIMESTAMP = 8
# RFC 7323 §2.3: shift counts above 14 are treated as 14.
_MAX_WSCALE = 14


# Read by __eq__ and __repr__ (a class compiled with mypyc has no __slots__ to read).
_OPTION_FIELDS = ("mss", "wscale", "sack_permitted", "sack_blocks", "ts_val", "ts_ecr")


class TcpOptions:
    """The TCP options the stack understands; absent ones are ``None``/``False``/empty.

    RFC 9293 §3.2: unknown options are skipped by their length. A known option with the
    wrong length is ignored, as if absent.
    """

    __slots__ = _OPTION_FIELDS

    def __init__(
        self,
        mss: int | None = None,
        wscale: int | None = None,
        sack_permitted: bool = False,
        sack_blocks: tuple[tuple[int, int], ...] = (),
        ts_val: int | None = None,
        ts_ecr: int = 0,
    ) -> None:
        self.mss = mss
        self.wscale = wscale
        self.sack_permitted = sack_permitted
        self.sack_blocks = sack_blocks
        self.ts_val = ts_val
        self.ts_ecr = ts_ecr

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TcpOptions):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _OPTION_FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _OPTION_FIELDS)
        return f"TcpOptions({fields})"


_NO_OPTIONS = TcpOptions()


class TcpSegment:
    """One parsed TCP segment. ``payload`` is a view into the packet."""

    __slots__ = ("sport", "dport", "seq", "ack", "flags", "window", "urgent", "options", "payload", "ce")

    def __init__(
        self,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        urgent: int,
        options: TcpOptions,
        payload: memoryview,
        ce: bool = False,
    ) -> None:
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.urgent = urgent
        self.options = options
        self.payload = payload
        # RFC 3168 §5: the IP header said Congestion Experienced (ECN field 11).
        self.ce = ce


def parse_tcp(packet: IpPacket, verify: bool) -> TcpSegment:
    """Parse and verify the TCP segment an IP packet carries."""
    segment = packet.payload
    size = len(segment)
    if size < TCP_HEADER:
        raise Malformed(DropReason.TRUNCATED)
    sport, dport, seq, ack, offset_flags, window, _csum, urgent = _TCP.unpack_from(segment)
    header_len = (offset_flags >> 12) * 4
    if header_len < TCP_HEADER or header_len > size:
        raise Malformed(DropReason.BAD_TCP_HEADER)
    # RFC 9293 §3.1: the checksum covers the pseudo-header and the whole segment.
    if verify and (pseudo_header_sum(packet.src, packet.dst, PROTO_TCP, size) + fold(segment)) % 0xFFFF:
        raise Malformed(DropReason.BAD_L4_CHECKSUM)
    options = _parse_options(segment[TCP_HEADER:header_len]) if header_len > TCP_HEADER else _NO_OPTIONS
    # RFC 3168 §5: the ECN field, the low bits of the TOS or traffic class byte.
    header = packet.header
    ecn = header[1] & 3 if packet.version == 4 else (header[1] >> 4) & 3
    return TcpSegment(
        sport, dport, seq, ack, offset_flags & 0xFF, window, urgent, options, segment[header_len:], ecn == 3
    )


_TIMESTAMP_ONLY = bytes((_OPT_NOP, _OPT_NOP, _OPT_TIMESTAMP, 10))


def _parse_options(raw: memoryview) -> TcpOptions:
    if len(raw) == 12 and raw[:4] == _TIMESTAMP_ONLY:
        # The shape of nearly every segment of an established connection (RFC 7323
        # Appendix A): NOP, NOP, timestamps. Read it without the walk.
        ts_val, ts_ecr = _U32_PAIR.unpack_from(raw, 4)
        return TcpOptions(ts_val=ts_val, ts_ecr=ts_ecr)
    options = TcpOptions()
    index = 0
    end = len(raw)
    while index < end:
        kind = raw[index]
        if kind == _OPT_EOL:
            break
        if kind == _OPT_NOP:
            index += 1
            continue
        # RFC 9293 §3.2: every other option has a length byte that counts kind and length.
        if index + 1 >= end:
            raise Malformed(DropReason.BAD_TCP_OPTIONS)
        length = raw[index + 1]
        if length < 2 or index + length > end:
            raise Malformed(DropReason.BAD_TCP_OPTIONS)
        body = index + 2
        if kind == _OPT_MSS and length == 4:
            options.mss = _U16.unpack_from(raw, body)[0]
        elif kind == _OPT_WSCALE and length == 3:
            options.wscale = min(raw[body], _MAX_WSCALE)
        elif kind == _OPT_SACK_PERMITTED and length == 2:
            options.sack_permitted = True
        elif kind == _OPT_SACK and length in (10, 18, 26, 34):
            # RFC 2018 §3: one to four (left edge, right edge) pairs.
            options.sack_blocks = tuple(_U32_PAIR.iter_unpack(raw[body : index + length]))
        elif kind == _OPT_TIMESTAMP and length == 10:
            options.ts_val, options.ts_ecr = _U32_PAIR.unpack_from(raw, body)
        index += length
    return options


def encode_options(options: TcpOptions) -> bytes:
    """Encode options in the order Linux sends them, padded with NOPs to 32-bit words.

    MSS, then SACK-permitted and timestamps (sharing one word as RFC 7323 Appendix A
    suggests), window scale, then SACK blocks.
    """
    out = bytearray()
    if options.mss is not None:
        out += struct.pack("!BBH", _OPT_MSS, 4, options.mss)
    if options.ts_val is not None:
        if options.sack_permitted:
            out += bytes((_OPT_SACK_PERMITTED, 2))
        else:
            out += bytes((_OPT_NOP, _OPT_NOP))
        out += struct.pack("!BBII", _OPT_TIMESTAMP, 10, options.ts_val, options.ts_ecr)
    elif options.sack_permitted:
        out += bytes((_OPT_NOP, _OPT_NOP, _OPT_SACK_PERMITTED, 2))
    if options.wscale is not None:
        out += bytes((_OPT_NOP, _OPT_WSCALE, 3, options.wscale))
    if options.sack_blocks:
        out += bytes((_OPT_NOP, _OPT_NOP, _OPT_SACK, 2 + 8 * len(options.sack_blocks)))
        for left, right in options.sack_blocks:
            out += _U32_PAIR.pack(left, right)
    if len(out) > 40:
        raise ValueError("TCP options exceed 40 bytes")
    return bytes(out)


def write_tcp(
    buf: WritableBuffer,
    offset: int,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes,
    payload: ReadableBuffer,
) -> None:
    """Write a whole TCP segment (header, options, payload, checksum) at ``offset``."""
    header_len = TCP_HEADER + len(options)
    length = header_len + len(payload)
    _TCP.pack_into(buf, offset, sport, dport, seq, ack, (header_len << 10) | flags, window, 0, 0)
    if options:
        buf[offset + TCP_HEADER : offset + header_len] = options
    buf[offset + header_len : offset + length] = payload
    residue = pseudo_header_sum(src, dst, PROTO_TCP, length) + fold(memoryview(buf)[offset : offset + length])
    _CHECKSUM.pack_into(buf, offset + 16, checksum(residue))
