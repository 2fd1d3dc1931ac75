"""Acknowledgment policy and flow control, packet by packet: delayed ACKs (RFC 9293
§3.8.6.3, RFC 5681 §4.2), SACK blocks (RFC 2018), the peer's zero window and the persist
timer (RFC 9293 §3.8.6.1), our receive window with manual consume and receiver SWS
avoidance (§3.8.6.2.2), window scaling (RFC 7323 §2) and the send buffer."""

from __future__ import annotations

import pytest
from support.peer import MASK, Peer, make_stack, syn_options

from l3l4 import CloseReason, Config, DataReceived, FlowClosed, Writable

DEFAULTS = Config()


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


# -- delayed ACK ----------------------------------------------------------------------------


def test_one_segment_is_acked_after_the_delayed_ack_timeout() -> None:
    peer = Peer(make_stack(tcp_quick_acks=0))
    syn_ack = peer.handshake()
    peer.at(1.0)
    tsval = peer.tsval()
    result = peer.send("PA", b"q" * 100)
    assert result.events == [DataReceived(peer.flow, b"q" * 100)]
    assert result.segments == []
    due = 1.0 + DEFAULTS.tcp_delayed_ack
    assert peer.stack.next_deadline() == approx(due)
    assert peer.poll(due - 0.001).segments == []
    ack = peer.poll(due).only
    assert ack.flags == "A" and ack.payload == b""
    assert ack.seq == peer.snd_nxt() and ack.ack == peer.seq
    assert ack.ts is not None and ack.ts[1] == tsval
    # RFC 7323 §2.3: after the SYN the window field is scaled by the shift we offered.
    assert syn_ack.wscale is not None
    assert ack.window << syn_ack.wscale == DEFAULTS.tcp_receive_buffer
    # Nothing more is owed.
    assert peer.poll(due + 1.0).segments == []


def test_second_segment_is_acked_at_once() -> None:
    peer = Peer(make_stack(tcp_quick_acks=0))
    peer.handshake()
    assert peer.at(1.0).send("A", b"1" * 1448).segments == []
    ack = peer.at(1.01).send("PA", b"2" * 1448).only
    assert ack.flags == "A" and ack.ack == peer.seq and ack.seq == peer.snd_nxt()
    # No delayed ACK left behind.
    assert peer.poll(1.01 + DEFAULTS.tcp_delayed_ack).segments == []


def acked_at_once(peer: Peer, count: int, now: float) -> list[bool]:
    """Send ``count`` full-sized in-order segments; for each, whether an ACK left at once."""
    return [bool(peer.at(now).send("A", b"q" * 1448).segments) for _ in range(count)]


def test_quick_acks_at_the_start_then_every_second_segment() -> None:
    """Linux's quick-ACK mode: the first ``tcp_quick_acks`` data segments are each ACKed
    at once, so the sender's window opens at the pace of its ACKs; then every second
    full-sized segment (RFC 9293 §3.8.6.3)."""
    peer = Peer(make_stack(tcp_quick_acks=3))
    peer.handshake()
    assert acked_at_once(peer, 7, 1.0) == [True, True, True, False, True, False, True]


def test_a_filled_hole_and_a_duplicate_each_bring_quick_acks_back() -> None:
    peer = Peer(make_stack(tcp_quick_acks=2))
    peer.handshake()
    assert acked_at_once(peer, 4, 1.0) == [True, True, False, True]
    # A hole, then its fill: the next two segments are ACKed one by one again.
    base = peer.seq
    peer.at(1.1).send("A", b"b" * 1448, seq=(base + 1448) & MASK).only  # held, SACKed at once
    filled = peer.send("A", b"a" * 1448, seq=base)
    assert filled.only.ack == (base + 2 * 1448) & MASK
    peer.seq = (base + 2 * 1448) & MASK
    assert acked_at_once(peer, 4, 1.2) == [True, True, False, True]
    # Data that arrived twice: ACKed at once (RFC 5681 §4.2), and quick ACKs again.
    again = peer.send("A", b"q" * 1448, seq=(peer.seq - 1448) & MASK)
    assert again.only.ack == peer.seq
    assert acked_at_once(peer, 4, 1.3) == [True, True, False, True]


def test_no_quick_acks_when_turned_off() -> None:
    peer = Peer(make_stack(tcp_quick_acks=0))
    peer.handshake()
    assert acked_at_once(peer, 4, 1.0) == [False, True, False, True]


