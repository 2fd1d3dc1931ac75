"""Fragmentation on output and reassembly on input (RFC 791, RFC 8200, RFC 5722)."""

from __future__ import annotations

import random
from ipaddress import ip_address

import pytest
from scapy.all import (
    ICMP,
    IP,
    UDP,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrFragment,
    Raw,
    defragment6,
    fragment,
    fragment6,
)
from scapy.all import defragment as scapy_defragment

from l3l4 import Config, DataReceived, DropReason, Flow, Proto, Stack

PAYLOAD = bytes(random.Random(7).randrange(256) for _ in range(5000))


def udp4(payload: bytes = PAYLOAD, ident: int = 99) -> IP:
    return IP(src="192.0.2.1", dst="203.0.113.5", id=ident) / UDP(sport=1111, dport=2222) / Raw(payload)


def udp6(payload: bytes = PAYLOAD) -> IPv6:
    return IPv6(src="2001:db8::1", dst="2001:db8::5") / IPv6ExtHdrFragment(id=0x1234) / UDP(sport=1111, dport=2222) / Raw(payload)


def ipv4_fragments(size: int = 1000, payload: bytes = PAYLOAD, ident: int = 99) -> list[bytes]:
    return [bytes(f) for f in fragment(udp4(payload, ident), fragsize=size)]


def ipv6_fragments(size: int = 1280, payload: bytes = PAYLOAD) -> list[bytes]:
    return [bytes(f) for f in fragment6(udp6(payload), size)]


def delivered(stack: Stack[bytearray], packets: list[bytes], now: float = 0.0) -> list[bytes]:
    return [e.data for p in packets for e in stack.l3_rx(p, now).events if isinstance(e, DataReceived)]


@pytest.mark.parametrize("make", [ipv4_fragments, ipv6_fragments])
@pytest.mark.parametrize("order", ["in order", "reversed", "shuffled"])
def test_reassembly_in_any_order(stack: Stack[bytearray], make: object, order: str) -> None:
    packets = make()  # type: ignore[operator]
    assert len(packets) >= 4
    if order == "reversed":
        packets.reverse()
    elif order == "shuffled":
        random.Random(3).shuffle(packets)
    assert delivered(stack, packets) == [PAYLOAD]
    assert stack.stats.fragments_reassembled == 1
    assert stack.stats.fragments_received == len(packets)


def test_ipv4_overlap_discards_the_datagram(stack: Stack[bytearray]) -> None:
    first, second, *rest = ipv4_fragments()
    overlapping = IP(first)
    overlapping.frag = 1  # 8 bytes in: overlaps the first fragment
    del overlapping.chksum
    assert delivered(stack, [first, bytes(overlapping), second, *rest]) == []
    assert stack.stats.drops[DropReason.FRAGMENT_OVERLAP] == 1


def test_ipv6_overlap_discards_the_datagram_rfc5722(stack: Stack[bytearray]) -> None:
    packets = ipv6_fragments()
    shifted = IPv6(packets[1])
    shifted[IPv6ExtHdrFragment].offset -= 1
    assert delivered(stack, [packets[0], bytes(shifted)]) == []
    assert stack.stats.drops[DropReason.FRAGMENT_OVERLAP] == 1
    # The datagram's state is gone: the remaining fragments cannot complete it.
    assert delivered(stack, packets[1:]) == []


def test_exact_duplicates_are_ignored(stack: Stack[bytearray]) -> None:
    packets = ipv4_fragments()
    assert delivered(stack, [packets[0], packets[0], *packets[1:]]) == [PAYLOAD]
    assert stack.stats.drops[DropReason.FRAGMENT_DUPLICATE] == 1


def test_incomplete_datagram_times_out_with_icmp() -> None:
    stack = Stack(Config(fragment_timeout=30.0))
    packets = ipv4_fragments()
    delivered(stack, packets[:-1], now=5.0)
    assert stack.next_deadline() == 35.0
    assert stack.l4_poll(34.0).packets == []
    out = stack.l4_poll(35.0)
    assert stack.stats.drops[DropReason.FRAGMENT_TIMEOUT] == 1
    [packet] = out.packets
    error = IP(bytes(packet))
    # RFC 792: time exceeded, code 1, from the address the datagram was sent to.
    assert (error.src, error.dst) == ("203.0.113.5", "192.0.2.1")
    assert (error[ICMP].type, error[ICMP].code) == (11, 1)
    quoted = error[ICMP].payload
    assert quoted.src == "192.0.2.1" and bytes(quoted.payload)[:4] == bytes.fromhex("045708ae")
    assert stack.next_deadline() is None
    # The last fragment alone now starts a new datagram that never completes.
    assert delivered(stack, packets[-1:], now=36.0) == []


