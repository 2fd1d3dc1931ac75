"""Every link type a replay reads: frames built and written by scapy (an independent
codec and pcap writer), read back by our reader, and the IP packet inside checked
against what scapy put there and what tshark decodes."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from l3l4_pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Direction,
    ip_packet,
    read_packets,
)
from scapy.all import ARP, IP, TCP, UDP, CookedLinux, Dot1AD, Dot1Q, Ether, IPv6, PcapWriter, Raw
from scapy.layers.l2 import CookedLinuxV2
from support.capture import tshark_fields

IP4 = IP(src="192.0.2.10", dst="203.0.113.20") / UDP(sport=40000, dport=7777) / Raw(b"four")
IP6 = IPv6(src="2001:db8::10", dst="2001:db8::20") / TCP(sport=40001, dport=443, flags="S")


def null_header(family: int, order: str) -> bytes:
    return struct.pack("<I" if order == "little" else ">I", family)


# name: (linktype, frame builder, expected direction)
FRAMES: dict[str, tuple[int, Callable[[Any], bytes], Direction | None]] = {
    "raw": (LINKTYPE_RAW, lambda ip: bytes(ip), None),
    "raw-dlt12": (12, lambda ip: bytes(ip), None),
    "raw-dlt14": (14, lambda ip: bytes(ip), None),
    "ipv4-or-ipv6": (-1, lambda ip: bytes(ip), None),  # LINKTYPE_IPV4 / LINKTYPE_IPV6 by version
    "ethernet": (
        LINKTYPE_ETHERNET,
        lambda ip: bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip),
        None,
    ),
    "ethernet-padded": (
        LINKTYPE_ETHERNET,
        lambda ip: bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip) + bytes(30),
        None,
    ),
    "802.1q": (LINKTYPE_ETHERNET, lambda ip: bytes(Ether() / Dot1Q(vlan=5) / ip), None),
    "802.1ad-qinq": (LINKTYPE_ETHERNET, lambda ip: bytes(Ether() / Dot1AD(vlan=6) / Dot1Q(vlan=7) / ip), None),
    "sll-host": (
        LINKTYPE_LINUX_SLL,
        lambda ip: bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6) / ip),
        Direction.INBOUND,
    ),
    "sll-outgoing": (
        LINKTYPE_LINUX_SLL,
        lambda ip: bytes(CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6) / ip),
        Direction.OUTBOUND,
    ),
    "sll2": (
        LINKTYPE_LINUX_SLL2,
        lambda ip: bytes(CookedLinuxV2(pkttype=0, ifindex=3, lladdrtype=1, lladdrlen=6) / ip),
        Direction.INBOUND,
    ),
    "sll2-outgoing": (
        LINKTYPE_LINUX_SLL2,
        lambda ip: bytes(CookedLinuxV2(pkttype=4, ifindex=3) / ip),
        Direction.OUTBOUND,
    ),
    # BSD loopback: AF_INET 2; AF_INET6 is 24, 28 or 30 by BSD; host byte order either way.
    "null-little": (LINKTYPE_NULL, lambda ip: null_header(2 if ip.version == 4 else 30, "little") + bytes(ip), None),
    "null-big": (LINKTYPE_NULL, lambda ip: null_header(2 if ip.version == 4 else 24, "big") + bytes(ip), None),
    "loop": (LINKTYPE_LOOP, lambda ip: null_header(2 if ip.version == 4 else 28, "big") + bytes(ip), None),
}


@pytest.mark.parametrize("name", list(FRAMES))
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_link_type_read_through_scapy_written_file(tmp_path: Path, name: str, nano: bool) -> None:
    linktype, build, direction = FRAMES[name]
    for ip in (IP4, IP6):
        kind = linktype if linktype >= 0 else (LINKTYPE_IPV4 if ip.version == 4 else LINKTYPE_IPV6)
        path = tmp_path / f"{name}-v{ip.version}.pcap"
        writer = PcapWriter(str(path), linktype=kind, nano=nano, sync=True)
        writer.write(build(ip))
        writer.write(bytes(Ether() / ARP()) if kind == LINKTYPE_ETHERNET else b"\x00\x00\x00\x63junk")
        writer.close()
        if kind == LINKTYPE_NULL:  # scapy takes linktype=0 for "not given": set it in the header
            data = bytearray(path.read_bytes())
            data[20:24] = bytes(4)
            path.write_bytes(bytes(data))
        first, other = list(read_packets(path))
        assert first.linktype == kind and first.direction == direction
        inside = first.ip()
        assert inside is not None and bytes(inside) == bytes(ip)  # padding and headers gone
        assert other.ip() is None  # ARP, or a family that is not IP
        if kind not in (12, 14):  # tshark takes DLT 12/14 as other things in pcap files
            [row] = tshark_fields(path, "ip.dst", "ipv6.dst", display_filter="frame.number == 1")
            assert (row[0] or row[1]) == ip.dst


def test_unknown_link_type_and_short_frames() -> None:
    assert ip_packet(147, bytes(IP4)) is None  # a user link type
    assert ip_packet(LINKTYPE_ETHERNET, b"\x00" * 13) is None
    assert ip_packet(LINKTYPE_LINUX_SLL, b"\x00" * 15) is None
    assert ip_packet(LINKTYPE_LINUX_SLL2, b"\x00" * 19) is None
    assert ip_packet(LINKTYPE_NULL, b"\x02\x00") is None
    assert ip_packet(LINKTYPE_RAW, b"\x70" + bytes(40)) is None  # IP version 7
