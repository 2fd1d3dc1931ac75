"""ICMP and ICMPv6: echo for any address, errors mapped to the flows they quote."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.all import (
    ICMP,
    IP,
    UDP,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_RS,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrFragment,
    Raw,
)

from l3l4 import Config, DropReason, ErrorReceived, Flow, IcmpErrorKind, Proto, Stack


@pytest.mark.parametrize("address", ["203.0.113.77", "198.18.1.1", "192.0.2.255"])
def test_ipv4_echo_for_any_address(stack: Stack[bytearray], address: str) -> None:
    request = IP(src="198.51.100.3", dst=address, ttl=3) / ICMP(type=8, id=0x4242, seq=9) / Raw(b"abcdefgh" * 7)
    [packet] = stack.l3_rx(bytes(request), 0.0).packets
    reply = IP(bytes(packet))
    assert (reply.src, reply.dst, reply.ttl) == (address, "198.51.100.3", 64)
    assert (reply[ICMP].type, reply[ICMP].code, reply[ICMP].id, reply[ICMP].seq) == (0, 0, 0x4242, 9)
    assert reply[ICMP].load == b"abcdefgh" * 7
    check = reply.copy()
    del check[IP].chksum, check[ICMP].chksum
    assert bytes(IP(bytes(check))) == bytes(packet)
    assert stack.stats.icmp_echo_replied == 1 and stack.flows() == []


def test_ipv6_echo_for_any_address(stack: Stack[bytearray]) -> None:
    request = IPv6(src="2001:db8::1", dst="2001:db8:abcd::99") / ICMPv6EchoRequest(id=7, seq=1, data=b"x" * 100)
    [packet] = stack.l3_rx(bytes(request), 0.0).packets
    reply = IPv6(bytes(packet))
    assert (reply.src, reply.dst) == ("2001:db8:abcd::99", "2001:db8::1")
    assert reply.haslayer(ICMPv6EchoReply) and reply[ICMPv6EchoReply].data == b"x" * 100
    check = reply.copy()
    del check[ICMPv6EchoReply].cksum
    assert bytes(IPv6(bytes(check))) == bytes(packet)


def test_large_echo_is_reassembled_and_fragmented_back(stack: Stack[bytearray]) -> None:
    from scapy.all import fragment6, defragment6

    request = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=5) / ICMPv6EchoRequest(id=1, seq=1, data=b"z" * 3000)
    packets = [p for f in fragment6(request, 1280) for p in stack.l3_rx(bytes(f), 0.0).packets]
    assert len(packets) == 3
    reply = defragment6([IPv6(bytes(p)) for p in packets])
    assert reply[ICMPv6EchoReply].data == b"z" * 3000


def test_echo_can_be_turned_off() -> None:
    stack = Stack(Config(icmp_echo=False))
    out = stack.l3_rx(bytes(IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(type=8)), 0.0)
    assert out.packets == [] and stack.stats.drops[DropReason.ICMP_UNHANDLED] == 1


def test_informational_icmpv6_is_counted_not_answered(stack: Stack[bytearray]) -> None:
    out = stack.l3_rx(bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6ND_RS()), 0.0)
    assert out.packets == [] and stack.stats.drops[DropReason.ICMP_UNHANDLED] == 1


def open_udp(stack: Stack[bytearray], local: str, remote: str) -> Flow:
    flow = Flow(Proto.UDP, ip_address(local), 5000, ip_address(remote), 53)
    stack.connect(flow, 0.0)
    return flow


def test_ipv4_unreachable_reaches_the_flow(stack: Stack[bytearray]) -> None:
    flow = open_udp(stack, "198.51.100.7", "203.0.113.53")
    [sent] = stack.l4_tx(flow, b"query", 0.0).packets
    error = IP(src="192.0.2.254", dst="198.51.100.7") / ICMP(type=3, code=3) / IP(bytes(sent))
    out = stack.l3_rx(bytes(error), 1.0)
    assert out.events == [
        ErrorReceived(flow, IcmpErrorKind.UNREACHABLE, 3, 3, None, ip_address("192.0.2.254"))
    ]
    assert out.flow == flow and stack.stats.icmp_errors_received == 1


def test_ipv4_fragmentation_needed_lowers_the_path_mtu(stack: Stack[bytearray]) -> None:
    flow = open_udp(stack, "198.51.100.7", "203.0.113.53")
    [sent] = stack.l4_tx(flow, b"q" * 1400, 0.0).packets
    quote = bytes(sent)[:28]
    error = IP(src="192.0.2.254", dst="198.51.100.7") / ICMP(type=3, code=4, nexthopmtu=1000) / Raw(quote)
    [event] = stack.l3_rx(bytes(error), 1.0).events
    assert isinstance(event, ErrorReceived) and event.kind is IcmpErrorKind.PACKET_TOO_BIG and event.mtu == 1000
    assert stack.path_mtu(flow) == 1000
    assert all(len(p) <= 1000 for p in stack.l4_tx(flow, b"q" * 1400, 2.0).packets)


def test_ipv6_packet_too_big_lowers_the_path_mtu(stack: Stack[bytearray]) -> None:
    flow = open_udp(stack, "2001:db8::7", "2001:db8:53::53")
    [sent] = stack.l4_tx(flow, b"q" * 1400, 0.0).packets
    error = IPv6(src="2001:db8:ff::1", dst="2001:db8::7") / ICMPv6PacketTooBig(mtu=1280) / Raw(bytes(sent)[:1232])
    [event] = stack.l3_rx(bytes(error), 1.0).events
    assert isinstance(event, ErrorReceived) and event.mtu == 1280 and event.icmp_type == 2
    packets = stack.l4_tx(flow, b"q" * 1400, 2.0).packets
    assert len(packets) == 2 and all(len(p) <= 1280 for p in packets)


def test_ipv6_packet_too_big_never_goes_below_1280(stack: Stack[bytearray]) -> None:
    flow = open_udp(stack, "2001:db8::7", "2001:db8:53::53")
    [sent] = stack.l4_tx(flow, b"q", 0.0).packets
    error = IPv6(src="2001:db8:ff::1", dst="2001:db8::7") / ICMPv6PacketTooBig(mtu=600) / Raw(bytes(sent))
    stack.l3_rx(bytes(error), 1.0)
    assert stack.path_mtu(flow) == 1280


def test_ipv6_unreachable_and_time_exceeded(stack: Stack[bytearray]) -> None:
    flow = open_udp(stack, "2001:db8::7", "2001:db8:53::53")
    [sent] = stack.l4_tx(flow, b"q", 0.0).packets
    for layer, kind in ((ICMPv6DestUnreach(code=4), IcmpErrorKind.UNREACHABLE), (ICMPv6TimeExceeded(), IcmpErrorKind.TIME_EXCEEDED)):
        error = IPv6(src="2001:db8:ff::1", dst="2001:db8::7") / layer / Raw(bytes(sent))
        [event] = stack.l3_rx(bytes(error), 1.0).events
        assert isinstance(event, ErrorReceived) and event.kind is kind and event.flow == flow


def test_error_for_no_flow_is_counted(stack: Stack[bytearray]) -> None:
    quote = IP(src="198.51.100.7", dst="203.0.113.53") / UDP(sport=9, dport=9)
    error = IP(src="192.0.2.254", dst="198.51.100.7") / ICMP(type=3, code=1) / quote
    assert stack.l3_rx(bytes(error), 0.0).events == []
    assert stack.stats.drops[DropReason.ICMP_NO_FLOW] == 1


def test_error_not_sent_to_the_flows_address_is_refused(stack: Stack[bytearray]) -> None:
    flow = open_udp(stack, "198.51.100.7", "203.0.113.53")
    [sent] = stack.l4_tx(flow, b"query", 0.0).packets
    # A forged error aimed at another address, quoting our flow.
    error = IP(src="192.0.2.254", dst="198.51.100.8") / ICMP(type=3, code=3) / IP(bytes(sent))
    assert stack.l3_rx(bytes(error), 1.0).events == []
    assert stack.stats.drops[DropReason.BAD_ICMP] == 1
