"""The virtio-net header codec (``l3l4.wire.vnet``; virtio spec §5.1.6, ``struct
virtio_net_hdr`` in ``include/uapi/linux/virtio_net.h``) against packets scapy builds
and a stack's own TSO packets."""

from __future__ import annotations

import struct
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, UDP, IPv6, Raw

from l3l4 import Config, Flow, FlowOpened, Proto, Stack, UnknownFlowError
from l3l4.buffers import ReadableBuffer
from l3l4.wire.tcp_packet import write_ipv4_tcp, write_ipv6_tcp
from l3l4.wire.vnet import (
    NO_OFFLOAD_HEADER,
    VNET_HEADER,
    checksum_trusted,
    completed,
    gso_header,
    offloading,
    transmit_header,
)

# flags, gso_type, hdr_len, gso_size, csum_start, csum_offset (little-endian on x86).
HEADER = struct.Struct("<BBHHHH")
OPTIONS = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 2))]


def tcp_packet(version: int, payload: int) -> bytes:
    ip = IP(src="198.51.100.1", dst="203.0.113.1") if version == 4 else IPv6(src="2001:db8::1", dst="2001:db8::2")
    return bytes(ip / TCP(sport=40000, dport=80, options=OPTIONS) / Raw(bytes(payload)))


def test_the_header_is_ten_bytes_and_the_plain_one_all_zero() -> None:
    assert VNET_HEADER == HEADER.size == 10
    assert NO_OFFLOAD_HEADER == bytes(10)


@pytest.mark.parametrize(("flags", "trusted"), [(0, False), (1, True), (2, True), (3, True), (4, False)])
def test_needs_csum_and_data_valid_are_trusted(flags: int, trusted: bool) -> None:
    # VIRTIO_NET_HDR_F_NEEDS_CSUM = 1, VIRTIO_NET_HDR_F_DATA_VALID = 2, RSC_INFO = 4.
    assert checksum_trusted(HEADER.pack(flags, 0, 0, 0, 0, 0) + b"packet") is trusted


@pytest.mark.parametrize(("version", "gso_type", "ip_header"), [(4, 1, 20), (6, 4, 40)])
def test_gso_header_names_the_type_the_headers_and_the_segment_size(
    version: int, gso_type: int, ip_header: int
) -> None:
    packet = tcp_packet(version, 4000)
    tcp_header = 20 + 20  # the options above pad to 20 bytes
    assert HEADER.unpack(gso_header(packet, 1000)) == (0, gso_type, ip_header + tcp_header, 1000, 0, 0)


def test_transmit_header_offloads_only_what_exceeds_the_mtu() -> None:
    small, large = tcp_packet(4, 1000), tcp_packet(4, 3000)
    asked: list[ReadableBuffer] = []

    def segment_payload(packet: ReadableBuffer) -> int:
        asked.append(packet)
        return 1388

    assert transmit_header(small, 1500, segment_payload) == NO_OFFLOAD_HEADER
    assert asked == []
    assert HEADER.unpack(transmit_header(large, 1500, segment_payload))[:4] == (0, 1, 60, 1388)
    assert asked == [large]


@pytest.mark.parametrize(("version", "headers"), [(4, 60), (6, 80)])
def test_a_gone_connection_gets_segments_of_what_the_mtu_allows(version: int, headers: int) -> None:
    def gone(packet: ReadableBuffer) -> int:
        raise UnknownFlowError("no TCP connection sent this packet")

    assert HEADER.unpack(transmit_header(tcp_packet(version, 3000), 1500, gone))[3] == 1500 - headers