def test_out_of_order_data_is_acked_at_once_with_sack_then_the_hole_fill_too() -> None:
    peer = Peer(make_stack())
    peer.handshake()
    handshake_tsval = peer.tsval()
    base = peer.seq
    a, b, c, d = (bytes([65 + i]) * 100 for i in range(4))

    # B arrives before A: held, and an immediate ACK of RCV.NXT with one SACK block.
    held = peer.at(1.0).send("PA", b, seq=(base + 100) & MASK)
    assert held.events == []
    ack = held.only
    assert ack.flags == "A" and ack.ack == base and ack.seq == peer.snd_nxt()
    assert ack.option_kinds == ["Timestamp", "SAck"]
    assert ack.sack == [((base + 100) & MASK, (base + 200) & MASK)]
    # RFC 7323 §4.3: an out-of-order segment does not update TS.Recent.
    assert ack.ts is not None and ack.ts[1] == handshake_tsval

    # D too: two blocks, the most recent first (RFC 2018 §4).
    held = peer.at(1.1).send("PA", d, seq=(base + 300) & MASK)
    assert held.events == []
    assert held.only.ack == base
    assert held.only.sack == [((base + 300) & MASK, (base + 400) & MASK), ((base + 100) & MASK, (base + 200) & MASK)]

    # A fills the first hole: A and B are delivered, the ACK goes out at once.
    peer.at(1.2)
    a_tsval = peer.tsval()
    filled = peer.send("PA", a, seq=base)
    assert filled.events == [DataReceived(peer.flow, a), DataReceived(peer.flow, b)]
    ack = filled.only
    assert ack.ack == (base + 200) & MASK
    assert ack.sack == [((base + 300) & MASK, (base + 400) & MASK)]
    assert ack.ts is not None and ack.ts[1] == a_tsval

    # C fills the last hole: a cumulative ACK without SACK blocks.
    filled = peer.at(1.3).send("PA", c, seq=(base + 200) & MASK)
    assert filled.events == [DataReceived(peer.flow, c), DataReceived(peer.flow, d)]
    ack = filled.only
    assert ack.ack == (base + 400) & MASK
    assert ack.option_kinds == ["Timestamp"]
    peer.seq = (base + 400) & MASK
    assert peer.stack.flow_info(peer.flow).rcv_nxt == peer.seq


# -- the peer's window ------------------------------------------------------------------------


def test_window_in_syn_is_unscaled_and_later_ones_are_scaled() -> None:
    peer = Peer(make_stack())
    peer.syn(syn_options(peer.tsval(), wscale=2), window=1000)
    assert peer.stack.flow_info(peer.flow).snd_wnd == 1000
    peer.send("A", window=250)
    assert peer.stack.flow_info(peer.flow).snd_wnd == 1000
    sent = peer.at(1.0).tx(b"w" * 5000).segments
    assert [len(s.payload) for s in sent] == [1000]


def zero_window(**config: object) -> tuple[Peer, bytes, int]:
    """A connection whose peer took 1000 bytes and closed its window: returns the peer,
    the data handed to l4_tx (3584 bytes, 1000 of them acknowledged) and SND.UNA."""
    peer = Peer(make_stack(**config), window=1000)
    peer.handshake()
    data = bytes(range(256)) * 14
    first = peer.at(1.0).tx(data[:3000])
    assert first.accepted == 3000
    [segment] = first.segments  # as much as the window takes
    assert segment.flags == "A" and segment.payload == data[:1000]
    assert segment.seq == ((peer.stack_isn or 0) + 1) & MASK
    snd_una = (segment.seq + 1000) & MASK
    assert peer.at(1.05).send("A", window=0).segments == []
    assert peer.stack.flow_info(peer.flow).snd_wnd == 0
    queued = peer.at(1.06).tx(data[3000:])
    assert queued.accepted == len(data) - 3000
    assert queued.segments == []
    return peer, data, snd_una


def test_zero_window_probes_carry_one_byte_and_back_off() -> None:
    peer, data, snd_una = zero_window()
    probe_times = []
    for _ in range(4):
        probe = peer.poll_deadline().only
        probe_times.append(peer.now)
        assert probe.flags == "A" and probe.ack == peer.seq
        assert probe.seq == snd_una and probe.payload == data[1000:1001]
    # RFC 9293 §3.8.6.1: the first probe after an RTO, then exponentially apart.
    rto = probe_times[0] - 1.05
    assert rto >= DEFAULTS.tcp_min_rto - 1e-9
    intervals = [later - earlier for earlier, later in zip(probe_times, probe_times[1:], strict=False)]
    assert intervals == [approx(rto * 2), approx(rto * 4), approx(rto * 8)]


def test_zero_window_probes_answered_keep_the_connection_and_send_nothing_else() -> None:
    """RFC 9293 §3.8.6.1 (RFC 1122 §4.2.2.17): while the receiver answers the probes the
    connection MUST stay open, and nothing but probes goes into a zero window (RFC 5681
    §3.2: segments only as the receiver's advertised window allows)."""
    peer, data, snd_una = zero_window(tcp_max_retries=3)
    for _ in range(6):
        probe = peer.poll_deadline().only
        assert probe.seq == snd_una and probe.payload == data[1000:1001], probe
        # The window is still shut: the peer drops the byte and ACKs what it has.
        answer = peer.send("A", ack=snd_una, window=0)
        assert answer.segments == [], "only probes may go into a zero window"
        assert answer.events == []
    assert peer.state() == "ESTABLISHED"
    assert peer.stack.flow_info(peer.flow).snd_una == snd_una


