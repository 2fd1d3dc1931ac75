"""ICMP (RFC 792) and ICMPv6 (RFC 4443) messages."""

from __future__ import annotations

import struct

from ..buffers import ReadableBuffer, WritableBuffer
from ..stats import DropReason
from .checksum import checksum, fold, pseudo_header_sum
from .ip import PROTO_ICMPV6, IpPacket
from .malformed import Malformed

__all__ = [
    "ICMP_HEADER",
    "IcmpMessage",
    "parse_icmp",
    "write_icmp",
    "ICMP4_ECHO_REPLY",
    "ICMP4_UNREACHABLE",
    "ICMP4_ECHO_REQUEST",
    "ICMP4_TIME_EXCEEDED",
    "ICMP4_PARAMETER_PROBLEM",
    "ICMP4_FRAGMENTATION_NEEDED",
    "ICMP6_UNREACHABLE",
    "ICMP6_PACKET_TOO_BIG",
    "ICMP6_TIME_EXCEEDED",
    "ICMP6_PARAMETER_PROBLEM",
    "ICMP6_ECHO_REQUEST",
    "ICMP6_ECHO_REPLY",
]

ICMP_HEADER = 8

ICMP4_ECHO_REPLY = 0
ICMP4_UNREACHABLE = 3
ICMP4_ECHO_REQUEST = 8
ICMP4_TIME_EXCEEDED = 11
ICMP4_PARAMETER_PROBLEM = 12
ICMP4_FRAGMENTATION_NEEDED = 4  # code of ICMP4_UNREACHABLE (RFC 1191)

ICMP6_UNREACHABLE = 1
ICMP6_PACKET_TOO_BIG = 2
ICMP6_TIME_EXCEEDED = 3
ICMP6_PARAMETER_PROBLEM = 4
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

_ICMP = struct.Struct("!BBHI")
_CHECKSUM = struct.Struct("!H")


class IcmpMessage:
    """A parsed ICMP/ICMPv6 message: type, code, the 32-bit rest-of-header word and body."""

    __slots__ = ("icmp_type", "code", "rest", "body")

    def __init__(self, icmp_type: int, code: int, rest: int, body: memoryview) -> None:
        self.icmp_type = icmp_type
        self.code = code
        self.rest = rest
        self.body = body


def parse_icmp(packet: IpPacket, verify: bool) -> IcmpMessage:
    """Parse and verify an ICMP message (ICMPv6 includes the pseudo-header, RFC 4443 §2.3)."""
    message = packet.payload
    if len(message) < ICMP_HEADER:
        raise Malformed(DropReason.TRUNCATED)
    if verify:
        residue = fold(message)
        if packet.version == 6:
            residue += pseudo_header_sum(packet.src, packet.dst, PROTO_ICMPV6, len(message))
        if residue % 0xFFFF:
            raise Malformed(DropReason.BAD_L4_CHECKSUM)
    icmp_type, code, _csum, rest = _ICMP.unpack_from(message)
    return IcmpMessage(icmp_type, code, rest, message[ICMP_HEADER:])


def write_icmp(
    buf: WritableBuffer,
    offset: int,
    icmp_type: int,
    code: int,
    rest: int,
    body: ReadableBuffer,
    pseudo_residue: int = 0,
) -> None:
    """Write a whole ICMP message (header, body, checksum) at ``offset``. ICMPv6 passes
    the residue of its pseudo-header (RFC 4443 §2.3)."""
    length = ICMP_HEADER + len(body)
    buf[offset + ICMP_HEADER : offset + length] = body
    _ICMP.pack_into(buf, offset, icmp_type, code, 0, rest)
    residue = pseudo_residue + fold(memoryview(buf)[offset : offset + length])
    _CHECKSUM.pack_into(buf, offset + 2, checksum(residue))