def test_ipv6_timeout_without_first_fragment_sends_nothing() -> None:
    stack = Stack(Config(fragment_timeout=60.0))
    delivered(stack, ipv6_fragments()[1:])
    out = stack.l4_poll(60.0)
    assert out.packets == [] and stack.stats.drops[DropReason.FRAGMENT_TIMEOUT] == 1


def test_ipv6_timeout_quotes_the_first_fragment() -> None:
    stack = Stack(Config(fragment_timeout=60.0))
    delivered(stack, ipv6_fragments()[:1])
    [packet] = stack.l4_poll(60.0).packets
    error = IPv6(bytes(packet))
    assert error.haslayer(ICMPv6TimeExceeded) and error[ICMPv6TimeExceeded].code == 1
    assert len(bytes(packet)) <= 1280


def test_reassembly_limits_hold() -> None:
    stack = Stack(Config(max_reassembly_datagrams=2, max_reassembly_bytes=3000, max_fragments_per_datagram=4))
    # Two datagrams under way fill the table; a third is refused.
    for ident in (1, 2):
        stack.l3_rx(ipv4_fragments(size=800, ident=ident)[0], 0.0)
    stack.l3_rx(ipv4_fragments(size=800, ident=3)[0], 0.0)
    assert stack.stats.drops[DropReason.FRAGMENT_LIMIT] == 1
    # Bytes: 2 x 800 held; one more fits under the 3000-byte cap, the next two do not.
    for packet in ipv4_fragments(size=800, ident=1)[1:4]:
        stack.l3_rx(packet, 0.0)
    assert stack.stats.fragments_received == 3
    assert stack.stats.drops[DropReason.FRAGMENT_LIMIT] == 3
    # Once datagrams time out, everything held is released.
    stack.l4_poll(100.0)
    assert stack.next_deadline() is None
    assert delivered(stack, ipv4_fragments(size=1400, payload=PAYLOAD[:2500], ident=4)) == [PAYLOAD[:2500]]


def test_fragment_count_cap_discards_the_datagram() -> None:
    stack = Stack(Config(max_fragments_per_datagram=4))
    assert delivered(stack, ipv4_fragments(size=500)) == []
    assert stack.stats.drops[DropReason.FRAGMENT_LIMIT] >= 1


@pytest.mark.parametrize(("peer", "address"), [("192.0.2.1", "203.0.113.5"), ("2001:db8::1", "2001:db8::5")])
def test_large_datagrams_are_fragmented_on_output(stack: Stack[bytearray], peer: str, address: str) -> None:
    flow = Flow(Proto.UDP, ip_address(address), 2222, ip_address(peer), 1111)
    stack.connect(flow, 0.0)
    out = stack.l4_tx(flow, PAYLOAD, 0.0)
    assert out.accepted == len(PAYLOAD)
    assert len(out.packets) == 4 and all(len(p) <= 1500 for p in out.packets)
    assert stack.stats.fragments_sent == 4
    if ":" in peer:
        parsed = [IPv6(bytes(p)) for p in out.packets]
        assert len({p[IPv6ExtHdrFragment].id for p in parsed}) == 1
        whole = defragment6(parsed)
    else:
        parsed = [IP(bytes(p)) for p in out.packets]
        assert all(p.flags.DF == 0 for p in parsed)
        [whole] = scapy_defragment(parsed)
    assert whole[UDP].load == PAYLOAD
    # The checksum we wrote over the whole datagram is the one scapy computes.
    sent = whole[UDP].chksum
    del whole[UDP].chksum
    assert whole.__class__(bytes(whole))[UDP].chksum == sent


def test_two_stacks_exchange_fragmented_datagrams() -> None:
    small = Stack(Config(mtu=576, secret=b"a" * 16))
    other = Stack(Config(secret=b"b" * 16))
    flow = Flow(Proto.UDP, ip_address("198.51.100.1"), 5000, ip_address("198.18.0.9"), 6000)
    small.connect(flow, 0.0)
    packets = small.l4_tx(flow, PAYLOAD, 0.0).packets
    assert all(len(p) <= 576 for p in packets)
    assert delivered(other, [bytes(p) for p in packets]) == [PAYLOAD]
