"""Every ``DropReason``, provoked by a hostile or malformed packet and counted exactly once.

``DROP_CASES`` maps each member of :class:`l3l4.DropReason` to the packets that must be
dropped for that reason and no other. Adding a reason without a case here fails
``test_every_drop_reason_has_a_case``.

Peers use documentation addresses (RFC 5737, RFC 2544, RFC 3849). Where a reason is
about a non-unicast address, the multicast ones are the documentation groups too
(233.252.0.0/24, RFC 5771; ff0X::db8:0:0/96, RFC 6676), besides the unspecified and
limited-broadcast addresses that the reason exists for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address

import pytest
from scapy.all import (
    ICMP,
    IP,
    TCP,
    UDP,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Raw,
)

import l3l4
from l3l4 import Config, DataReceived, DropReason, ErrorReceived, Flow, Proto, Stack

SECRET = b"0123456789abcdef"
CONFIG = Config(secret=SECRET)

# The peer, the address the stack answers for (any address is its own), and a router.
PEER4, LOCAL4, ROUTER4 = "192.0.2.1", "203.0.113.5", "198.51.100.1"
PEER6, LOCAL6, ROUTER6 = "2001:db8::1", "2001:db8:5::5", "2001:db8:ffff::1"
OTHER4, OTHER6 = "198.18.0.9", "2001:db8:9::9"
MCAST4, MCAST6 = "233.252.0.1", "ff0e::db8:0:1"
PEER_PORT, LOCAL_PORT = 40000, 5353
DATA = b"payload!"


# -- builders ------------------------------------------------------------------------


def ip4(src: str = PEER4, dst: str = LOCAL4, **fields: object) -> IP:
    return IP(src=src, dst=dst, **fields)


def ip6(src: str = PEER6, dst: str = LOCAL6, **fields: object) -> IPv6:
    return IPv6(src=src, dst=dst, **fields)


def udp(**fields: object) -> UDP:
    return UDP(sport=PEER_PORT, dport=LOCAL_PORT, **fields)


def tcp(**fields: object) -> TCP:
    return TCP(sport=PEER_PORT, dport=LOCAL_PORT, **fields)


def udp4(**fields: object) -> bytes:
    return bytes(ip4() / udp(**fields) / Raw(DATA))


def udp6(**fields: object) -> bytes:
    return bytes(ip6() / udp(**fields) / Raw(DATA))


def flip_last(packet: bytes) -> bytes:
    """Corrupt the last payload byte: the transport checksum no longer verifies."""
    return packet[:-1] + bytes((packet[-1] ^ 0x01,))


def patch(packet: bytes, offset: int, value: bytes) -> bytes:
    return packet[:offset] + value + packet[offset + len(value) :]


def ipv4_header_checksum(header: bytes) -> int:
    total = sum(int.from_bytes(header[i : i + 2], "big") for i in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_ipv4_options(packet: bytes, options: bytes) -> bytes:
    """Splice raw options into an IPv4 packet, fixing IHL, total length and checksum."""
    assert len(options) % 4 == 0 and packet[0] == 0x45
    raw = bytearray(packet[:20] + options + packet[20:])
    raw[0] = 0x40 | (20 + len(options)) // 4
    raw[2:4] = len(raw).to_bytes(2, "big")
    raw[10:12] = b"\0\0"
    raw[10:12] = ipv4_header_checksum(bytes(raw[: 20 + len(options)])).to_bytes(2, "big")
    return bytes(raw)


def frag4(offset: int, data: bytes, more: bool, ident: int = 0x4242) -> bytes:
    """An IPv4 fragment; ``offset`` in 8-byte units."""
    return bytes(ip4(id=ident, proto=17, frag=offset, flags="MF" if more else 0) / Raw(data))


def frag6(offset: int, data: bytes, more: bool, ident: int = 0x42424242) -> bytes:
    """An IPv6 fragment; ``offset`` in 8-byte units."""
    return bytes(ip6() / IPv6ExtHdrFragment(nh=17, offset=offset, m=int(more), id=ident) / Raw(data))


def quote4(src: str = LOCAL4, dst: str = PEER4, **fields: object) -> IP:
    """The start of a UDP datagram the stack would have sent to the peer."""
    return IP(src=src, dst=dst, **fields) / UDP(sport=LOCAL_PORT, dport=PEER_PORT) / Raw(DATA)


def quote6(src: str = LOCAL6, dst: str = PEER6) -> IPv6:
    return IPv6(src=src, dst=dst) / UDP(sport=LOCAL_PORT, dport=PEER_PORT) / Raw(DATA)


def unreachable4(quote: object) -> bytes:
    return bytes(ip4(src=ROUTER4) / ICMP(type=3, code=3) / quote)


def unreachable6(quote: object) -> bytes:
    return bytes(ip6(src=ROUTER6) / ICMPv6DestUnreach(code=4) / quote)


def no_buffer(size: int) -> bytearray | None:
    """A ``tx_buffer`` allocator whose pool is always empty."""
    return None


def broken_transmit(packet: bytearray, length: int) -> None:
    """A ``transmit`` callable that fails, as a device write might."""
    raise OSError("the device is gone")


# -- the table -----------------------------------------------------------------------


Script = Callable[[Stack[bytearray]], bytes]


@dataclass(frozen=True)
class Case:
    """Packets fed at time 0: every one but the last is setup (which must not be
    dropped), the last must be dropped. With ``script``, the script runs the setup
    (reading the stack's answers, as a TCP peer must) and returns the packet to drop.
    With ``poll_at``, every packet is setup and the drop must come from
    ``l4_poll(poll_at)``."""

    name: str
    packets: tuple[bytes, ...]
    config: Config = CONFIG
    script: Script | None = None
    tx_buffer_exhausted: bool = False
    transmit_fails: bool = False
    """The stack hands packets to ``broken_transmit``, with errors deferred."""
    poll_at: float | None = None
    packets_out: int = 0
    """Packets the dropping step still emits (a reset, an ACK, an ICMP error)."""
    on_flow: bool = False
    """The drop happens inside the open TCP connection ``TCP_FLOW``."""


def case(
    name: str,
    *packets: bytes,
    config: Config = CONFIG,
    script: Script | None = None,
    tx_buffer_exhausted: bool = False,
    transmit_fails: bool = False,
    poll_at: float | None = None,
    packets_out: int = 0,
    on_flow: bool = False,
) -> Case:
    return Case(name, packets, config, script, tx_buffer_exhausted, transmit_fails, poll_at, packets_out, on_flow)


# -- a TCP peer: the stack answers every SYN, to any address and port -----------------

TCP_FLOW = Flow(Proto.TCP, ip_address(LOCAL4), LOCAL_PORT, ip_address(PEER4), PEER_PORT)
PEER_ISS = 1000
PEER_TS = 7000


def segment(
    flags: str, seq: int, ack: int = 0, payload: bytes = DATA, ts: int | None = None, sport: int = PEER_PORT
) -> bytes:
    options = [("Timestamp", (ts, 0))] if ts is not None else []
    tcp_header = TCP(sport=sport, dport=LOCAL_PORT, flags=flags, seq=seq, ack=ack, window=65535, options=options)
    return bytes(ip4() / tcp_header / Raw(payload))


def syn(sport: int = PEER_PORT, ts: int | None = None) -> bytes:
    return segment("S", PEER_ISS, payload=b"", ts=ts, sport=sport)


def syn_ack_seq(stack: Stack[bytearray], ts: int | None = None) -> int:
    """Send a SYN; return the sequence number after the stack's SYN-ACK (its ISS + 1)."""
    [answer] = stack.l3_rx(syn(ts=ts), 0.0).packets
    reply = IP(bytes(answer))[TCP]
    assert str(reply.flags) == "SA" and reply.ack == PEER_ISS + 1
    return int(reply.seq) + 1


def established(stack: Stack[bytearray], ts: int | None = None) -> int:
    """Complete a handshake from the peer; return the stack's next sequence number."""
    their = syn_ack_seq(stack, ts)
    stack.l3_rx(segment("A", PEER_ISS + 1, their, b"", ts=None if ts is None else ts + 1), 0.0)
    assert TCP_FLOW in stack.flows()
    return their


def out_of_window(stack: Stack[bytearray]) -> bytes:
    return segment("A", PEER_ISS + 1 + 10_000_000, established(stack))


def old_timestamp(stack: Stack[bytearray]) -> bytes:
    their = established(stack, ts=PEER_TS)
    return segment("PA", PEER_ISS + 1, their, ts=PEER_TS - 100)


def inexact_reset(stack: Stack[bytearray]) -> bytes:
    established(stack)
    return segment("R", PEER_ISS + 1 + 100, payload=b"")


def syn_when_established(stack: Stack[bytearray]) -> bytes:
    established(stack)
    return segment("S", PEER_ISS + 1 + 5, payload=b"")


def wrong_ack_of_syn_ack(stack: Stack[bytearray]) -> bytes:
    return segment("A", PEER_ISS + 1, syn_ack_seq(stack) + 1000, b"")


def ack_of_data_never_sent(stack: Stack[bytearray]) -> bytes:
    return segment("A", PEER_ISS + 1, established(stack) + 5000)


def data_without_ack_in_handshake(stack: Stack[bytearray]) -> bytes:
    syn_ack_seq(stack)
    return segment("P", PEER_ISS + 1)


def data_without_ack_established(stack: Stack[bytearray]) -> bytes:
    established(stack)
    return segment("P", PEER_ISS + 1)


def second_hole(stack: Stack[bytearray]) -> bytes:
    """With room for one out-of-order range, a second one (not touching it) is refused."""
    their = established(stack)
    stack.l3_rx(segment("A", PEER_ISS + 1 + 100, their), 0.0)
    return segment("A", PEER_ISS + 1 + 200, their)


def out_of_order(stack: Stack[bytearray]) -> bytes:
    """Data beyond a hole: held for reassembly, if there is room."""
    return segment("A", PEER_ISS + 1 + 100, established(stack))


FRAGMENT_SETUP4 = frag4(0, b"A" * 16, more=True)
FRAGMENT_SETUP6 = frag6(0, b"A" * 16, more=True)
NINE_DEST_OPTS = ip6()
for _ in range(9):
    NINE_DEST_OPTS = NINE_DEST_OPTS / IPv6ExtHdrDestOpt()
OPENED_FLOW4 = udp4()

DROP_CASES: dict[DropReason, tuple[Case, ...]] = {
    DropReason.TRUNCATED: (
        case("empty", b""),
        case("ipv4-19-bytes", udp4()[:19]),
        case("ipv6-39-bytes", udp6()[:39]),
        case("udp-header-4-bytes", bytes(ip4(proto=17) / Raw(b"\x9c\x40\x14\xe9"))),
        case("udp6-header-7-bytes", bytes(ip6(nh=17) / Raw(b"\x9c\x40\x14\xe9\x00\x08\x00"))),
        case("tcp-header-19-bytes", bytes(ip4(proto=6) / Raw(bytes(tcp())[:19]))),
        case("icmp-header-7-bytes", bytes(ip4(proto=1) / Raw(b"\x08\x00\xf7\xff\x00\x00\x00"))),
        case("icmpv6-header-4-bytes", bytes(ip6(nh=58) / Raw(b"\x80\x00\x00\x00"))),
    ),
    DropReason.BAD_VERSION: (
        case("version-5", patch(udp4(), 0, b"\x55")),
        case("version-0", patch(udp6(), 0, b"\x00")),
        case("version-15-one-byte", b"\xf0"),
    ),
    DropReason.BAD_HEADER_LENGTH: (
        case("ihl-4", patch(udp4(), 0, b"\x44")),
        case("ihl-0", patch(udp4(), 0, b"\x40")),
        case("header-longer-than-total-length", patch(patch(udp4(), 0, b"\x46"), 2, (20).to_bytes(2, "big"))),
    ),
    DropReason.BAD_TOTAL_LENGTH: (
        case("ipv4-total-past-buffer", bytes(ip4(len=20 + 8 + len(DATA) + 1) / udp() / Raw(DATA))),
        case("ipv6-payload-past-buffer", bytes(ip6(plen=8 + len(DATA) + 1) / udp() / Raw(DATA))),
    ),
    DropReason.BAD_IP_CHECKSUM: (
        case("header-checksum-flipped", patch(udp4(), 10, bytes((udp4()[10] ^ 0xFF,)))),
        case("ttl-changed-checksum-kept", patch(udp4(), 8, b"\x01")),
    ),
    DropReason.TTL_EXPIRED: (
        case("ipv4-ttl-0", bytes(ip4(ttl=0) / udp() / Raw(DATA))),
        case("ipv6-hop-limit-0", bytes(ip6(hlim=0) / udp() / Raw(DATA))),
    ),
    DropReason.BAD_IPV4_OPTIONS: (
        case("option-overruns-header", with_ipv4_options(udp4(), b"\x07\x09\x04\x00")),
        case("option-length-1", with_ipv4_options(udp4(), b"\x83\x01\x00\x00")),
        case("option-length-byte-missing", with_ipv4_options(udp4(), b"\x01\x01\x01\x44")),
    ),
    DropReason.BAD_ADDRESS: (
        case("ipv4-multicast-destination", bytes(ip4(dst=MCAST4) / udp() / Raw(DATA))),
        case("ipv4-multicast-source", bytes(ip4(src=MCAST4) / udp() / Raw(DATA))),
        case("ipv4-broadcast-destination", bytes(ip4(dst="255.255.255.255") / udp() / Raw(DATA))),
        case("ipv4-unspecified-source", bytes(ip4(src="0.0.0.0") / udp() / Raw(DATA))),
        case("ipv4-unspecified-destination", bytes(ip4(dst="0.0.0.0") / ICMP(type=8))),
        case("ipv6-multicast-destination", bytes(ip6(dst=MCAST6) / udp() / Raw(DATA))),
        case("ipv6-multicast-source", bytes(ip6(src=MCAST6) / ICMPv6EchoRequest())),
        case("ipv6-unspecified-source", bytes(ip6(src="::") / udp() / Raw(DATA))),
        case("ipv6-unspecified-destination", bytes(ip6(dst="::") / tcp(flags="S"))),
    ),
    DropReason.BAD_EXTENSION_HEADER: (
        case("hop-by-hop-not-first", bytes(ip6() / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / udp() / Raw(DATA))),
        case("length-overruns-packet", patch(bytes(ip6() / IPv6ExtHdrDestOpt() / udp() / Raw(DATA)), 41, b"\x03")),
        case("fewer-than-8-bytes-left", bytes(ip6(nh=60) / Raw(b"\x11\x00\x01\x02"))),
        case("two-fragment-headers", bytes(ip6() / IPv6ExtHdrFragment(id=1) / IPv6ExtHdrFragment(id=2) / udp() / Raw(DATA))),
    ),
    DropReason.TOO_MANY_EXTENSION_HEADERS: (
        case("nine-destination-options", bytes(NINE_DEST_OPTS / udp() / Raw(DATA))),
        case(
            "three-over-a-cap-of-two",
            bytes(ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / udp() / Raw(DATA)),
            config=Config(secret=SECRET, max_extension_headers=2),
        ),
    ),
    DropReason.ROUTING_HEADER: (
        case("segments-left-1", bytes(ip6() / IPv6ExtHdrRouting(addresses=[OTHER6], segleft=1) / udp() / Raw(DATA))),
        case(
            "after-hop-by-hop",
            bytes(ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=[OTHER6, PEER6]) / udp() / Raw(DATA)),
        ),
    ),
    DropReason.UNSUPPORTED_PROTOCOL: (
        case("ipv4-gre", bytes(ip4(proto=47) / Raw(b"\x00\x00\x08\x00" + DATA))),
        case("icmpv6-over-ipv4", bytes(ip4(proto=58) / ICMPv6EchoRequest())),
        case("icmp-over-ipv6", bytes(ip6(nh=1) / ICMP(type=8))),
        case("ipv6-no-next-header", bytes(ip6(nh=59))),
        case("sctp-after-destination-options", bytes(ip6() / IPv6ExtHdrDestOpt(nh=132) / Raw(DATA))),
    ),
    DropReason.BAD_FRAGMENT: (
        case("ipv4-non-final-not-multiple-of-8", frag4(0, b"A" * 13, more=True)),
        case("ipv6-non-final-not-multiple-of-8", frag6(0, b"A" * 13, more=True)),
        case("ipv4-non-final-empty", frag4(1, b"", more=True)),
        case("ipv4-second-different-end", frag4(2, b"B" * 8, more=False), frag4(4, b"C" * 8, more=False)),
        case("ipv6-piece-past-known-end", frag6(2, b"B" * 8, more=False), frag6(3, b"C" * 8, more=True)),
        case("ipv4-end-before-held-piece", FRAGMENT_SETUP4, frag4(1, b"", more=False)),
    ),
    DropReason.FRAGMENT_TOO_LARGE: (
        case("ipv4-past-65535", frag4(8189, b"Z" * 16, more=False)),
        case("ipv4-header-tips-it-over", frag4(8189, b"Z" * 8, more=True)),
        case("ipv6-past-65535", frag6(8189, b"Z" * 40, more=False)),
    ),
    DropReason.FRAGMENT_OVERLAP: (
        case("ipv4-partial-overlap", FRAGMENT_SETUP4, frag4(1, b"A" * 16, more=True)),
        case("ipv6-partial-overlap", FRAGMENT_SETUP6, frag6(1, b"A" * 16, more=False)),
        case("ipv4-same-range-other-bytes", FRAGMENT_SETUP4, frag4(0, b"B" * 16, more=True)),
    ),
    DropReason.FRAGMENT_DUPLICATE: (
        case("ipv4", FRAGMENT_SETUP4, FRAGMENT_SETUP4),
        case("ipv6", FRAGMENT_SETUP6, FRAGMENT_SETUP6),
    ),
    DropReason.FRAGMENT_LIMIT: (
        case(
            "datagrams",
            FRAGMENT_SETUP4,
            frag4(0, b"A" * 16, more=True, ident=0x4343),
            config=Config(secret=SECRET, max_reassembly_datagrams=1),
        ),
        case(
            "fragments-per-datagram",
            frag6(0, b"A" * 8, more=True),
            frag6(2, b"B" * 8, more=True),
            frag6(4, b"C" * 8, more=True),
            config=Config(secret=SECRET, max_fragments_per_datagram=2),
        ),
        case(
            "bytes",
            FRAGMENT_SETUP4,
            frag4(2, b"B" * 8, more=True, ident=0x4343),
            config=Config(secret=SECRET, max_reassembly_bytes=16),
        ),
    ),
    DropReason.FRAGMENT_TIMEOUT: (
        case("ipv4-first-fragment-answered", FRAGMENT_SETUP4, poll_at=CONFIG.fragment_timeout, packets_out=1),
        case("ipv6-first-fragment-answered", FRAGMENT_SETUP6, poll_at=CONFIG.fragment_timeout, packets_out=1),
        case("ipv4-later-fragment-only", frag4(2, b"B" * 8, more=False), poll_at=CONFIG.fragment_timeout),
        case(
            "icmp-errors-off",
            FRAGMENT_SETUP6,
            poll_at=5.0,
            config=Config(secret=SECRET, fragment_timeout=5.0, icmp_errors=False),
        ),
    ),
    DropReason.BAD_L4_CHECKSUM: (
        case("udp4", flip_last(udp4())),
        case("udp6", flip_last(udp6())),
        case("udp6-zero-checksum", udp6(chksum=0)),
        case("tcp4", flip_last(bytes(ip4() / tcp(flags="S") / Raw(DATA)))),
        case("tcp6", flip_last(bytes(ip6() / tcp(flags="A") / Raw(DATA)))),
        case("icmp4-echo", flip_last(bytes(ip4() / ICMP(type=8) / Raw(DATA)))),
        case("icmpv6-echo", flip_last(bytes(ip6() / ICMPv6EchoRequest(data=DATA)))),
        case("icmpv6-pseudo-header", patch(bytes(ip6() / ICMPv6EchoRequest(data=DATA)), 8 + 15, b"\x02")),
    ),
    DropReason.BAD_UDP_LENGTH: (
        case("udp4-length-7", udp4(len=7)),
        case("udp4-length-past-ip-payload", udp4(len=8 + len(DATA) + 1)),
        case("udp6-length-0", udp6(len=0)),
    ),
    DropReason.BAD_TCP_HEADER: (
        case("data-offset-4", bytes(ip4() / tcp(dataofs=4) / Raw(DATA))),
        case("data-offset-past-segment", bytes(ip6() / tcp(dataofs=15) / Raw(DATA))),
    ),
    DropReason.BAD_TCP_OPTIONS: (
        case("option-length-1", bytes(ip4() / tcp(dataofs=6, flags="S") / Raw(b"\x02\x01\x00\x00"))),
        case("option-overruns", bytes(ip6() / tcp(dataofs=6, flags="S") / Raw(b"\x08\x0a\x00\x00"))),
        case("length-byte-missing", bytes(ip4() / tcp(dataofs=6, flags="S") / Raw(b"\x01\x01\x01\x03"))),
    ),
    DropReason.ZERO_PORT: (
        case("udp4-source-0", bytes(ip4() / UDP(sport=0, dport=LOCAL_PORT) / Raw(DATA))),
        case("udp6-destination-0", bytes(ip6() / UDP(sport=PEER_PORT, dport=0) / Raw(DATA))),
        case("tcp4-destination-0", bytes(ip4() / TCP(sport=PEER_PORT, dport=0, flags="S"))),
        case("tcp6-source-0", bytes(ip6() / TCP(sport=0, dport=LOCAL_PORT, flags="S"))),
    ),
    DropReason.TCP_NO_CONNECTION: (
        case("ack4-answered-with-reset", segment("A", 5, 77), packets_out=1),
        case("fin6-answered-with-reset", bytes(ip6() / tcp(flags="F", seq=9)), packets_out=1),
        case("syn-ack-answered-with-reset", segment("SA", 5, 77, b""), packets_out=1),
        case("reset-not-answered", segment("R", 5, payload=b"")),
    ),
    DropReason.TCP_FLOW_LIMIT: (
        case(
            "second-syn-over-a-cap-of-one",
            syn(),
            syn(sport=PEER_PORT + 1),
            config=Config(secret=SECRET, max_tcp_flows=1),
            packets_out=1,
        ),
    ),
    DropReason.TCP_OUT_OF_WINDOW: (
        case("data-10-mb-ahead", script=out_of_window, packets_out=1, on_flow=True),
        case("in-handshake", syn(), segment("A", PEER_ISS + 1 + 10_000_000, 1), packets_out=1, on_flow=True),
    ),
    DropReason.TCP_PAWS: (
        case("timestamp-older-than-recent", script=old_timestamp, packets_out=1, on_flow=True),
        case("in-handshake", syn(ts=PEER_TS), segment("A", PEER_ISS + 1, 1, ts=1), packets_out=1, on_flow=True),
    ),
    DropReason.TCP_CHALLENGED: (
        case("reset-in-window-not-exact", script=inexact_reset, packets_out=1, on_flow=True),
        case("syn-on-established", script=syn_when_established, packets_out=1, on_flow=True),
    ),
    DropReason.TCP_BAD_ACK: (
        case("wrong-ack-of-syn-ack", script=wrong_ack_of_syn_ack, packets_out=1, on_flow=True),
        case("ack-of-data-never-sent", script=ack_of_data_never_sent, packets_out=1, on_flow=True),
    ),
    DropReason.TCP_NO_ACK: (
        case("data-in-handshake", script=data_without_ack_in_handshake, on_flow=True),
        case("data-established", script=data_without_ack_established, on_flow=True),
    ),
    DropReason.TCP_REASSEMBLY_LIMIT: (
        case(
            "second-hole-over-a-cap-of-one",
            script=second_hole,
            config=Config(secret=SECRET, tcp_max_ooo_ranges=1),
            packets_out=1,
            on_flow=True,
        ),
    ),
    DropReason.TCP_BUFFER_LIMIT: (
        case(
            "out-of-order-over-a-stack-wide-budget-of-4-bytes",
            script=out_of_order,
            config=Config(secret=SECRET, max_tcp_buffer_bytes=4),
            packets_out=1,
            on_flow=True,
        ),
    ),
    DropReason.BAD_ICMP: (
        case("ipv4-quote-too-short", unreachable4(Raw(bytes(quote4())[:19]))),
        case("ipv4-quote-not-ipv4", unreachable4(Raw(patch(bytes(quote4()), 0, b"\x65")))),
        case("ipv4-quote-later-fragment", unreachable4(quote4(frag=1))),
        case("ipv4-quote-not-tcp-or-udp", unreachable4(IP(src=LOCAL4, dst=PEER4) / ICMP(type=8))),
        case("ipv4-quote-ports-cut", unreachable4(Raw(bytes(quote4())[:22]))),
        case("ipv4-quote-from-someone-else", OPENED_FLOW4, unreachable4(quote4(src=OTHER4))),
        case("ipv6-quote-too-short", unreachable6(Raw(bytes(quote6())[:39]))),
        case("ipv6-quote-not-ipv6", unreachable6(Raw(patch(bytes(quote6()), 0, b"\x40")))),
        case(
            "ipv6-quote-later-fragment",
            unreachable6(IPv6(src=LOCAL6, dst=PEER6) / IPv6ExtHdrFragment(nh=17, offset=1) / Raw(DATA)),
        ),
        case("ipv6-quote-extension-header-cut", unreachable6(Raw(bytes(IPv6(src=LOCAL6, dst=PEER6, nh=60)) + b"\x11\x00"))),
        case(
            "ipv6-packet-too-big-quote-from-someone-else",
            bytes(ip6(src=ROUTER6) / ICMPv6PacketTooBig(mtu=1280) / quote6(src=OTHER6)),
        ),
    ),
    DropReason.ICMP_UNHANDLED: (
        case("ipv4-echo-reply", bytes(ip4() / ICMP(type=0) / Raw(DATA))),
        case("ipv4-timestamp", bytes(ip4() / ICMP(type=13) / Raw(bytes(12)))),
        case("ipv4-redirect", bytes(ip4(src=ROUTER4) / ICMP(type=5, code=1) / quote4())),
        case("ipv6-echo-reply", bytes(ip6() / ICMPv6EchoReply(data=DATA))),
        case("ipv6-unknown-type-200", bytes(ip6() / ICMPv6EchoRequest(type=200))),
        case("ipv4-echo-turned-off", bytes(ip4() / ICMP(type=8)), config=Config(secret=SECRET, icmp_echo=False)),
        case("ipv6-echo-turned-off", bytes(ip6() / ICMPv6EchoRequest()), config=Config(secret=SECRET, icmp_echo=False)),
    ),
    DropReason.ICMP_NO_FLOW: (
        case("ipv4-port-unreachable", unreachable4(quote4())),
        case("ipv4-fragmentation-needed", bytes(ip4(src=ROUTER4) / ICMP(type=3, code=4, nexthopmtu=1400) / quote4())),
        case("ipv4-quotes-tcp", unreachable4(IP(src=LOCAL4, dst=PEER4) / TCP(sport=LOCAL_PORT, dport=PEER_PORT))),
        case("ipv6-packet-too-big", bytes(ip6(src=ROUTER6) / ICMPv6PacketTooBig(mtu=1280) / quote6())),
        case("ipv6-time-exceeded", bytes(ip6(src=ROUTER6) / ICMPv6TimeExceeded() / quote6())),
        case("ipv4-flow-open-other-port", OPENED_FLOW4, unreachable4(IP(src=LOCAL4, dst=PEER4) / UDP(sport=LOCAL_PORT + 1, dport=PEER_PORT))),
    ),
    DropReason.TX_BUFFER_EXHAUSTED: (
        case("ipv4-echo-reply", bytes(ip4() / ICMP(type=8, id=1, seq=2) / Raw(DATA)), tx_buffer_exhausted=True),
        case("ipv6-echo-reply", bytes(ip6() / ICMPv6EchoRequest(id=1, seq=2, data=DATA)), tx_buffer_exhausted=True),
    ),
    DropReason.TX_CALLBACK_FAILED: (
        case("ipv4-echo-reply", bytes(ip4() / ICMP(type=8, id=1, seq=2) / Raw(DATA)), transmit_fails=True),
        case("ipv6-echo-reply", bytes(ip6() / ICMPv6EchoRequest(id=1, seq=2, data=DATA)), transmit_fails=True),
    ),
}


