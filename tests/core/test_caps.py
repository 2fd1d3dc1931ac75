"""Every resource cap of ``Config``, driven past its limit: the documented degradation
happens (refused with a reset, the oldest evicted, less accepted, dropped and counted)
and ``stack.usage()`` never goes over the cap.

``CAP_TESTS`` maps each cap to its test here; ``test_every_cap_has_a_test`` fails when a
cap-like ``Config`` field has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from ipaddress import ip_address

import pytest
from scapy.all import IP, UDP, IPv6ExtHdrDestOpt, Raw, fragment
from scapy.all import IPv6 as ScapyIPv6
from support.peer import MASK, Peer, data_of, make_stack
from support.spoof import ACK, SYN, spoofed_syns, tcp_packet

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    DropReason,
    EndOfStream,
    Flow,
    FlowClosed,
    FlowLimitError,
    FlowOpened,
    Proto,
    Stack,
    Writable,
)

SECRET = b"caps-test-secret"
CAP_TESTS: dict[str, Callable[..., None]] = {}
"""Cap name -> the test that drives it past its limit."""

# Config fields that bound something a peer can make the stack hold or do.
CAPS = {f.name for f in fields(Config) if f.name.startswith("max_")} | {
    "tcp_send_buffer",
    "tcp_send_buffer_min",
    "tcp_receive_buffer",
    "tcp_max_ooo_ranges",
    "tcp_max_sack_ranges",
    "tcp_syn_cookie_threshold",
    "tcp_challenge_ack_limit",
    "fragment_timeout",
    "udp_idle_timeout",
    "tcp_halfopen_idle_timeout",
    "tcp_idle_timeout",
}


def cap(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(test: Callable[..., None]) -> Callable[..., None]:
        for name in names:
            CAP_TESTS[name] = test
        return test

    return register


def test_every_cap_has_a_test() -> None:
    assert CAPS - set(CAP_TESTS) == set()


def peers(stack: Stack[bytearray], count: int, first_port: int = 40000) -> list[Peer]:
    return [Peer(stack, port=first_port + n) for n in range(count)]


# -- flows ------------------------------------------------------------------------------


@cap("max_tcp_flows")
def test_max_tcp_flows_resets_new_syns_and_refuses_connect() -> None:
    stack = make_stack(max_tcp_flows=3)
    for peer in peers(stack, 3):
        peer.handshake()
    late = Peer(stack, port=41000)
    refused = late.syn()
    assert refused.only.flags == "RA" and refused.only.ack == (late.isn + 1) & MASK
    assert stack.stats.drops[DropReason.TCP_FLOW_LIMIT] == 1
    with pytest.raises(FlowLimitError):
        stack.connect(Flow(Proto.TCP, ip_address("203.0.113.80"), 1, ip_address("192.0.2.9"), 2), 0.0)
    assert stack.usage().tcp_flows == 3
    # Room again once one ends.
    first = Peer(stack)
    first.seq = (first.isn + 1) & MASK
    stack.abort(first.flow, 1.0)
    assert late.at(1.0).syn().only.flags == "SA"


@cap("max_tcp_half_open")
def test_max_tcp_half_open_evicts_the_oldest_handshake_silently() -> None:
    stack = make_stack(tcp_syn_cookie_threshold=None, max_tcp_half_open=4)
    waiting = peers(stack, 10)
    for n, peer in enumerate(waiting):
        answer = peer.at(n * 0.01).syn()
        assert answer.only.flags == "SA"  # no reset for the evicted one: silence
        assert stack.usage().tcp_half_open == min(n + 1, 4)
    assert stack.stats.tcp_half_open_evicted == 6
    assert stack.tcp_states() == {"SYN_RECEIVED": 4}
    # The newest complete; an evicted one's ACK finds no connection.
    assert waiting[-1].send("A").events == [FlowOpened(waiting[-1].flow)]
    assert waiting[0].send("A").only.flags == "R"
    assert stack.usage().tcp_half_open == 3


@cap("tcp_syn_cookie_threshold")
def test_syn_cookie_threshold_stops_half_open_growth() -> None:
    stack = make_stack(tcp_syn_cookie_threshold=16)
    for packet in spoofed_syns(2000, seed=3, dst="203.0.113.80", dport=80):
        assert len(stack.l3_rx(packet, 0.0).packets) == 1
    usage = stack.usage()
    assert usage.tcp_half_open == usage.tcp_flows == 16
    assert stack.stats.tcp_syn_cookies_sent == 2000 - 16


@cap("max_time_wait")
def test_max_time_wait_forgets_the_oldest() -> None:
    stack = make_stack(max_time_wait=3)
    closers = peers(stack, 5)
    for n, peer in enumerate(closers):
        peer.at(float(n)).handshake()
        fin = peer.close().only
        assert fin.flags == "FA"
        peer.send("A")
        peer.send("FA")  # their FIN: we are in TIME_WAIT
    assert stack.tcp_states() == {"TIME_WAIT": 3}
    assert stack.usage().tcp_time_wait == 3
    assert stack.stats.tcp_time_wait_evicted == 2
    # A retransmitted FIN: the kept ones answer with an ACK, the forgotten with a reset.
    kept = closers[-1]
    assert kept.send("FA", seq=(kept.seq - 1) & MASK).only.flags == "A"
    forgotten = closers[0]
    assert forgotten.send("FA", seq=(forgotten.seq - 1) & MASK).only.flags == "R"


@cap("max_udp_flows")
def test_max_udp_flows_evicts_the_least_recently_used() -> None:
    stack = Stack(Config(secret=SECRET, max_udp_flows=4))
    for port in range(1, 11):
        packet = bytes(IP(src="192.0.2.1", dst="203.0.113.1") / UDP(sport=port, dport=53) / Raw(b"q"))
        out = stack.l3_rx(packet, float(port))
        if port > 4:
            evicted = Flow(Proto.UDP, ip_address("203.0.113.1"), 53, ip_address("192.0.2.1"), port - 4)
            assert out.events[0] == FlowClosed(evicted, CloseReason.EVICTED)
        assert stack.usage().udp_flows == min(port, 4)
    assert stack.stats.flows_closed == 6


@cap("udp_idle_timeout", "tcp_halfopen_idle_timeout", "tcp_idle_timeout")
def test_idle_flows_of_every_kind_expire() -> None:
    stack = make_stack(udp_idle_timeout=10.0, tcp_halfopen_idle_timeout=20.0, tcp_idle_timeout=30.0, tcp_syn_retries=100)
    stack.l3_rx(bytes(IP(src="192.0.2.1", dst="203.0.113.1") / UDP(sport=1, dport=53) / Raw(b"q")), 0.0)
    half = Peer(stack, port=40001)
    half.syn()
    established = Peer(stack, port=40002)
    established.handshake()
    assert stack.usage().udp_flows == 1 and stack.usage().tcp_flows == 2
    events = []
    now = 0.0
    while (deadline := stack.next_deadline()) is not None and deadline <= 31.0:
        now = deadline
        events += stack.l4_poll(now).events
    closed = [event for event in events if isinstance(event, FlowClosed)]
    assert [event.reason for event in closed] == [CloseReason.IDLE, CloseReason.IDLE]  # UDP, then established
    assert stack.usage().udp_flows == 0 and stack.usage().tcp_flows == 0


def test_closing_a_connection_idle_longer_than_the_half_open_timeout_is_graceful() -> None:
    """Found by benchmarks/soak.py: a connection established, then quiet for more than
    ``tcp_halfopen_idle_timeout`` (its idle limit while established is much longer), was
    reset as IDLE the moment the application closed it, its FIN never answered."""
    peer = Peer(make_stack(tcp_halfopen_idle_timeout=240.0))
    peer.handshake()
    fin = peer.at(1000.0).close()
    assert fin.only.flags == "FA"
    assert [s.flags for s in peer.poll(1000.5).segments] == ["FA"]  # the FIN again, not a reset
    peer.at(1001.0).send("A")
    assert peer.send("FA").events == [EndOfStream(peer.flow), FlowClosed(peer.flow, CloseReason.CLOSED)]


# -- buffers ------------------------------------------------------------------------------


@cap("tcp_send_buffer")
def test_tcp_send_buffer_bounds_l4_tx_per_flow() -> None:
    peer = Peer(make_stack(tcp_send_buffer=5000))
    peer.handshake()
    assert peer.at(1.0).tx(b"a" * 8000).accepted == 5000
    assert peer.tx(b"b").accepted == 0
    assert peer.stack.usage().tcp_buffer_bytes == 5000
    acked = peer.at(1.1).send("A")
    assert Writable(peer.flow) in acked.events
    assert peer.stack.usage().tcp_buffer_bytes == 5000 - len(peer.received)


@cap("tcp_receive_buffer")
def test_tcp_receive_buffer_bounds_the_window_and_what_is_held() -> None:
    peer = Peer(make_stack(tcp_receive_buffer=4096, rx_manual_consume=True))
    syn_ack = peer.handshake()
    assert syn_ack.window == 4096
    beyond = peer.at(1.0).send("A", b"x" * 100, seq=(peer.seq + 4096) & MASK)
    assert beyond.events == [] and peer.stack.stats.drops[DropReason.TCP_OUT_OF_WINDOW] == 1
    # Out of order but inside: held, and only up to the window's edge.
    held = peer.send("A", b"y" * 3000, seq=(peer.seq + 2000) & MASK)
    assert held.events == [] and peer.stack.usage().tcp_buffer_bytes == 2096
    filled = peer.send("PA", b"z" * 2000)
    assert data_of(filled.events) == b"z" * 2000 + b"y" * 2096
    assert peer.stack.usage().tcp_buffer_bytes == 0
    assert peer.stack.flow_info(peer.flow).rcv_wnd == 0  # nothing consumed yet


@cap("tcp_max_ooo_ranges")
def test_tcp_max_ooo_ranges_refuses_more_holes() -> None:
    peer = Peer(make_stack(tcp_max_ooo_ranges=4))
    peer.handshake()
    base = peer.seq
    for n in range(10):
        peer.send("A", bytes([65 + n]) * 10, seq=(base + 100 * (n + 1)) & MASK)
    stats = peer.stack.stats
    assert stats.drops[DropReason.TCP_REASSEMBLY_LIMIT] == 6
    assert peer.stack.usage().tcp_buffer_bytes == 40
    peer.seq = base
    # The holes filled: exactly the held ranges are delivered, in order, once.
    stream = b""
    for n in range(4):
        stream += b"." * 100 if n == 0 else b"." * 90
        stream += bytes([65 + n]) * 10
    result = peer.send("PA", b"." * 100)
    for n in range(1, 4):
        peer.seq = (base + 100 * n + 10) & MASK
        result.events += peer.send("PA", b"." * 90).events
    assert data_of(result.events) == stream
    assert peer.stack.usage().tcp_buffer_bytes == 0


@cap("tcp_max_sack_ranges")
def test_tcp_max_sack_ranges_ignores_sack_blocks_past_the_cap() -> None:
    """A peer SACKing every other byte of what is in flight would make the scoreboard,
    which every ACK walks, as long as the flight; past the cap its blocks are ignored,
    and the transfer still completes."""
    peer = Peer(make_stack(tcp_max_sack_ranges=16))
    peer.handshake()
    first = peer.at(1.0).tx(b"s" * 14_000)
    base = first.segments[0].seq
    peer.received.clear()
    for n in range(40):
        blocks = [base + 2 * (4 * n + k) + 1 for k in range(4)]
        edges: list[int] = [edge for left in blocks for edge in (left & MASK, (left + 1) & MASK)]
        peer.send("A", ack=base, options=[("NOP", None), ("NOP", None), ("SAck", tuple(edges))])
    stats = peer.stack.stats
    assert stats.tcp_sack_blocks_ignored == 160 - 16
    done = peer.at(2.0).send("A", ack=(base + 14_000) & MASK, options=[])
    assert done.events == [] and peer.stack.flow_info(peer.flow).bytes_in_flight == 0


@cap("max_tcp_buffer_bytes")
def test_max_tcp_buffer_bytes_limits_l4_tx_across_flows_and_wakes_writers() -> None:
    stack = make_stack(max_tcp_buffer_bytes=10_000, tcp_send_buffer=8000, tcp_send_buffer_min=0)
    first, second = peers(stack, 2)
    first.handshake()
    second.handshake()
    assert first.at(1.0).tx(b"1" * 8000).accepted == 8000
    short = second.tx(b"2" * 8000)
    assert short.accepted == 2000 and short.events == []
    assert stack.usage().tcp_buffer_bytes == 10_000
    assert second.tx(b"2").accepted == 0
    # The first flow's ACK frees room: the second hears it may write again.
    freed = first.at(1.1).send("A")
    assert Writable(second.flow) in freed.events
    assert stack.usage().tcp_buffer_bytes == 10_000 - len(first.received)
    assert second.tx(b"2" * 8000).accepted == min(6000, len(first.received))
    # Abort gives everything back.
    stack.abort(first.flow, 1.2)
    stack.abort(second.flow, 1.2)
    assert stack.usage().tcp_buffer_bytes == 0


@cap("tcp_send_buffer_min")
def test_tcp_send_buffer_min_lets_a_flow_with_nothing_queued_send_past_the_spent_budget() -> None:
    """Linux's tcp_wmem[0]: whatever the other flows hold, a flow with nothing queued
    takes ``tcp_send_buffer_min`` bytes, so its data leaves and an ACK for it comes back
    (the l3l4kit pattern "retry after the next l3_rx for that flow" needs one); no more
    than that, and the stack-wide overshoot is bounded by flows times the minimum."""
    stack = make_stack(max_tcp_buffer_bytes=10_000, tcp_send_buffer=20_000, tcp_send_buffer_min=3000)
    hog, *others = peers(stack, 4)
    for peer in (hog, *others):
        peer.handshake()
    assert hog.at(1.0).tx(b"h" * 20_000).accepted == 10_000
    for peer in others:
        took = peer.tx(b"o" * 8000)
        assert took.accepted == 3000 and took.segments  # it goes out at once
        assert peer.tx(b"o").accepted == 0  # but no further
    assert stack.usage().tcp_buffer_bytes == 10_000 + 3 * 3000
    # The ACK of what it sent is the packet the application was waiting for, and
    # room opens for the flow again.
    peer = others[0]
    answered = peer.at(1.1).send("A")
    assert stack.flow_info(peer.flow).bytes_in_flight == 0 and Writable(peer.flow) in answered.events
    assert peer.tx(b"o" * 8000).accepted == 3000


def test_max_tcp_buffer_bytes_drops_out_of_order_data_but_never_in_order_data() -> None:
    stack = make_stack(max_tcp_buffer_bytes=1000)
    first, second = peers(stack, 2)
    first.handshake()
    second.handshake()
    first.at(1.0).send("A", b"a" * 900, seq=(first.seq + 10) & MASK)
    assert stack.usage().tcp_buffer_bytes == 900
    refused = second.send("A", b"b" * 200, seq=(second.seq + 10) & MASK)
    assert refused.only.flags == "A"  # answered at once, as out-of-order data is
    assert stack.stats.drops[DropReason.TCP_BUFFER_LIMIT] == 1
    # In-order data is delivered at once and needs no room.
    assert data_of(second.send("PA", b"c" * 5000).events) == b"c" * 5000
    # Filling the first flow's hole releases its bytes; the second's can be held again.
    assert data_of(first.send("PA", b"a" * 10).events) == b"a" * 910
    assert stack.usage().tcp_buffer_bytes == 0
    second.send("A", b"b" * 200, seq=(second.seq + 10) & MASK)
    assert stack.usage().tcp_buffer_bytes == 200


# -- fragments ------------------------------------------------------------------------------


def fragments(ident: int, size: int, piece: int, src: str = "192.0.2.1") -> list[bytes]:
    datagram = IP(src=src, dst="203.0.113.1", id=ident) / UDP(sport=1, dport=53) / Raw(bytes(size))
    return [bytes(p) for p in fragment(datagram, fragsize=piece)]


@cap("max_reassembly_datagrams")
def test_max_reassembly_datagrams_refuses_new_datagrams() -> None:
    stack = Stack(Config(secret=SECRET, max_reassembly_datagrams=3))
    for ident in range(10):
        stack.l3_rx(fragments(ident, 1000, 512)[0], 0.0)
    assert stack.usage().reassembly_datagrams == 3
    assert stack.stats.drops[DropReason.FRAGMENT_LIMIT] == 7
    # Those under way still complete: held ones are never flushed for newcomers.
    out = stack.l3_rx(fragments(0, 1000, 512)[1], 0.0)
    assert [type(e) for e in out.events] == [FlowOpened, DataReceived]


@cap("max_fragments_per_datagram")
def test_max_fragments_per_datagram_discards_the_datagram() -> None:
    stack = Stack(Config(secret=SECRET, max_fragments_per_datagram=4))
    pieces = fragments(7, 1000, 128)
    assert len(pieces) > 4
    for piece in pieces[:-1]:
        stack.l3_rx(piece, 0.0)
    assert stack.stats.drops[DropReason.FRAGMENT_LIMIT] >= 1
    assert stack.l3_rx(pieces[-1], 0.0).events == []
    assert stack.usage().reassembly_bytes <= 4 * 128


@cap("max_reassembly_bytes")
def test_max_reassembly_bytes_bounds_what_is_held() -> None:
    stack = Stack(Config(secret=SECRET, max_reassembly_bytes=5000))
    for ident in range(20):
        for piece in fragments(ident, 3000, 1000)[:-1]:
            stack.l3_rx(piece, 0.0)
            assert stack.usage().reassembly_bytes <= 5000
    assert stack.stats.drops[DropReason.FRAGMENT_LIMIT] > 0


@cap("fragment_timeout")
def test_fragment_timeout_releases_and_reports() -> None:
    stack = Stack(Config(secret=SECRET, fragment_timeout=5.0))
    stack.l3_rx(fragments(1, 1000, 512)[0], 0.0)
    assert stack.next_deadline() == 5.0
    out = stack.l4_poll(5.0)
    assert stack.stats.drops[DropReason.FRAGMENT_TIMEOUT] == 1
    assert len(out.packets) == 1  # ICMP time exceeded, reassembly
    assert stack.usage().reassembly_datagrams == 0 and stack.usage().reassembly_bytes == 0


@cap("max_extension_headers")
def test_max_extension_headers_drops_long_chains() -> None:
    stack = Stack(Config(secret=SECRET, max_extension_headers=2))
    chain = ScapyIPv6(src="2001:db8::1", dst="2001:db8::5")
    for _ in range(3):
        chain = chain / IPv6ExtHdrDestOpt()
    stack.l3_rx(bytes(chain / UDP(sport=1, dport=53) / Raw(b"q")), 0.0)
    assert stack.stats.drops[DropReason.TOO_MANY_EXTENSION_HEADERS] == 1
    assert stack.usage().udp_flows == 0


# -- rates and timers --------------------------------------------------------------------------


@cap("tcp_challenge_ack_limit")
def test_tcp_challenge_ack_limit_caps_answers_to_spoofed_resets() -> None:
    peer = Peer(make_stack(tcp_challenge_ack_limit=5))
    peer.handshake()
    answered = sum(len(peer.at(1.0).send("R", seq=(peer.seq + 1 + n) & MASK).segments) for n in range(50))
    assert 2 <= answered < 8  # the second's budget: from [limit / 2, limit * 3 / 2)
    assert peer.stack.stats.drops[DropReason.TCP_CHALLENGED] == 50
    assert peer.state() == "ESTABLISHED"


def test_the_timer_queue_does_not_grow_with_churn() -> None:
    """Connections that come and go (here: a handshake, then abort, 5,000 times) leave
    timer entries behind; the queue sheds them, so it stays near the live count."""
    stack = make_stack(tcp_syn_cookie_threshold=None)
    peak = 0
    for n in range(5_000):
        src = str(ip_address("198.18.0.1") + n)
        [syn_ack] = stack.l3_rx(tcp_packet(src, "203.0.113.80", 40000, 80, 1000, 0, SYN), n * 0.001).packets
        seq = int.from_bytes(bytes(syn_ack)[24:28], "big")
        stack.l3_rx(tcp_packet(src, "203.0.113.80", 40000, 80, 1001, seq + 1, ACK), n * 0.001)
        stack.abort(Flow(Proto.TCP, ip_address("203.0.113.80"), 80, ip_address(src), 40000), n * 0.001)
        peak = max(peak, stack.usage().timers)
    assert stack.usage().tcp_flows == 0
    assert peak <= 2 * 1 + 1024 + 1
