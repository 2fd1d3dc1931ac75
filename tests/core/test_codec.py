"""The codec against scapy: checksums, TCP options, IPv6 extension header chains."""

from __future__ import annotations

import random

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, UDP, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw
from scapy.utils import checksum as scapy_checksum

from l3l4.stats import DropReason
from l3l4.wire.checksum import checksum, fold, pseudo_header_sum
from l3l4.wire.ip import parse_ip
from l3l4.wire.malformed import Malformed
from l3l4.wire.tcp import TcpOptions, encode_options, parse_tcp
from l3l4.wire.tcp_packet import write_ipv4_tcp, write_ipv6_tcp


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=2000))
def test_checksum_matches_rfc1071(data: bytes) -> None:
    # Every header we checksum has a non-zero word (version, protocol), so the sum is
    # never one's-complement +0; all-zero input is outside the contract.
    assume(any(data))
    assert checksum(fold(data)) == scapy_checksum(data)


def test_checksum_edge_cases() -> None:
    assert checksum(fold(b"\xff\xff")) == 0
    assert checksum(fold(b"\x00\x01")) == 0xFFFE
    assert checksum(fold(b"\x00\x01\xf2")) == scapy_checksum(b"\x00\x01\xf2")


def test_pseudo_header_residue_matches_concatenation() -> None:
    rng = random.Random(1)
    for width in (4, 16):
        src, dst = rng.randbytes(width), rng.randbytes(width)
        if width == 4:
            explicit = src + dst + bytes((0, 6)) + (1234).to_bytes(2, "big")
        else:
            explicit = src + dst + (1234).to_bytes(4, "big") + bytes((0, 0, 0, 6))
        assert pseudo_header_sum(src, dst, 6, 1234) == fold(explicit)


OPTION_CASES = [
    [("MSS", 1460)],
    [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123, 0)), ("NOP", None), ("WScale", 7)],
    [("NOP", None), ("NOP", None), ("SAck", (1, 2, 3, 4, 5, 6))],
    [("Timestamp", (0xFFFFFFFF, 1)), ("EOL", None)],
    [(99, b"unknown!"), ("MSS", 536)],
    [("WScale", 20)],
]


@pytest.mark.parametrize("options", OPTION_CASES)
def test_tcp_options_parse_like_scapy(options: list[tuple[object, object]]) -> None:
    packet = IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=1, dport=2, options=options)
    segment = parse_tcp(parse_ip(bytes(packet)), verify=True)
    parsed = segment.options
    for name, value in options:
        if name == "MSS":
            assert parsed.mss == value
        elif name == "WScale":
            assert isinstance(value, int) and parsed.wscale == min(value, 14)
        elif name == "SAckOK":
            assert parsed.sack_permitted
        elif name == "SAck":
            assert isinstance(value, tuple)
            assert parsed.sack_blocks == tuple(zip(value[::2], value[1::2]))
        elif name == "Timestamp":
            assert (parsed.ts_val, parsed.ts_ecr) == value


@settings(max_examples=200, derandomize=True)
@given(
    mss=st.none() | st.integers(0, 0xFFFF),
    wscale=st.none() | st.integers(0, 14),
    sack_permitted=st.booleans(),
    timestamps=st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    blocks=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=3),
)
def test_tcp_options_round_trip_through_scapy(
    mss: int | None,
    wscale: int | None,
    sack_permitted: bool,
    timestamps: tuple[int, int] | None,
    blocks: list[tuple[int, int]],
) -> None:
    options = TcpOptions(mss, wscale, sack_permitted, tuple(blocks), *(timestamps or (None, 0)))
    try:
        raw = encode_options(options)
    except ValueError:
        assert len(blocks) == 3 and timestamps is not None  # 3 blocks + timestamps exceed 40 bytes
        return
    assert len(raw) % 4 == 0 and len(raw) <= 40
    packet = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=1, dport=2, dataofs=5 + len(raw) // 4) / Raw(b""))
    packet = packet[:2] + (20 + 20 + len(raw)).to_bytes(2, "big") + packet[4:] + raw
    scapy_view = IP(packet)
    names = [name for name, _ in scapy_view[TCP].options]
    assert ("MSS" in names) == (mss is not None) and ("SAckOK" in names) == sack_permitted
    assert parse_tcp(parse_ip(packet, verify=False), verify=False).options == options


