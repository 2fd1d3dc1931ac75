"""A connection's life packet by packet: the handshake and its options (RFC 9293 §3.5,
§3.7.1, RFC 7323, RFC 2018), ISNs (RFC 6528), manual accept, both ways of closing,
TIME_WAIT, abort, idle timeout and keepalives (RFC 9293 §3.8.4)."""

from __future__ import annotations

import pytest
from support.peer import MASK, Peer, make_stack, syn_options

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    EndOfStream,
    FlowClosed,
    FlowOpened,
    FlowRequested,
    Stack,
)

DEFAULTS = Config()
ADDRESSES = {4: ("192.0.2.1", "203.0.113.80"), 6: ("2001:db8::1", "2001:db8:ffff::80")}


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


def new_peer(
    stack: Stack[bytearray] | None = None,
    version: int = 4,
    *,
    addr: str | None = None,
    port: int = 40000,
    stack_addr: str | None = None,
    stack_port: int = 80,
    now: float = 0.0,
) -> Peer:
    """A peer on ``stack`` (a new default one if None) at documentation addresses."""
    default_addr, default_stack_addr = ADDRESSES[version]
    return Peer(
        stack if stack is not None else make_stack(),
        addr=addr or default_addr,
        port=port,
        stack_addr=stack_addr or default_stack_addr,
        stack_port=stack_port,
        now=now,
    )


# -- the handshake ---------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "mss"), [(4, 1460), (6, 1440)])
def test_syn_with_every_option_gets_them_all_back(version: int, mss: int) -> None:
    peer = new_peer(version=version)
    peer.at(0.25)
    tsval = peer.tsval()
    syn_ack = peer.syn(syn_options(tsval, mss=1460, wscale=7), window=65535).only
    assert syn_ack.flags == "SA"
    assert syn_ack.ack == (peer.isn + 1) & MASK
    assert syn_ack.option_kinds == ["MSS", "SAckOK", "Timestamp", "WScale"]
    assert syn_ack.mss == mss  # MTU 1500 less the IP and TCP headers
    assert syn_ack.ts is not None and syn_ack.ts[1] == tsval
    # The shift describes the 256 KiB receive buffer; the SYN's own window is unscaled.
    shift = syn_ack.wscale
    assert shift is not None and 0 <= shift <= 14
    assert 0xFFFF << shift >= DEFAULTS.tcp_receive_buffer
    assert syn_ack.window == 0xFFFF
    assert syn_ack.payload == b""
    assert syn_ack.hop_limit == DEFAULTS.ttl
    assert syn_ack.df == (version == 4)
    assert peer.stack.tcp_states() == {"SYN_RECEIVED": 1}

    opened = peer.at(0.3).send("A", window=512)  # 512 << 7 = 64 KiB
    assert opened.events == [FlowOpened(peer.flow)] and opened.segments == []
    info = peer.stack.flow_info(peer.flow)
    assert info.state == "ESTABLISHED"
    assert info.snd_wnd == 512 << 7
    assert info.mss == mss - 12  # RFC 6691: the timestamps take 12 bytes of it

    # Data segments carry timestamps and fill the agreed MSS.
    sent = peer.at(1.0).tx(b"h" * 3000).segments
    assert [len(s.payload) for s in sent] == [mss - 12, mss - 12, 3000 - 2 * (mss - 12)]
    assert sent[0].seq == ((peer.stack_isn or 0) + 1) & MASK
    for segment in sent:
        assert segment.option_kinds == ["Timestamp"]
        assert segment.ts is not None and segment.ts[1] == peer.ts_base + 300  # the ACK's TSval
        assert segment.ack == peer.seq