def test_a_stacks_tso_packets_get_its_segment_size() -> None:
    flow = Flow(Proto.TCP, ip_address("2001:db8::1"), 40000, ip_address("2001:db8:ffff::80"), 443)
    a: Stack[bytearray] = Stack(Config(secret=b"client-secret-01", tcp_tso_packet=65535))
    b: Stack[bytearray] = Stack(Config(secret=b"server-secret-01"))
    to_b = list(a.connect(flow, 0.0).packets)
    large: list[bytearray] = []
    while to_b:
        to_a = [p for packet in to_b for p in b.l3_rx(packet, 0.0).packets]
        to_b = []
        for packet in to_a:
            out = a.l3_rx(packet, 0.0)
            to_b += out.packets
            if any(isinstance(event, FlowOpened) for event in out.events):
                sent = a.l4_tx(flow, bytes(60000), 0.0).packets
                large = [p for p in sent if len(p) > 1500]
                to_b += sent
        if large:
            break
    assert large
    mss = a.flow_info(flow).mss
    for packet in large:
        fields = HEADER.unpack(transmit_header(packet, 1500, a.tso_segment_size))
        assert fields[:2] == (0, 4) and fields[3] == mss
        assert fields[2] + fields[3] <= 1500  # every segment fits the MTU


def one_pass(version: int, payload: bytes, partial: bool) -> bytearray:
    """A TCP packet from l3l4's one-pass writer, with a full or a partial checksum."""
    options = bytes((1, 1, 8, 10)) + bytes(range(8))
    if version == 4:
        packet = bytearray(52 + len(payload))
        src, dst = bytes((198, 51, 100, 1)), bytes((203, 0, 113, 1))
        write_ipv4_tcp(packet, 7, 64, src, dst, 40000, 80, 1000, 2000, 0x18, 512, options, payload, partial)
    else:
        packet = bytearray(72 + len(payload))
        src, dst = bytes.fromhex("20010db8" + "00" * 11 + "01"), bytes.fromhex("20010db8" + "00" * 11 + "02")
        write_ipv6_tcp(packet, 64, src, dst, 40000, 80, 1000, 2000, 0x18, 512, options, payload, partial)
    return packet


@given(version=st.sampled_from([4, 6]), payload=st.binary(max_size=3000))
@settings(derandomize=True, max_examples=200)
def test_a_partial_checksum_completes_to_the_full_one(version: int, payload: bytes) -> None:
    """What the device computes from a partial checksum (``completed`` does the same sum)
    is the checksum l3l4 writes itself, and what scapy computes."""
    full = one_pass(version, payload, partial=False)
    partial = one_pass(version, payload, partial=True)
    assert partial != full or not payload  # the field differs
    assert completed(partial) == full
    parsed = IP(bytes(full)) if version == 4 else IPv6(bytes(full))
    expected = parsed[TCP].chksum
    del parsed[TCP].chksum
    assert (IP(bytes(parsed)) if version == 4 else IPv6(bytes(parsed)))[TCP].chksum == expected


@pytest.mark.parametrize(("version", "ip_header"), [(4, 20), (6, 40)])
def test_partial_checksums_ask_the_device_to_complete_them(version: int, ip_header: int) -> None:
    small = one_pass(version, bytes(100), partial=True)
    # NEEDS_CSUM, no GSO, the sum starts at the TCP header and goes to its offset 16.
    assert HEADER.unpack(transmit_header(small, 1500, lambda p: 0, partial=True)) == (1, 0, 0, 0, ip_header, 16)
    large = one_pass(version, bytes(5000), partial=True)
    gso_type = 1 if version == 4 else 4
    header = HEADER.unpack(transmit_header(large, 1500, lambda p: 1448, partial=True))
    assert header == (1, gso_type, ip_header + 32, 1448, ip_header, 16)
    # UDP packets are always complete: no NEEDS_CSUM for them.
    ip = IP(src="198.51.100.1", dst="203.0.113.1") if version == 4 else IPv6(src="2001:db8::1", dst="2001:db8::2")
    udp = bytes(ip / UDP(sport=5353, dport=53) / Raw(b"query"))
    assert transmit_header(udp, 1500, lambda p: 0, partial=True) == NO_OFFLOAD_HEADER


@pytest.mark.parametrize(("offload", "tso", "partial"), [(True, 65535, True), (False, 0, False)])
def test_offloading_decides_tso_and_checksum_offload_together(offload: bool, tso: int, partial: bool) -> None:
    """The one place the drivers (TUN loop, l3l4-tun, trio) take their offload settings
    from; everything else in the config is kept."""
    config = offloading(Config(mtu=9000, tcp_tso_packet=20000, tcp_checksum_offload=not offload), offload)
    assert (config.tcp_tso_packet, config.tcp_checksum_offload, config.mtu) == (tso, partial, 9000)
