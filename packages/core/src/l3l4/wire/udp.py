"""UDP datagrams (RFC 768; over IPv6, RFC 8200 §8.1)."""

from __future__ import annotations

import struct

from ..buffers import ReadableBuffer, WritableBuffer
from ..stats import DropReason
from .checksum import checksum, fold, pseudo_header_sum
from .ip import PROTO_UDP, IpPacket
from .malformed import Malformed

__all__ = ["UDP_HEADER", "parse_udp", "write_udp"]

UDP_HEADER = 8
_UDP = struct.Struct("!HHHH")
_CHECKSUM = struct.Struct("!H")


def parse_udp(packet: IpPacket, verify: bool) -> memoryview:
    """Check a UDP datagram's length and checksum; return its payload.

    Bytes past the UDP length are ignored, as RFC 768 implies and Linux does.
    """
    segment = packet.payload
    if len(segment) < UDP_HEADER:
        raise Malformed(DropReason.TRUNCATED)
    _sport, _dport, length, csum = _UDP.unpack_from(segment)
    if length < UDP_HEADER or length > len(segment):
        raise Malformed(DropReason.BAD_UDP_LENGTH)
    segment = segment[:length]
    if verify:
        if csum == 0:
            # RFC 768: zero means "no checksum" over IPv4; RFC 8200 §8.1: never over IPv6.
            if packet.version == 6:
                raise Malformed(DropReason.BAD_L4_CHECKSUM)
        elif (pseudo_header_sum(packet.src, packet.dst, PROTO_UDP, length) + fold(segment)) % 0xFFFF:
            raise Malformed(DropReason.BAD_L4_CHECKSUM)
    return segment[UDP_HEADER:]


def write_udp(
    buf: WritableBuffer, offset: int, src: bytes, dst: bytes, sport: int, dport: int, payload: ReadableBuffer
) -> None:
    """Write a whole UDP datagram (header, payload, checksum) at ``offset``."""
    length = UDP_HEADER + len(payload)
    buf[offset + UDP_HEADER : offset + length] = payload
    _UDP.pack_into(buf, offset, sport, dport, length, 0)
    residue = pseudo_header_sum(src, dst, PROTO_UDP, length) + fold(memoryview(buf)[offset : offset + length])
    # RFC 768: a computed checksum of zero is sent as all ones.
    _CHECKSUM.pack_into(buf, offset + 6, checksum(residue) or 0xFFFF)
