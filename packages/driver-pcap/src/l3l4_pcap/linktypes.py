"""Link-layer headers: from a captured frame to the IP packet inside.

Link types are the ``LINKTYPE_*`` values of https://www.tcpdump.org/linktypes.html, the
same numbers in pcap and pcapng files.
"""

from __future__ import annotations

import enum

__all__ = [
    "Direction",
    "LINKTYPE_NULL",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "LINKTYPE_LOOP",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "SUPPORTED_LINKTYPES",
    "ip_packet",
    "link_direction",
]

LINKTYPE_NULL = 0
"""BSD loopback: a 4-byte address family in the capturing host's byte order."""
LINKTYPE_ETHERNET = 1
"""Ethernet (DLT_EN10MB), with any number of 802.1Q / 802.1ad VLAN tags."""
LINKTYPE_RAW = 101
"""A raw IPv4 or IPv6 packet, no link-layer header: what l3l4 records."""
LINKTYPE_LOOP = 108
"""OpenBSD loopback: the address family in network byte order."""
LINKTYPE_LINUX_SLL = 113
"""Linux "cooked" capture (``tcpdump -i any`` before libpcap 1.10)."""
LINKTYPE_LINUX_SLL2 = 276
"""Linux "cooked" capture v2 (``tcpdump -i any`` since libpcap 1.10)."""
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
# DLT_RAW's value differs between systems; old files carry 12 or 14 for LINKTYPE_RAW.
_RAW_ALIASES = (12, 14)

SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_LINUX_SLL2,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        *_RAW_ALIASES,
    }
)


class Direction(enum.Enum):
    """Which way a captured packet went, where the capture says (pcapng ``epb_flags``,
    the Linux cooked header's packet type)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
# 802.1Q, 802.1ad (QinQ) and the pre-standard QinQ tags: 4 bytes each, then a type.
_VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
# BSD address families: AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD, OpenBSD),
# 28 (FreeBSD), 30 (macOS) and 10 (Linux).
_AF_INET = 2
_AF_INET6 = frozenset({10, 24, 28, 30})
# Linux cooked packet types (linux/if_packet.h).
_PACKET_HOST, _PACKET_BROADCAST, _PACKET_MULTICAST, _PACKET_OUTGOING = 0, 1, 2, 4

_FROM = int.from_bytes


def _trim(frame: memoryview, start: int, version: int | None) -> memoryview | None:
    """The IP packet at ``frame[start:]``, cut to its own length (Ethernet pads short
    frames, some captures keep the FCS)."""
    packet = frame[start:]
    if len(packet) < 1:
        return None
    actual = packet[0] >> 4
    if actual not in (4, 6) or (version is not None and actual != version):
        return None
    if actual == 4 and len(packet) >= 4:
        total = _FROM(packet[2:4], "big")
        if 20 <= total < len(packet):
            return packet[:total]
    elif actual == 6 and len(packet) >= 6:
        payload = _FROM(packet[4:6], "big")
        if payload and 40 + payload < len(packet):  # 0: a jumbogram, keep it whole
            return packet[: 40 + payload]
    return packet


def _ethertype_version(ethertype: int) -> int | None:
    if ethertype == _ETHERTYPE_IPV4:
        return 4
    if ethertype == _ETHERTYPE_IPV6:
        return 6
    return None


def ip_packet(linktype: int, frame: bytes | bytearray | memoryview) -> memoryview | None:
    """The IPv4 or IPv6 packet a frame of ``linktype`` carries (a view, no copy), or
    ``None`` if it carries something else (ARP, LLDP...) or the link type is unknown."""
    view = memoryview(frame)
    size = len(view)
    if linktype == LINKTYPE_RAW or linktype in _RAW_ALIASES:
        return _trim(view, 0, None)
    if linktype == LINKTYPE_ETHERNET:
        position = 12
        while position + 2 <= size:
            ethertype = _FROM(view[position : position + 2], "big")
            if ethertype in _VLAN_TAGS:
                position += 4
                continue
            version = _ethertype_version(ethertype)
            return None if version is None else _trim(view, position + 2, version)
        return None
    if linktype == LINKTYPE_LINUX_SLL:
        if size < 16:
            return None
        version = _ethertype_version(_FROM(view[14:16], "big"))
        return None if version is None else _trim(view, 16, version)
    if linktype == LINKTYPE_LINUX_SLL2:
        if size < 20:
            return None
        version = _ethertype_version(_FROM(view[0:2], "big"))
        return None if version is None else _trim(view, 20, version)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if size < 4:
            return None
        big = _FROM(view[0:4], "big")
        # NULL is in the capturing host's byte order: either; LOOP is big-endian.
        families = (big,) if linktype == LINKTYPE_LOOP else (big, _FROM(view[0:4], "little"))
        for family in families:
            if family == _AF_INET:
                return _trim(view, 4, 4)
            if family in _AF_INET6:
                return _trim(view, 4, 6)
        return None
    if linktype == LINKTYPE_IPV4:
        return _trim(view, 0, 4)
    if linktype == LINKTYPE_IPV6:
        return _trim(view, 0, 6)
    return None


def link_direction(linktype: int, frame: bytes | bytearray | memoryview) -> Direction | None:
    """The direction a Linux cooked header records (``None`` for other link types, and
    for packets to other hosts)."""
    if linktype == LINKTYPE_LINUX_SLL and len(frame) >= 2:
        packet_type = _FROM(frame[0:2], "big")
    elif linktype == LINKTYPE_LINUX_SLL2 and len(frame) >= 11:
        packet_type = frame[10]
    else:
        return None
    if packet_type == _PACKET_OUTGOING:
        return Direction.OUTBOUND
    if packet_type in (_PACKET_HOST, _PACKET_BROADCAST, _PACKET_MULTICAST):
        return Direction.INBOUND
    return None