@pytest.mark.parametrize(
    "chain",
    [
        [IPv6ExtHdrHopByHop()],
        [IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(segleft=0)],
        [IPv6ExtHdrDestOpt(), IPv6ExtHdrDestOpt()],
    ],
)
def test_extension_header_chains_are_walked(chain: list[object]) -> None:
    layers = IPv6(src="2001:db8::1", dst="2001:db8::2")
    for header in chain:
        layers = layers / header
    packet = parse_ip(bytes(layers / UDP(sport=1, dport=2) / Raw(b"hi")))
    assert packet.proto == 17 and bytes(packet.payload)[8:] == b"hi"


def test_hop_by_hop_after_another_header_is_malformed() -> None:
    packet = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP()
    with pytest.raises(Malformed) as error:
        parse_ip(bytes(packet))
    assert error.value.reason is DropReason.BAD_EXTENSION_HEADER


def test_ipv4_options_are_skipped() -> None:
    packet = IP(src="192.0.2.1", dst="192.0.2.2", options=b"\x01\x07\x07\x04\x00\x00\x00\x00\x00\x00\x00\x00") / UDP() / Raw(b"ok")
    parsed = parse_ip(bytes(packet))
    assert len(parsed.header) == 32 and bytes(parsed.payload)[8:] == b"ok"


@given(
    version=st.sampled_from([4, 6]),
    ports=st.tuples(st.integers(1, 0xFFFF), st.integers(1, 0xFFFF)),
    numbers=st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
    flags=st.integers(0, 0xFF),
    window=st.integers(0, 0xFFFF),
    ident=st.integers(0, 0xFFFF),
    options=st.sampled_from([b"", bytes((1, 1, 8, 10)) + bytes(range(8)), bytes((2, 4, 5, 0xB4))]),
    payload=st.binary(max_size=1500),
)
@settings(derandomize=True, max_examples=300)
def test_one_pass_tcp_packets_are_what_scapy_builds(
    version: int,
    ports: tuple[int, int],
    numbers: tuple[int, int],
    flags: int,
    window: int,
    ident: int,
    options: bytes,
    payload: bytes,
) -> None:
    """The one-pass writer's checksums, summed as numbers, equal scapy's over the bytes."""
    sport, dport = ports
    seq, ack = numbers
    header_len = 20 + len(options)
    if version == 4:
        src, dst = bytes((198, 51, 100, 7)), bytes((203, 0, 113, 9))
        packet = bytearray(20 + header_len + len(payload))
        write_ipv4_tcp(packet, ident, 64, src, dst, sport, dport, seq, ack, flags, window, options, payload)
        ip_layer = IP(src="198.51.100.7", dst="203.0.113.9", id=ident, flags="DF", ttl=64)
    else:
        src, dst = bytes.fromhex("20010db8000000000000000000000007"), bytes.fromhex("20010db8000000000000000000000009")
        packet = bytearray(40 + header_len + len(payload))
        write_ipv6_tcp(packet, 64, src, dst, sport, dport, seq, ack, flags, window, options, payload)
        ip_layer = IPv6(src="2001:db8::7", dst="2001:db8::9", hlim=64)
    tcp_layer = TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, window=window, options=[])
    expected = bytes(ip_layer / tcp_layer / Raw(options + payload))
    # scapy put the options in the payload: move the data offset back over them.
    expected_packet = bytearray(expected)
    tcp_start = 20 if version == 4 else 40
    expected_packet[tcp_start + 12] = (header_len // 4) << 4
    expected_packet[tcp_start + 16 : tcp_start + 18] = b"\0\0"
    rebuilt = IP(bytes(expected_packet)) if version == 4 else IPv6(bytes(expected_packet))
    del rebuilt[TCP].chksum
    assert packet == bytes(rebuilt)