def test_window_update_after_probes_resumes_sending_from_snd_una() -> None:
    """The receiver dropped each probe's byte (RFC 9293 §3.10.7.4: no data is
    acceptable in a zero window), so when the window opens the stream must continue
    from SND.UNA: every byte the peer has not acknowledged reaches it, without a hole."""
    peer, data, snd_una = zero_window()
    for _ in range(2):
        assert peer.poll_deadline().only.seq == snd_una
        assert peer.send("A", ack=snd_una, window=0).segments == []
    resumed = peer.at(peer.now + 0.01).send("A", ack=snd_una, window=65535).segments
    assert resumed, "a window update must resume sending"
    assert resumed[0].seq == snd_una
    assert b"".join(s.payload for s in resumed) == data[1000:]


def test_unanswered_zero_window_probes_time_out() -> None:
    peer, _, snd_una = zero_window(tcp_max_retries=3)
    for _ in range(3):
        probe = peer.poll_deadline().only
        assert probe.seq == snd_una and len(probe.payload) == 1
    ended = peer.poll_deadline()
    assert ended.events == [FlowClosed(peer.flow, CloseReason.TIMED_OUT)]
    assert peer.stack.tcp_states() == {}


# -- our receive window ----------------------------------------------------------------------


@pytest.mark.parametrize("side", ["active", "passive"])
def test_the_handshake_keeps_the_window_the_syn_offered(side: str) -> None:
    """RFC 1122 §4.2.2.16: a receiver should not shrink its window. The window of our
    SYN (or SYN-ACK) counts from the peer's first data byte, and the ACK that follows
    offers as much, also after an active open (when RCV.NXT was unknown at the SYN)."""
    peer = Peer(make_stack(tcp_receive_buffer=16384))
    if side == "active":
        syn = peer.connect().only
        ack = peer.at(0.1).send("SA", options=syn_options(None, wscale=0)).only
        assert (syn.window, ack.flags, ack.window) == (16384, "A", 16384)
    else:
        syn_ack = peer.syn(syn_options(None, wscale=0)).only
        assert peer.at(0.1).send("A").segments == []
        assert syn_ack.window == 16384
    assert peer.state() == "ESTABLISHED"
    assert peer.stack.flow_info(peer.flow).rcv_wnd == 16384
    # The peer may fill all of it: every byte is taken.
    taken = peer.at(0.2).send("A", b"w" * 16384)
    assert sum(len(event.data) for event in taken.events if isinstance(event, DataReceived)) == 16384


def test_manual_consume_shrinks_the_window_to_zero_and_consumed_reopens_it() -> None:
    buffer = 4096
    peer = Peer(make_stack(rx_manual_consume=True, tcp_receive_buffer=buffer, tcp_delayed_ack=0))
    syn_ack = peer.handshake()
    assert syn_ack.window == buffer and syn_ack.wscale == 0
    delivered = 0
    for size in (1000, 1000, 1000, 1000, 96):
        result = peer.at(peer.now + 0.01).send("PA", b"m" * size)
        delivered += size
        assert result.events == [DataReceived(peer.flow, b"m" * size)]
        ack = result.only
        assert ack.ack == peer.seq
        assert ack.window == buffer - delivered
    assert peer.stack.flow_info(peer.flow).unconsumed == buffer

    # A byte into the closed window is not taken (RFC 9293 §3.10.7.4) but ACKed.
    rcv_nxt = peer.seq
    probe = peer.at(peer.now + 0.2).send("PA", b"!", seq=rcv_nxt)
    assert probe.events == []
    assert probe.only.ack == rcv_nxt and probe.only.window == 0

    # Receiver SWS avoidance: 100 freed bytes are not worth a window update...
    assert peer.consumed(100).segments == []
    # ...1500 are (at least min(buffer / 2, MSS)).
    update = peer.consumed(1400).only
    assert update.flags == "A" and update.ack == rcv_nxt and update.seq == peer.snd_nxt()
    assert update.window == 1500
    update = peer.consumed(buffer - 1500).only
    assert update.window == buffer
    assert peer.stack.flow_info(peer.flow).unconsumed == 0
    assert peer.send("PA", b"!").events == [DataReceived(peer.flow, b"!")]


# -- the send buffer ---------------------------------------------------------------------------


def test_send_buffer_limits_l4_tx_and_writable_follows_an_ack() -> None:
    peer = Peer(make_stack(tcp_send_buffer=3000))
    peer.handshake()
    data = bytes(range(256)) * 30
    first = peer.at(1.0).tx(data[:5000])
    assert first.accepted == 3000
    assert [len(s.payload) for s in first.segments] == [1448, 1448, 104]
    assert b"".join(s.payload for s in first.segments) == data[:3000]
    full = peer.tx(data[3000:3100])
    assert full.accepted == 0 and full.segments == [] and full.events == []

    freed = peer.at(1.05).send("A", ack=(first.segments[0].seq + 1448) & MASK)
    assert freed.events == [Writable(peer.flow)]
    assert freed.segments == []
    more = peer.tx(data[3000:4448])  # exactly the room freed
    assert more.accepted == 1448
    [segment] = more.segments
    assert segment.seq == (first.segments[-1].seq + 104) & MASK
    assert segment.payload == data[3000:4448]
    # Writable fires once per shortfall: a further ACK without a short l4_tx is silent.
    assert peer.at(1.1).send("A").events == []