def make_stack(case: Case) -> Stack[bytearray]:
    if case.tx_buffer_exhausted:
        return Stack(case.config, tx_buffer=no_buffer)
    if case.transmit_fails:
        return Stack(case.config, tx_buffer=bytearray, tx_buffer_view=memoryview, transmit=broken_transmit, tx_errors=[])
    return Stack(case.config)


def drop_delta(before: dict[DropReason, int], after: dict[DropReason, int]) -> dict[DropReason, int]:
    return {reason: after[reason] - before[reason] for reason in DropReason if after[reason] != before[reason]}


def test_every_drop_reason_has_a_case() -> None:
    assert set(DROP_CASES) == set(DropReason)
    assert all(DROP_CASES.values())
    assert DropReason is l3l4.DropReason


@pytest.mark.parametrize(
    ("reason", "case"),
    [pytest.param(reason, case, id=f"{reason.value}-{case.name}") for reason, cases in DROP_CASES.items() for case in cases],
)
def test_drop_reason(reason: DropReason, case: Case) -> None:
    stack = make_stack(case)
    setup = case.packets if case.poll_at is not None or case.script is not None else case.packets[:-1]
    for packet in setup:
        stack.l3_rx(packet, 0.0)
    hostile = case.script(stack) if case.script is not None else case.packets[-1]
    assert stack.stats.dropped == 0, f"setup was dropped: {stack.stats.as_dict()}"
    flows = stack.flows()
    before = dict(stack.stats.drops)
    fed = stack.stats.rx_packets

    if case.poll_at is not None:
        out = stack.l4_poll(case.poll_at)
    else:
        out = stack.l3_rx(hostile, 0.0)

    assert drop_delta(before, stack.stats.drops) == {reason: 1}
    assert stack.stats.dropped == 1
    assert stack.stats.rx_packets == fed + (case.poll_at is None)
    assert out.events == []
    assert out.flow == (TCP_FLOW if case.on_flow else None)
    assert len(out.packets) == case.packets_out
    assert stack.flows() == flows
    assert stack.stats.icmp_errors_received == 0


