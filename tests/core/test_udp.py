"""UDP for any address, IPv4 and IPv6, checked with scapy as an independent codec."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.all import IP, UDP, IPv6, Raw

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    DropReason,
    Flow,
    FlowClosed,
    FlowExistsError,
    FlowOpened,
    L3L4Error,
    PayloadTooLargeError,
    Proto,
    Stack,
    UnknownFlowError,
)

ENDPOINTS = [
    ("192.0.2.10", "203.0.113.7"),
    ("198.51.100.200", "198.18.255.254"),
    ("2001:db8::1", "2001:db8:ffff::53"),
    ("2001:db8:1::a", "2001:db8:2::b"),
]


def datagram(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    layer = IP(src=src, dst=dst) if ":" not in src else IPv6(src=src, dst=dst)
    return bytes(layer / UDP(sport=sport, dport=dport) / Raw(payload))


@pytest.mark.parametrize(("peer", "address"), ENDPOINTS)
def test_echo_to_any_address(stack: Stack[bytearray], peer: str, address: str) -> None:
    out = stack.l3_rx(datagram(peer, address, 40000, 7, b"ping"), 0.0)
    flow = Flow(Proto.UDP, ip_address(address), 7, ip_address(peer), 40000)
    assert out.events == [FlowOpened(flow), DataReceived(flow, b"ping")]
    assert out.flow == flow and out.packets == []

    reply = stack.l4_tx(flow, b"pong!", 0.5)
    assert reply.accepted == 5
    [packet] = reply.packets
    parsed = IP(bytes(packet)) if ":" not in peer else IPv6(bytes(packet))
    assert (parsed.src, parsed.dst) == (address, peer)
    assert (parsed[UDP].sport, parsed[UDP].dport) == (7, 40000)
    assert bytes(parsed[UDP].payload) == b"pong!"
    # scapy recomputes every checksum from scratch: the bytes must be identical.
    rebuilt = parsed.copy()
    if ":" not in peer:
        del rebuilt[IP].chksum
    del rebuilt[UDP].chksum
    assert bytes(rebuilt) == bytes(packet)


def test_second_datagram_reuses_the_flow(stack: Stack[bytearray]) -> None:
    stack.l3_rx(datagram("192.0.2.1", "203.0.113.9", 1234, 53, b"a"), 0.0)
    out = stack.l3_rx(datagram("192.0.2.1", "203.0.113.9", 1234, 53, b"b"), 1.0)
    assert [type(e) for e in out.events] == [DataReceived]
    assert len(stack.flows()) == 1
    assert stack.stats.flows_opened == 1


def test_flows_are_per_five_tuple(stack: Stack[bytearray]) -> None:
    stack.l3_rx(datagram("192.0.2.1", "203.0.113.9", 1234, 53, b"a"), 0.0)
    stack.l3_rx(datagram("192.0.2.1", "203.0.113.9", 1235, 53, b"a"), 0.0)
    stack.l3_rx(datagram("192.0.2.1", "203.0.113.10", 1234, 53, b"a"), 0.0)
    stack.l3_rx(datagram("192.0.2.1", "203.0.113.9", 1234, 54, b"a"), 0.0)
    assert len(stack.flows()) == 4


def test_empty_datagram_is_delivered(stack: Stack[bytearray]) -> None:
    out = stack.l3_rx(datagram("2001:db8::1", "2001:db8::2", 5, 6, b""), 0.0)
    assert isinstance(out.events[-1], DataReceived) and out.events[-1].data == b""


def test_ipv4_zero_checksum_means_none(stack: Stack[bytearray]) -> None:
    packet = IP(src="192.0.2.1", dst="203.0.113.1") / UDP(sport=1, dport=2, chksum=0) / Raw(b"x")
    out = stack.l3_rx(bytes(packet), 0.0)
    assert isinstance(out.events[-1], DataReceived)


def test_trailing_padding_is_ignored(stack: Stack[bytearray]) -> None:
    out = stack.l3_rx(datagram("192.0.2.1", "203.0.113.1", 1, 2, b"abc") + b"\0" * 10, 0.0)
    assert isinstance(out.events[-1], DataReceived) and out.events[-1].data == b"abc"


def test_delivered_data_does_not_alias_the_packet(stack: Stack[bytearray]) -> None:
    buffer = bytearray(datagram("192.0.2.1", "203.0.113.1", 1, 2, b"keep me"))
    out = stack.l3_rx(buffer, 0.0)
    buffer[-7:] = b"XXXXXXX"
    assert isinstance(out.events[-1], DataReceived) and out.events[-1].data == b"keep me"


def test_idle_flows_close_after_the_timeout() -> None:
    stack = Stack(Config(udp_idle_timeout=10.0))
    stack.l3_rx(datagram("192.0.2.1", "203.0.113.1", 1000, 53, b"a"), 0.0)
    stack.l3_rx(datagram("192.0.2.2", "203.0.113.1", 1000, 53, b"b"), 4.0)
    assert stack.next_deadline() == 10.0
    assert stack.l4_poll(9.9).events == []
    first = Flow(Proto.UDP, ip_address("203.0.113.1"), 53, ip_address("192.0.2.1"), 1000)
    assert stack.l4_poll(10.0).events == [FlowClosed(first, CloseReason.IDLE)]
    assert stack.next_deadline() == 14.0
    # Sending keeps a flow alive as well as receiving does.
    second = stack.flows()[0]
    stack.l4_tx(second, b"still here", 13.0)
    assert stack.l4_poll(14.0).events == []
    assert stack.next_deadline() == 23.0
    assert [type(e) for e in stack.l4_poll(23.0).events] == [FlowClosed]
    assert stack.next_deadline() is None and stack.flows() == []


def test_flow_cap_evicts_the_least_recently_used() -> None:
    stack = Stack(Config(max_udp_flows=3))
    for port in (1, 2, 3):
        stack.l3_rx(datagram("192.0.2.1", "203.0.113.1", port, 53, b"x"), float(port))
    stack.l3_rx(datagram("192.0.2.1", "203.0.113.1", 1, 53, b"x"), 4.0)  # port 1 is fresh again
    out = stack.l3_rx(datagram("192.0.2.1", "203.0.113.1", 4, 53, b"x"), 5.0)
    evicted = Flow(Proto.UDP, ip_address("203.0.113.1"), 53, ip_address("192.0.2.1"), 2)
    assert out.events[0] == FlowClosed(evicted, CloseReason.EVICTED)
    assert {f.remote_port for f in stack.flows()} == {1, 3, 4}
    assert stack.stats.flows_closed == 1


def test_connect_send_close(stack: Stack[bytearray]) -> None:
    flow = Flow(Proto.UDP, ip_address("2001:db8::5"), 5353, ip_address("2001:db8::6"), 5353)
    assert stack.connect(flow, 0.0).events == [FlowOpened(flow)]
    with pytest.raises(FlowExistsError):
        stack.connect(flow, 0.0)
    out = stack.l4_tx(flow, b"query", 0.0)
    assert IPv6(bytes(out.packets[0]))[UDP].load == b"query"
    assert stack.close(flow, 1.0).events == [FlowClosed(flow, CloseReason.CLOSED)]
    with pytest.raises(UnknownFlowError):
        stack.l4_tx(flow, b"late", 2.0)
    with pytest.raises(UnknownFlowError):
        stack.close(flow, 2.0)
    stack.connect(flow, 3.0)
    assert stack.abort(flow, 3.0).events == [FlowClosed(flow, CloseReason.ABORTED)]


def test_misuse_raises_typed_errors(stack: Stack[bytearray]) -> None:
    flow = Flow(Proto.UDP, ip_address("192.0.2.5"), 1, ip_address("192.0.2.6"), 2)
    with pytest.raises(L3L4Error):
        stack.l4_tx(flow, b"x", 0.0)
    stack.connect(flow, 0.0)
    with pytest.raises(PayloadTooLargeError):
        stack.l4_tx(flow, bytes(65508), 0.0)
    assert stack.l4_tx(flow, bytes(65507), 0.0).accepted == 65507
    six = Flow(Proto.UDP, ip_address("2001:db8::5"), 1, ip_address("2001:db8::6"), 2)
    stack.connect(six, 0.0)
    with pytest.raises(PayloadTooLargeError):
        stack.l4_tx(six, bytes(65528), 0.0)


def test_exhausted_tx_buffer_drops_and_counts() -> None:
    pool: list[bytearray] = []
    stack = Stack(tx_buffer=lambda size: pool.pop() if pool and len(pool[-1]) == size else None)
    stack.l3_rx(datagram("192.0.2.1", "203.0.113.1", 1000, 53, b"q"), 0.0)
    flow = stack.flows()[0]
    assert stack.l4_tx(flow, b"answer", 0.0).accepted == 0
    assert stack.stats.drops[DropReason.TX_BUFFER_EXHAUSTED] == 1
    pool.append(bytearray(20 + 8 + 6))
    out = stack.l4_tx(flow, b"answer", 0.0)
    assert out.accepted == 6 and out.packets[0] is not None
    assert IP(bytes(out.packets[0]))[UDP].load == b"answer"