@pytest.mark.parametrize(("version", "default_mss"), [(4, 536), (6, 1220)])
def test_syn_without_options_gets_mss_only_and_the_default_mss(version: int, default_mss: int) -> None:
    """RFC 9293 §3.7.1: with no MSS option, send at most 536 (IPv4) or 1220 (IPv6)
    bytes per segment; options not offered are not used."""
    peer = new_peer(make_stack(tcp_quick_acks=0), version=version)
    syn_ack = peer.syn([], window=65535).only
    assert syn_ack.flags == "SA" and syn_ack.ack == (peer.isn + 1) & MASK
    assert syn_ack.option_kinds == ["MSS"]
    assert syn_ack.mss == (1460 if version == 4 else 1440)
    assert peer.send("A").events == [FlowOpened(peer.flow)]

    data = bytes(range(251)) * 12  # 3012 bytes
    sent = peer.at(1.0).tx(data).segments
    assert all(len(s.payload) <= default_mss for s in sent)
    assert b"".join(s.payload for s in sent) == data
    assert len(sent) == -(-len(data) // default_mss)
    seq = ((peer.stack_isn or 0) + 1) & MASK
    for segment in sent:
        assert segment.options == ()
        assert segment.seq == seq
        seq = (seq + len(segment.payload)) & MASK

    # Our ACKs carry no options either, and an unscaled window.
    assert peer.send("A", b"1").segments == []
    ack = peer.poll_deadline().only
    assert ack.options == () and ack.flags == "A"
    assert ack.window == 0xFFFF


def test_retransmitted_syn_gets_the_same_syn_ack() -> None:
    peer = new_peer()
    first = peer.syn().only
    peer.at(0.5)
    again = peer.send("S", seq=peer.isn, options=syn_options(peer.tsval())).only
    assert again.flags == "SA"
    assert (again.seq, again.ack, again.window) == (first.seq, first.ack, first.window)
    assert again.option_kinds == first.option_kinds
    assert (again.mss, again.wscale) == (first.mss, first.wscale)
    assert peer.stack.tcp_states() == {"SYN_RECEIVED": 1}
    assert peer.send("A").events == [FlowOpened(peer.flow)]


def test_isns_differ_across_four_tuples_and_follow_a_4us_clock() -> None:
    stack = make_stack()
    peers = [
        new_peer(stack),
        new_peer(stack, port=40001),
        new_peer(stack, addr="198.51.100.7"),
        new_peer(stack, stack_addr="203.0.113.81"),
        new_peer(stack, stack_port=443),
    ]
    isns = [peer.syn().only.seq for peer in peers]
    assert len(set(isns)) == len(isns)
    # The same 4-tuple with the same secret: the same ISN at the same time, and
    # RFC 6528 §3's 4-microsecond clock M between two times.
    assert new_peer().syn().only.seq == isns[0]
    later = new_peer(now=2.0).syn().only.seq
    assert later == (isns[0] + 2 * 250_000) & MASK


# -- manual accept ---------------------------------------------------------------------------


def test_manual_accept_waits_for_the_application_then_answers() -> None:
    peer = new_peer(make_stack(accept="manual"))
    tsval = peer.tsval()
    requested = peer.syn()
    assert requested.events == [FlowRequested(peer.flow)]
    assert requested.segments == []
    assert peer.stack.tcp_states() == {"AWAITING_ACCEPT": 1}
    # A retransmitted SYN meanwhile changes nothing.
    repeat = peer.at(0.5).send("S", seq=peer.isn, options=syn_options(peer.tsval()))
    assert repeat.events == [] and repeat.segments == []

    accepted = peer.collect(peer.stack.accept(peer.flow, peer.at(0.7).now))
    syn_ack = accepted.only
    assert syn_ack.flags == "SA" and syn_ack.ack == (peer.isn + 1) & MASK
    assert syn_ack.option_kinds == ["MSS", "SAckOK", "Timestamp", "WScale"]
    assert syn_ack.ts is not None and syn_ack.ts[1] == tsval
    assert peer.at(0.8).send("A").events == [FlowOpened(peer.flow)]


def test_manual_reject_answers_with_rst_ack() -> None:
    """RFC 9293 §3.10.7.1 form for a segment without ACK:
    <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>."""
    peer = new_peer(make_stack(accept="manual"))
    assert peer.syn().segments == []
    rejected = peer.collect(peer.stack.reject(peer.flow, peer.at(0.1).now))
    rst = rejected.only
    assert rst.flags == "RA" and rst.seq == 0 and rst.ack == (peer.isn + 1) & MASK
    assert rst.payload == b"" and rst.options == ()
    assert rejected.events == [FlowClosed(peer.flow, CloseReason.REFUSED)]
    assert peer.stack.tcp_states() == {}
    assert peer.stack.next_deadline() is None


# -- closing ---------------------------------------------------------------------------------


def test_peer_closes_first_we_send_more_then_close() -> None:
    peer = new_peer()
    peer.handshake()
    fin = peer.at(1.0).send("FA")
    assert fin.events == [EndOfStream(peer.flow)]
    ack = fin.only  # the FIN is acknowledged at once
    assert ack.flags == "A" and ack.ack == peer.seq and ack.seq == peer.snd_nxt()
    assert peer.state() == "CLOSE_WAIT"

    reply = peer.at(1.1).tx(b"still talking").only
    assert reply.flags == "PA" and reply.payload == b"still talking" and reply.ack == peer.seq
    assert peer.at(1.2).send("A").segments == []

    our_fin = peer.at(1.3).close().only
    assert our_fin.flags == "FA" and our_fin.payload == b""
    assert our_fin.seq == (reply.seq + len(reply.payload)) & MASK and our_fin.ack == peer.seq
    assert peer.state() == "LAST_ACK"

    done = peer.at(1.4).send("A")
    assert done.segments == []
    assert done.events == [FlowClosed(peer.flow, CloseReason.CLOSED)]
    assert peer.stack.tcp_states() == {}
    assert peer.stack.next_deadline() is None


def test_we_close_first_fin_wait_then_time_wait() -> None:
    peer = new_peer()
    peer.handshake()
    our_fin = peer.at(1.0).close().only
    assert our_fin.flags == "FA" and our_fin.seq == ((peer.stack_isn or 0) + 1) & MASK
    assert our_fin.ack == peer.seq
    assert peer.state() == "FIN_WAIT_1"

    assert peer.at(1.05).send("A").segments == []
    assert peer.state() == "FIN_WAIT_2"

    fin_seq = peer.seq
    their_fin = peer.at(2.0).send("FA")
    assert their_fin.events == [EndOfStream(peer.flow), FlowClosed(peer.flow, CloseReason.CLOSED)]
    ack = their_fin.only
    assert ack.flags == "A" and ack.ack == (fin_seq + 1) & MASK and ack.seq == (our_fin.seq + 1) & MASK
    assert peer.stack.tcp_states() == {"TIME_WAIT": 1}
    assert peer.stack.flows() == []

    # The peer did not get our ACK and sends its FIN again: it is acknowledged again.
    again = peer.at(2.5).send("FA", seq=fin_seq)
    assert again.events == []
    assert (again.only.flags, again.only.seq, again.only.ack) == ("A", ack.seq, ack.ack)
    assert peer.stack.tcp_states() == {"TIME_WAIT": 1}

    # 2 MSL later the connection is gone, and nothing is said about it any more.
    while (deadline := peer.stack.next_deadline()) is not None:
        result = peer.poll(deadline)
        assert result.events == [] and result.segments == []
    assert peer.now >= 2.0 + DEFAULTS.tcp_time_wait
    assert peer.stack.tcp_states() == {}


def test_retransmitted_fin_restarts_time_wait() -> None:
    """RFC 9293 §3.10.7.4, eighth step, TIME-WAIT: "Remain in the TIME-WAIT state.
    Restart the 2 MSL time-wait timeout." """
    peer = new_peer(make_stack(tcp_time_wait=60.0))
    peer.handshake()
    peer.at(1.0).close()
    peer.at(1.05).send("A")
    fin_seq = peer.seq
    peer.at(2.0).send("FA")
    assert peer.stack.tcp_states() == {"TIME_WAIT": 1}
    assert len(peer.at(32.0).send("FA", seq=fin_seq).segments) == 1
    peer.poll(2.0 + 60.0 + 1.0)
    assert peer.stack.tcp_states() == {"TIME_WAIT": 1}
    peer.poll(32.0 + 60.0)
    assert peer.stack.tcp_states() == {}


def test_simultaneous_close_goes_through_closing() -> None:
    peer = new_peer()
    peer.handshake()
    our_fin = peer.at(1.0).close().only
    # The peer's FIN crosses ours: it does not acknowledge our FIN yet.
    crossing = peer.at(1.01).send("FA", ack=our_fin.seq)
    assert crossing.events == [EndOfStream(peer.flow)]
    assert crossing.only.flags == "A" and crossing.only.ack == peer.seq
    assert peer.state() == "CLOSING"
    done = peer.at(1.02).send("A")
    assert done.events == [FlowClosed(peer.flow, CloseReason.CLOSED)]
    assert done.segments == []
    assert peer.stack.tcp_states() == {"TIME_WAIT": 1}


def test_abort_sends_rst_at_snd_nxt() -> None:
    """RFC 9293 §3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>."""
    peer = new_peer()
    peer.handshake()
    sent = peer.at(1.0).tx(b"k" * 100).only
    aborted = peer.at(1.01).abort()
    rst = aborted.only
    assert rst.flags == "R"
    assert rst.seq == (sent.seq + 100) & MASK
    assert rst.payload == b""
    assert aborted.events == [FlowClosed(peer.flow, CloseReason.ABORTED)]
    assert peer.stack.tcp_states() == {}
    assert peer.stack.next_deadline() is None


# -- idle connections ------------------------------------------------------------------------


def test_idle_timeout_resets_the_connection() -> None:
    peer = new_peer(make_stack(tcp_idle_timeout=30.0, tcp_quick_acks=0))
    peer.handshake()
    assert peer.at(10.0).send("PA", b"ping").events == [DataReceived(peer.flow, b"ping")]
    assert peer.poll(10.0 + DEFAULTS.tcp_delayed_ack).only.flags == "A"
    assert peer.stack.next_deadline() == approx(40.0)
    assert peer.poll(39.999).segments == []
    snd_nxt = peer.snd_nxt()
    ended = peer.poll(40.0)
    rst = ended.only
    assert rst.flags == "R" and rst.seq == snd_nxt
    assert ended.events == [FlowClosed(peer.flow, CloseReason.IDLE)]
    assert peer.stack.tcp_states() == {}


def test_unanswered_keepalives_time_out() -> None:
    peer = new_peer(make_stack(tcp_keepalive_idle=10.0, tcp_keepalive_interval=5.0, tcp_keepalive_count=3))
    peer.handshake()
    snd_nxt = peer.snd_nxt()
    for at in (10.0, 15.0, 20.0):
        assert peer.stack.next_deadline() == approx(at)
        probe = peer.poll(at).only
        # RFC 9293 §3.8.4: SEG.SEQ = SND.NXT - 1, no data, to draw an ACK.
        assert probe.flags == "A" and probe.payload == b""
        assert probe.seq == (snd_nxt - 1) & MASK and probe.ack == peer.seq
    assert peer.stack.next_deadline() == approx(25.0)
    ended = peer.poll(25.0)
    assert all(segment.flags == "R" and segment.seq == snd_nxt for segment in ended.segments)
    assert ended.events == [FlowClosed(peer.flow, CloseReason.TIMED_OUT)]
    assert peer.stack.tcp_states() == {}


def test_answered_keepalive_keeps_the_connection() -> None:
    peer = new_peer(make_stack(tcp_keepalive_idle=10.0, tcp_keepalive_interval=5.0, tcp_keepalive_count=3))
    peer.handshake()
    snd_nxt = peer.snd_nxt()
    assert peer.poll(10.0).only.seq == (snd_nxt - 1) & MASK
    # The peer answers with an ACK of SND.NXT (the probe's seq is below its window).
    assert peer.at(10.1).send("A", ack=snd_nxt).segments == []
    assert peer.stack.next_deadline() == approx(20.1)
    assert peer.poll(20.1).only.seq == (snd_nxt - 1) & MASK
    assert peer.state() == "ESTABLISHED"


def test_a_keepalive_probe_from_the_peer_restarts_the_idle_timer() -> None:
    """``tcp_idle_timeout`` counts time without a segment from the peer. A keepalive
    probe (RFC 9293 §3.8.4: SEG.SEQ = RCV.NXT - 1) lies left of the window and is
    answered with an ACK, but it is a segment from a live peer: RFC 5382 REQ-5's 2 h
    4 min is meant to outlast a peer's 2 h keepalive."""
    peer = new_peer(make_stack(tcp_idle_timeout=30.0))
    peer.handshake()
    snd_nxt = peer.snd_nxt()
    for at in (20.0, 40.0, 60.0):
        answer = peer.at(at).send("A", seq=(peer.seq - 1) & MASK)
        assert answer.only.flags == "A" and answer.only.ack == peer.seq and answer.only.seq == snd_nxt
        assert answer.events == []
        assert peer.stack.next_deadline() == approx(at + 30.0)
    ended = peer.poll(90.0)
    assert ended.events == [FlowClosed(peer.flow, CloseReason.IDLE)]


def test_a_probe_of_our_zero_window_restarts_the_idle_timer() -> None:
    """A zero-window probe (RFC 9293 §3.8.6.1) is unacceptable while the application
    does not read, but the peer is there: the connection must not go idle."""
    peer = new_peer(make_stack(tcp_idle_timeout=30.0, rx_manual_consume=True, tcp_receive_buffer=1000))
    peer.handshake()
    filled = peer.at(1.0).send("PA", b"f" * 1000)
    assert peer.stack.flow_info(peer.flow).rcv_wnd == 0 and filled.events != []
    for at in (20.0, 40.0):
        answer = peer.at(at).send("A", b"p", seq=peer.seq)  # one byte past the window
        assert answer.only.flags == "A" and answer.only.window == 0 and answer.events == []
        assert peer.stack.next_deadline() == approx(at + 30.0)
    assert peer.poll(70.0).events == [FlowClosed(peer.flow, CloseReason.IDLE)]
