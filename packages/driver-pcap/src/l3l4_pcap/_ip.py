"""The little IP parsing a capture tool needs: where the transport header starts, the
ports, and TCP/UDP checksums that a kernel left partial for checksum offload.

The stack's own codec (``l3l4.wire``) is private to the core; these few lines are all
the pcap driver needs, and they never raise on bad input (they answer ``None``).
"""

from __future__ import annotations

from typing import NamedTuple

from l3l4.wire.checksum import fold, pseudo_header_sum

__all__ = ["Transport", "transport", "ports", "partial_checksum", "complete_checksum", "verify_checksum"]

PROTO_TCP = 6
PROTO_UDP = 17
# IPv6 extension headers that may precede the transport header (RFC 8200 §4.1).
_HOP_BY_HOP, _ROUTING, _FRAGMENT, _DESTINATION = 0, 43, 44, 60
_EXTENSIONS = {_HOP_BY_HOP, _ROUTING, _DESTINATION}
_MAX_EXTENSIONS = 8
_FROM = int.from_bytes


class Transport(NamedTuple):
    """Where a packet's transport header is, and its IP addresses (packed)."""

    version: int
    proto: int
    src: bytes
    dst: bytes
    offset: int
    """Index of the transport header in the packet."""
    end: int
    """Index just past the IP payload (the IP length, not the buffer's)."""
    first: bool
    """The transport header is there: not a fragment, or the first fragment."""
    fragment: bool


def transport(packet: bytes | bytearray | memoryview) -> Transport | None:
    """Locate the transport header of an IPv4 or IPv6 packet, or ``None`` if the
    packet is too short or not IP."""
    size = len(packet)
    if size < 20:
        return None
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        total = _FROM(packet[2:4], "big")
        if ihl < 20 or total < ihl or size < ihl:
            return None
        flags = _FROM(packet[6:8], "big")
        offset = flags & 0x1FFF
        fragment = bool(flags & 0x2000) or offset != 0
        return Transport(
            4, packet[9], bytes(packet[12:16]), bytes(packet[16:20]), ihl, min(total, size), offset == 0, fragment
        )
    if version != 6 or size < 40:
        return None
    end = min(40 + _FROM(packet[4:6], "big"), size)
    proto = packet[6]
    position = 40
    first = True
    fragment = False
    for _ in range(_MAX_EXTENSIONS):
        if proto in _EXTENSIONS:
            if position + 2 > end:
                return None
            proto, position = packet[position], position + (packet[position + 1] + 1) * 8
        elif proto == _FRAGMENT:
            if position + 8 > end:
                return None
            fragment = True
            first = _FROM(packet[position + 2 : position + 4], "big") >> 3 == 0
            proto, position = packet[position], position + 8
        else:
            break
    if position > end:
        return None
    return Transport(6, proto, bytes(packet[8:24]), bytes(packet[24:40]), position, end, first, fragment)


def ports(packet: bytes | bytearray | memoryview, where: Transport) -> tuple[int, int] | None:
    """Source and destination port of a TCP or UDP packet that carries them."""
    if where.proto not in (PROTO_TCP, PROTO_UDP) or not where.first or where.offset + 4 > where.end:
        return None
    o = where.offset
    return _FROM(packet[o : o + 2], "big"), _FROM(packet[o + 2 : o + 4], "big")


def _checksum_field(packet: bytes | bytearray | memoryview, where: Transport | None) -> tuple[Transport, int] | None:
    """The transport of ``packet`` (``where``, if known) and the offset of its TCP or
    UDP checksum field, for a whole (unfragmented) datagram; None for anything else."""
    where = where or transport(packet)
    if where is None or where.fragment:
        return None
    if where.proto == PROTO_TCP and where.end - where.offset >= 20:
        return where, where.offset + 16
    if where.proto == PROTO_UDP and where.end - where.offset >= 8:
        return where, where.offset + 6
    return None


def _pseudo(where: Transport) -> int:
    return pseudo_header_sum(where.src, where.dst, where.proto, where.end - where.offset)


def partial_checksum(packet: bytes | bytearray | memoryview, where: Transport | None = None) -> bool:
    """Whether the TCP or UDP checksum field holds only the pseudo-header sum: what
    Linux leaves in a locally sent packet whose checksum the device is to compute
    (``CHECKSUM_PARTIAL``), and what a capture on such a host shows."""
    located = _checksum_field(packet, where)
    if located is None:
        return False
    where, field = located
    value = _FROM(packet[field : field + 2], "big")
    if where.proto == PROTO_UDP and value == 0:
        return False  # IPv4 "no checksum"
    # 0x0000 and 0xFFFF are the same number in one's complement.
    return value % 0xFFFF == _pseudo(where)


def verify_checksum(packet: bytes | bytearray | memoryview, where: Transport | None = None) -> bool:
    """Whether a whole TCP or UDP packet's checksum verifies (True for anything else)."""
    located = _checksum_field(packet, where)
    if located is None:
        return True
    where, field = located
    if where.proto == PROTO_UDP and where.version == 4 and packet[field] == packet[field + 1] == 0:
        return True
    return (_pseudo(where) + fold(packet[where.offset : where.end])) % 0xFFFF == 0


def complete_checksum(packet: bytearray, where: Transport | None = None) -> None:
    """Write the full TCP or UDP checksum into ``packet`` (in place)."""
    located = _checksum_field(packet, where)
    if located is None:
        return
    where, field = located
    packet[field : field + 2] = b"\0\0"
    value = -(_pseudo(where) + fold(packet[where.offset : where.end])) % 0xFFFF
    if value == 0 and where.proto == PROTO_UDP:
        value = 0xFFFF  # RFC 768: a computed zero is sent as all ones
    packet[field : field + 2] = value.to_bytes(2, "big")
