"""Reading and writing capture files: classic pcap and pcapng.

The blocks and record headers are encoded and decoded by dpkt's codecs
(``dpkt.pcap.FileHdr``/``PktHdr``, ``dpkt.pcapng.*Block``); this module walks the file
itself, because dpkt's readers keep only the first pcapng interface and drop what a
replay needs (each packet's interface, direction flags and original length, exact
nanosecond timestamps). See docs/pcap.md for the measurements behind the choice.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, cast

import dpkt  # type: ignore[import-untyped]
import dpkt.pcap  # type: ignore[import-untyped]
import dpkt.pcapng  # type: ignore[import-untyped]

from .linktypes import LINKTYPE_RAW, Direction, ip_packet, link_direction

__all__ = [
    "CaptureFormatError",
    "CapturedPacket",
    "CaptureReader",
    "CaptureWriter",
    "Interface",
    "read_packets",
]

Format = Literal["pcap", "pcapng"]
ByteOrder = Literal["little", "big"]
PathLike = str | os.PathLike[str]

# pcap magic numbers as read big-endian: microsecond and nanosecond timestamps.
_PCAP_MAGIC = {0xA1B2C3D4: (">", 10**6), 0xD4C3B2A1: ("<", 10**6), 0xA1B23C4D: (">", 10**9), 0x4D3CB2A1: ("<", 10**9)}
_PCAPNG_SHB = 0x0A0D0D0A
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_BT_IDB, _BT_PB, _BT_SPB, _BT_ISB, _BT_EPB = 1, 2, 3, 5, 6
_OPT_END, _OPT_FLAGS = 0, 2
_IF_NAME, _IF_TSRESOL, _IF_TSOFFSET = 2, 9, 14
_ISB_STARTTIME, _ISB_ENDTIME, _ISB_IFRECV, _ISB_IFDROP = 2, 3, 4, 5
_SHB_USERAPPL = 4
_MAX_BLOCK = 1 << 28
SNAPLEN = 262144
"""Largest packet recorded whole (tcpdump's default); IP packets never come close."""


class CaptureFormatError(ValueError):
    """The file is not a pcap or pcapng file this reader understands, or is damaged."""


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface: a pcap file has one, a pcapng section any number."""

    linktype: int
    name: str | None = None
    snaplen: int = 0
    resolution: int = 10**6
    """Timestamp ticks per second (``if_tsresol``; 10**6 or 10**9 in pcap files)."""
    offset: int = 0
    """Seconds added to every timestamp (pcapng ``if_tsoffset``)."""


@dataclass(frozen=True, slots=True)
class CapturedPacket:
    """One packet of a capture file, as captured: link-layer header included."""

    timestamp: float
    """Seconds, as the file records them (offset applied)."""
    data: bytes
    """The captured bytes (``length`` of them or fewer if the capture cut them)."""
    linktype: int
    interface: int = 0
    """Index of the interface in its pcapng section (0 in pcap files)."""
    length: int = 0
    """The packet's length on the wire."""
    direction: Direction | None = None
    """Which way it went, if the capture says (pcapng flags, Linux cooked headers)."""

    @property
    def truncated(self) -> bool:
        """The capture kept only the first bytes of the packet (its snap length)."""
        return len(self.data) < self.length

    def ip(self) -> memoryview | None:
        """The IPv4 or IPv6 packet inside, link-layer header removed; ``None`` for
        other protocols and unknown link types."""
        return ip_packet(self.linktype, self.data)


def _open(source: PathLike | IO[bytes], mode: str) -> tuple[IO[bytes], bool]:
    if isinstance(source, (str, os.PathLike)):
        return open(source, mode + "b"), True  # noqa: SIM115 - closed by the owner
    return source, False


def _options(block: Any) -> dict[int, bytes]:
    """A dpkt block's options by code (the first of each)."""
    found: dict[int, bytes] = {}
    for option in getattr(block, "opts", ()):
        if option.code == _OPT_END:
            break
        found.setdefault(option.code, bytes(option.data))
    return found


def _resolution(value: bytes | None) -> int:
    """``if_tsresol``: the high bit picks a power of two, else a power of ten."""
    if not value:
        return 10**6
    exponent = value[0] & 0x7F
    return int(2**exponent if value[0] & 0x80 else 10**exponent)


def _flags_direction(flags: int) -> Direction | None:
    bits = flags & 0b11
    if bits == 1:
        return Direction.INBOUND
    if bits == 2:
        return Direction.OUTBOUND
    return None


class CaptureReader:
    """Reads a pcap or pcapng file, whichever it is, in either byte order.

    Iterate over it for :class:`CapturedPacket` objects. ``format``, ``interfaces``
    (as far as read), ``position`` and ``size`` (bytes) describe the file; a file cut
    short in its last record (a recorder killed mid-write) ends the iteration with
    ``cut_short`` set instead of raising.
    """

    def __init__(self, source: PathLike | IO[bytes]) -> None:
        self._file, self._owned = _open(source, "r")
        self.name = str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<stream>")
        self.size: int | None = None
        try:
            self.size = os.fstat(self._file.fileno()).st_size
        except (OSError, io.UnsupportedOperation, AttributeError):
            pass
        self.position = 0
        self.cut_short = False
        self.interfaces: list[Interface] = []
        head = self._read(4)
        if len(head) < 4:
            self.close()
            raise CaptureFormatError(f"{self.name}: too short for a capture file")
        magic = int.from_bytes(head, "big")
        self.format: Format
        if magic == _PCAPNG_SHB:
            self.format = "pcapng"
            self._order = "<"
            self._head = head
        elif magic in _PCAP_MAGIC:
            self.format = "pcap"
            self._order, resolution = _PCAP_MAGIC[magic]
            rest = self._read(20)
            if len(rest) < 20:
                self.close()
                raise CaptureFormatError(f"{self.name}: pcap header cut short")
            header = (dpkt.pcap.LEFileHdr if self._order == "<" else dpkt.pcap.FileHdr)(head + rest)
            self.interfaces.append(Interface(int(header.linktype) & 0x0FFFFFFF, None, int(header.snaplen), resolution))
        else:
            self.close()
            raise CaptureFormatError(f"{self.name}: not a pcap or pcapng file (magic {head.hex()})")

    @property
    def byte_order(self) -> ByteOrder:
        """The byte order of the (current pcapng section of the) file."""
        return "little" if self._order == "<" else "big"

    def _read(self, count: int) -> bytes:
        data = self._file.read(count)
        self.position += len(data)
        return data

    def __iter__(self) -> Iterator[CapturedPacket]:
        if self.format == "pcap":
            return self._pcap_packets()
        return self._pcapng_packets()

    def _pcap_packets(self) -> Iterator[CapturedPacket]:
        header_class = dpkt.pcap.LEPktHdr if self._order == "<" else dpkt.pcap.PktHdr
        interface = self.interfaces[0]
        linktype, resolution = interface.linktype, interface.resolution
        read = self._read
        while True:
            raw = read(16)
            if len(raw) < 16:
                self.cut_short = bool(raw)
                return
            header = header_class(raw)
            caplen = header.caplen
            if caplen > _MAX_BLOCK:
                raise CaptureFormatError(f"{self.name}: record of {caplen} bytes at {self.position - 16}")
            data = read(caplen)
            if len(data) < caplen:
                self.cut_short = True
                return
            ticks = header.tv_sec * resolution + header.tv_usec
            yield CapturedPacket(
                ticks / resolution, data, linktype, 0, max(header.len, caplen), link_direction(linktype, data)
            )

    def _pcapng_packets(self) -> Iterator[CapturedPacket]:
        read = self._read
        head: bytes = self._head
        while True:
            if len(head) < 8:
                head += read(8 - len(head))
                if len(head) < 8:
                    self.cut_short = bool(head)
                    return
            block_type = int.from_bytes(head[:4], "big")
            if block_type == _PCAPNG_SHB:
                bom = read(4)
                if len(bom) < 4:
                    self.cut_short = True
                    return
                if int.from_bytes(bom, "big") == _BYTE_ORDER_MAGIC:
                    self._order = ">"
                elif int.from_bytes(bom, "little") == _BYTE_ORDER_MAGIC:
                    self._order = "<"
                else:
                    raise CaptureFormatError(f"{self.name}: bad pcapng byte-order magic at {self.position - 12}")
                head += bom
            else:
                block_type = struct.unpack(self._order + "I", head[:4])[0]
            length = struct.unpack(self._order + "I", head[4:8])[0]
            start = self.position - len(head)
            if length < 12 or length % 4 or length > _MAX_BLOCK:
                raise CaptureFormatError(f"{self.name}: bad pcapng block length {length} at {start}")
            body = read(length - len(head))
            if len(body) < length - len(head):
                self.cut_short = True
                return
            block = head + body
            head = b""
            little = self._order == "<"
            try:
                if block_type == _PCAPNG_SHB:
                    shb = (dpkt.pcapng.SectionHeaderBlockLE if little else dpkt.pcapng.SectionHeaderBlock)(block)
                    if shb.v_major != 1:
                        raise CaptureFormatError(f"{self.name}: pcapng version {shb.v_major}.{shb.v_minor}")
                    self.interfaces = []
                elif block_type == _BT_IDB:
                    idb = (
                        dpkt.pcapng.InterfaceDescriptionBlockLE if little else dpkt.pcapng.InterfaceDescriptionBlock
                    )(block)
                    options = _options(idb)
                    name = options.get(_IF_NAME)
                    offset = options.get(_IF_TSOFFSET)
                    self.interfaces.append(
                        Interface(
                            int(idb.linktype),
                            name.rstrip(b"\0").decode("utf-8", "replace") if name is not None else None,
                            int(idb.snaplen),
                            _resolution(options.get(_IF_TSRESOL)),
                            struct.unpack(self._order + "q", offset)[0] if offset and len(offset) == 8 else 0,
                        )
                    )
                elif block_type in (_BT_EPB, _BT_PB):
                    if block_type == _BT_EPB:
                        epb = (dpkt.pcapng.EnhancedPacketBlockLE if little else dpkt.pcapng.EnhancedPacketBlock)(block)
                    else:
                        epb = (dpkt.pcapng.PacketBlockLE if little else dpkt.pcapng.PacketBlock)(block)
                    yield self._packet(epb)
                elif block_type == _BT_SPB:
                    yield self._simple_packet(block)
            except (dpkt.UnpackError, dpkt.NeedData, struct.error, IndexError) as error:
                raise CaptureFormatError(f"{self.name}: damaged pcapng block at {start}: {error}") from error

    def _interface(self, index: int) -> Interface:
        if index >= len(self.interfaces):
            raise CaptureFormatError(f"{self.name}: packet on interface {index}, which no IDB describes")
        return self.interfaces[index]

    def _packet(self, epb: Any) -> CapturedPacket:
        index = int(epb.iface_id)
        interface = self._interface(index)
        data = bytes(epb.pkt_data)
        flags = _options(epb).get(_OPT_FLAGS)
        direction = (
            _flags_direction(struct.unpack(self._order + "I", flags)[0])
            if flags is not None and len(flags) == 4
            else link_direction(interface.linktype, data)
        )
        ticks = (int(epb.ts_high) << 32) | int(epb.ts_low)
        return CapturedPacket(
            interface.offset + ticks / interface.resolution,
            data,
            interface.linktype,
            index,
            max(int(epb.pkt_len), len(data)),
            direction,
        )

    def _simple_packet(self, block: bytes) -> CapturedPacket:
        # A Simple Packet Block: interface 0, no timestamp; dpkt has no codec for it.
        interface = self._interface(0)
        length = struct.unpack(self._order + "I", block[8:12])[0]
        caplen = min(length, interface.snaplen or length, len(block) - 16)
        data = bytes(block[12 : 12 + caplen])
        return CapturedPacket(
            float(interface.offset), data, interface.linktype, 0, length, link_direction(interface.linktype, data)
        )

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def open_source(
    capture: PathLike | IO[bytes] | Iterable[CapturedPacket],
) -> tuple[Iterable[CapturedPacket], CaptureReader | None]:
    """Packets from a file name, a binary file or packets already read; the reader,
    if one was opened, is for the caller to close."""
    if isinstance(capture, (str, os.PathLike)) or hasattr(capture, "read"):
        reader = CaptureReader(cast("PathLike | IO[bytes]", capture))
        return reader, reader
    return capture, None


def read_packets(source: PathLike | IO[bytes]) -> Iterator[CapturedPacket]:
    """Every packet of a pcap or pcapng file, in file order."""
    with CaptureReader(source) as reader:
        yield from reader


def _option(little: bool, code: int, data: bytes) -> Any:
    return (dpkt.pcapng.PcapngOptionLE if little else dpkt.pcapng.PcapngOption)(code=code, data=data)


def _end(little: bool) -> Any:
    return (dpkt.pcapng.PcapngOptionLE if little else dpkt.pcapng.PcapngOption)(code=_OPT_END, data=b"")


class CaptureWriter:
    """Writes IP packets to a pcapng or pcap file (``LINKTYPE_RAW``), synchronously.

    ``time_offset`` is added to every ``now`` (the stack's clock need not be the wall
    clock); timestamps are nanoseconds unless ``nanoseconds=False``. pcapng records
    each packet's direction (``epb_flags``) and can hold several interfaces, one per
    link: ``add_interface`` returns the index to pass to ``write``. A pcap file has
    exactly one and no directions. Nothing varies between runs but what is written, so
    the same packets at the same times give the same bytes.
    """

    def __init__(
        self,
        target: PathLike | IO[bytes],
        format: Format = "pcapng",
        *,
        interfaces: Sequence[str] = ("l3l4",),
        linktype: int = LINKTYPE_RAW,
        byte_order: ByteOrder = "little",
        nanoseconds: bool = True,
        time_offset: float = 0.0,
        application: str | None = "l3l4-pcap",
    ) -> None:
        if format not in ("pcap", "pcapng"):
            raise ValueError(f"unknown capture format {format!r}")
        if byte_order not in ("little", "big"):
            raise ValueError(f"byte_order must be 'little' or 'big', not {byte_order!r}")
        if format == "pcap" and len(interfaces) != 1:
            raise ValueError("a pcap file has exactly one interface")
        self.format: Format = format
        self.linktype = linktype
        self.time_offset = time_offset
        self.resolution = 10**9 if nanoseconds else 10**6
        self.bytes_written = 0
        self.packets_written = 0
        self._little = byte_order == "little"
        self._interfaces: list[str] = []
        self._file, self._owned = _open(target, "w")
        self.name = str(target) if isinstance(target, (str, os.PathLike)) else getattr(target, "name", "<stream>")
        little = self._little
        if format == "pcap":
            magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
            header = (dpkt.pcap.LEFileHdr if little else dpkt.pcap.FileHdr)(
                magic=magic, v_major=2, v_minor=4, thiszone=0, sigfigs=0, snaplen=SNAPLEN, linktype=linktype
            )
            self._emit(bytes(header))
            self._interfaces.append(interfaces[0])
            self._record_header = dpkt.pcap.LEPktHdr if little else dpkt.pcap.PktHdr
        else:
            options = [_option(little, _SHB_USERAPPL, application.encode()), _end(little)] if application else []
            shb = (dpkt.pcapng.SectionHeaderBlockLE if little else dpkt.pcapng.SectionHeaderBlock)(opts=options)
            self._emit(bytes(shb))
            flag_bytes = [struct.pack("<I" if little else ">I", value) for value in (1, 2)]
            self._flags = {
                None: [],
                False: [_option(little, _OPT_FLAGS, flag_bytes[0]), _end(little)],
                True: [_option(little, _OPT_FLAGS, flag_bytes[1]), _end(little)],
            }
            self._epb = dpkt.pcapng.EnhancedPacketBlockLE if little else dpkt.pcapng.EnhancedPacketBlock
            for name in interfaces:
                self.add_interface(name)

    @property
    def interfaces(self) -> list[str]:
        """The interfaces' names, by index."""
        return list(self._interfaces)

    def add_interface(self, name: str) -> int:
        """Describe one more interface (pcapng only); returns its index."""
        if self.format == "pcap":
            raise ValueError("a pcap file has exactly one interface: use pcapng for several links")
        little = self._little
        exponent = 9 if self.resolution == 10**9 else 6
        idb = (dpkt.pcapng.InterfaceDescriptionBlockLE if little else dpkt.pcapng.InterfaceDescriptionBlock)(
            linktype=self.linktype,
            snaplen=SNAPLEN,
            opts=[
                _option(little, _IF_NAME, name.encode()),
                _option(little, _IF_TSRESOL, bytes((exponent,))),
                _end(little),
            ],
        )
        self._emit(bytes(idb))
        self._interfaces.append(name)
        return len(self._interfaces) - 1

    def _emit(self, data: bytes) -> int:
        self._file.write(data)
        self.bytes_written += len(data)
        return len(data)

    def _ticks(self, now: float) -> int:
        return max(0, round((now + self.time_offset) * self.resolution))

    def encode(
        self, packet: bytes | bytearray | memoryview, now: float, outbound: bool | None = None, interface: int = 0
    ) -> bytes:
        """The bytes :meth:`write` would write for this packet."""
        ticks = self._ticks(now)
        data = bytes(packet)
        if self.format == "pcap":
            if interface != 0:
                raise ValueError("a pcap file has only interface 0")
            seconds, fraction = divmod(ticks, self.resolution)
            header = self._record_header(tv_sec=seconds & 0xFFFFFFFF, tv_usec=fraction, caplen=len(data), len=len(data))
            return bytes(header) + data
        if not 0 <= interface < len(self._interfaces):
            raise ValueError(f"no interface {interface}: add it with add_interface")
        block = self._epb(
            iface_id=interface,
            ts_high=ticks >> 32,
            ts_low=ticks & 0xFFFFFFFF,
            pkt_data=data,
            opts=self._flags[outbound],
        )
        return bytes(block)

    def write(
        self, packet: bytes | bytearray | memoryview, now: float, outbound: bool | None = None, interface: int = 0
    ) -> int:
        """Write one IP packet seen at ``now``: ``outbound`` True for what the stack sent,
        False for what it received, None if unknown. Returns the bytes written."""
        return self.write_encoded(self.encode(packet, now, outbound, interface))

    def write_encoded(self, record: bytes) -> int:
        """Write one packet record made by :meth:`encode` (to size it first)."""
        self.packets_written += 1
        return self._emit(record)

    def write_statistics(self, interface: int, received: int, dropped: int, start: float, end: float) -> None:
        """Record an interface's counters (a pcapng Interface Statistics Block): packets
        offered for recording and dropped, as Wireshark shows under Capture File
        Properties. Does nothing in a pcap file, which has no place for them."""
        if self.format == "pcap":
            return
        little = self._little
        order = "<" if little else ">"
        ticks = self._ticks(end)

        def stamp(now: float) -> bytes:
            value = self._ticks(now)
            return struct.pack(order + "II", value >> 32, value & 0xFFFFFFFF)

        options = b"".join(
            bytes(option)
            for option in (
                _option(little, _ISB_STARTTIME, stamp(start)),
                _option(little, _ISB_ENDTIME, stamp(end)),
                _option(little, _ISB_IFRECV, struct.pack(order + "Q", received)),
                _option(little, _ISB_IFDROP, struct.pack(order + "Q", dropped)),
                _end(little),
            )
        )
        # dpkt has no codec for this block: type, length, interface, timestamp, options, length.
        length = 20 + len(options) + 4
        self._emit(
            struct.pack(order + "IIIII", _BT_ISB, length, interface, ticks >> 32, ticks & 0xFFFFFFFF)
            + options
            + struct.pack(order + "I", length)
        )

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._owned:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def detect_format(path: PathLike, default: Format = "pcapng") -> Format:
    """``pcap`` for names ending ``.pcap`` or ``.cap``, else ``default``."""
    suffix = Path(path).suffix.lower()
    return "pcap" if suffix in (".pcap", ".cap") else default
