"""Reading the packet an ICMP error quotes, to find the flow it concerns
(RFC 792, RFC 1191, RFC 4443 §3, RFC 5927)."""

from __future__ import annotations

import struct

from ..config import IPV4_MIN_MTU, IPV6_MIN_MTU
from ..events import IcmpErrorKind
from ..flow import flow_key
from ..stats import DropReason
from ..wire.icmp import (
    ICMP4_FRAGMENTATION_NEEDED,
    ICMP4_PARAMETER_PROBLEM,
    ICMP4_TIME_EXCEEDED,
    ICMP4_UNREACHABLE,
    ICMP6_PACKET_TOO_BIG,
    ICMP6_PARAMETER_PROBLEM,
    ICMP6_TIME_EXCEEDED,
    ICMP6_UNREACHABLE,
    IcmpMessage,
)
from ..wire.ip import IPV4_HEADER, IPV6_HEADER, PROTO_FRAGMENT, PROTO_TCP, PROTO_UDP, IpPacket
from ..wire.malformed import Malformed

__all__ = ["IcmpError", "read_icmp_error"]

_V4_ERRORS = {
    ICMP4_UNREACHABLE: IcmpErrorKind.UNREACHABLE,
    ICMP4_TIME_EXCEEDED: IcmpErrorKind.TIME_EXCEEDED,
    ICMP4_PARAMETER_PROBLEM: IcmpErrorKind.PARAMETER_PROBLEM,
}
_V6_ERRORS = {
    ICMP6_UNREACHABLE: IcmpErrorKind.UNREACHABLE,
    ICMP6_PACKET_TOO_BIG: IcmpErrorKind.PACKET_TOO_BIG,
    ICMP6_TIME_EXCEEDED: IcmpErrorKind.TIME_EXCEEDED,
    ICMP6_PARAMETER_PROBLEM: IcmpErrorKind.PARAMETER_PROBLEM,
}
# RFC 8200 §4: extension headers the quote may carry before the transport header.
_SKIPPABLE = frozenset((0, 43, 60))
_PORTS = struct.Struct("!4s")


class IcmpError:
    """An ICMP error reduced to what the stack acts on."""

    __slots__ = ("key", "kind", "mtu", "quoted_seq")

    def __init__(self, key: bytes, kind: IcmpErrorKind, mtu: int | None, quoted_seq: int | None) -> None:
        self.key = key
        self.kind = kind
        self.mtu = mtu
        self.quoted_seq = quoted_seq
        """The TCP sequence number of the quoted segment, if the quote reaches it."""


def error_kind(version: int, icmp_type: int) -> IcmpErrorKind | None:
    """The kind of error an ICMP type is, or ``None`` for informational messages."""
    return (_V4_ERRORS if version == 4 else _V6_ERRORS).get(icmp_type)


def read_icmp_error(packet: IpPacket, message: IcmpMessage, kind: IcmpErrorKind) -> IcmpError:
    """Find the flow key of the packet an error quotes, and the MTU it reports.

    The quote is our own packet: its source is the flow's local end. Errors not sent to
    that address, or quoting anything but the start of a TCP or UDP datagram, are
    malformed for our purposes (RFC 5927 §4.1: check what can be checked).
    """
    quote = message.body
    if packet.version == 4:
        if len(quote) < IPV4_HEADER:
            raise Malformed(DropReason.BAD_ICMP)
        header_len = (quote[0] & 0x0F) * 4
        if quote[0] >> 4 != 4 or header_len < IPV4_HEADER:
            raise Malformed(DropReason.BAD_ICMP)
        if int.from_bytes(quote[6:8], "big") & 0x1FFF:
            raise Malformed(DropReason.BAD_ICMP)  # a later fragment: no ports to read
        proto = quote[9]
        src = bytes(quote[12:16])
        dst = bytes(quote[16:20])
        transport = header_len
    else:
        if len(quote) < IPV6_HEADER or quote[0] >> 4 != 6:
            raise Malformed(DropReason.BAD_ICMP)
        proto = quote[6]
        src = bytes(quote[8:24])
        dst = bytes(quote[24:40])
        transport = IPV6_HEADER
        while proto in _SKIPPABLE or proto == PROTO_FRAGMENT:
            if transport + 8 > len(quote):
                raise Malformed(DropReason.BAD_ICMP)
            if proto == PROTO_FRAGMENT:
                if int.from_bytes(quote[transport + 2 : transport + 4], "big") & 0xFFF8:
                    raise Malformed(DropReason.BAD_ICMP)
                length = 8
            else:
                length = (quote[transport + 1] + 1) * 8
            proto = quote[transport]
            transport += length
    if proto not in (PROTO_TCP, PROTO_UDP) or len(quote) < transport + 4 or src != packet.dst:
        raise Malformed(DropReason.BAD_ICMP)
    ports = _PORTS.unpack_from(quote, transport)[0]
    key = flow_key(proto, src, ports[:2], dst, ports[2:])
    mtu = None
    if kind is IcmpErrorKind.PACKET_TOO_BIG:
        # RFC 8201 §4: never below the IPv6 minimum link MTU.
        mtu = max(message.rest, IPV6_MIN_MTU)
    elif packet.version == 4 and kind is IcmpErrorKind.UNREACHABLE and message.code == ICMP4_FRAGMENTATION_NEEDED:
        # RFC 1191 §4: the next-hop MTU is the low 16 bits of the rest-of-header word.
        # Routers that predate it send 0; take the minimum then (a plateau search is
        # for TCP to do).
        kind = IcmpErrorKind.PACKET_TOO_BIG
        mtu = max(message.rest & 0xFFFF, IPV4_MIN_MTU)
    quoted_seq = None
    if proto == PROTO_TCP and len(quote) >= transport + 8:
        quoted_seq = int.from_bytes(quote[transport + 4 : transport + 8], "big")
    return IcmpError(key, kind, mtu, quoted_seq)