# -- controls: the packets the cases corrupt are fine as built ------------------------


@pytest.mark.parametrize(
    "packet",
    [
        pytest.param(udp4(), id="udp4"),
        pytest.param(udp6(), id="udp6"),
        pytest.param(with_ipv4_options(udp4(), b"\x07\x07\x04\x00\x00\x00\x00\x00"), id="udp4-record-route"),
        pytest.param(bytes(ip6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / udp() / Raw(DATA)), id="udp6-options"),
        pytest.param(
            bytes(ip6() / IPv6ExtHdrRouting(addresses=[OTHER6], segleft=0) / udp() / Raw(DATA)), id="udp6-routed-here"
        ),
        pytest.param(bytes(ip6() / IPv6ExtHdrFragment(id=9) / udp() / Raw(DATA)), id="udp6-atomic-fragment"),
    ],
)
def test_control_datagrams_are_delivered(packet: bytes) -> None:
    stack = Stack(CONFIG)
    out = stack.l3_rx(packet, 0.0)
    assert stack.stats.dropped == 0
    assert [event.data for event in out.events if isinstance(event, DataReceived)] == [DATA]


def test_control_icmp_error_for_an_open_flow_is_delivered() -> None:
    stack = Stack(CONFIG)
    stack.l3_rx(OPENED_FLOW4, 0.0)
    out = stack.l3_rx(unreachable4(quote4()), 0.0)
    assert stack.stats.dropped == 0
    assert [type(event) for event in out.events] == [ErrorReceived]


def test_control_fragments_reassemble() -> None:
    stack = Stack(CONFIG)
    datagram = bytes(ip4(proto=17) / UDP(sport=PEER_PORT, dport=LOCAL_PORT) / Raw(DATA * 3))[20:]
    first = frag4(0, datagram[:16], more=True)
    last = frag4(2, datagram[16:], more=False)
    assert stack.l3_rx(first, 0.0).events == []
    out = stack.l3_rx(last, 0.0)
    assert stack.stats.dropped == 0
    assert [event.data for event in out.events if isinstance(event, DataReceived)] == [DATA * 3]


def test_control_tcp_handshake_is_not_a_drop() -> None:
    stack = Stack(CONFIG)
    their = established(stack, ts=PEER_TS)
    out = stack.l3_rx(segment("PA", PEER_ISS + 1, their, ts=PEER_TS + 2), 0.0)
    assert stack.stats.dropped == 0
    assert out.events == [DataReceived(TCP_FLOW, DATA)]
