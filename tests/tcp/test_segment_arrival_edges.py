"""Segment arrival rules the differential conformance bench (``tests/conformance``)
found l3l4 answering differently from Linux: TIME-WAIT's zero receive window and the
out-of-order FIN (RFC 9293 §3.10.7.4, RFC 5681 §4.2)."""

from __future__ import annotations

from support.peer import MASK, Peer, make_stack

from l3l4 import DataReceived, EndOfStream


def time_wait() -> Peer:
    """A connection the stack closed first, in TIME-WAIT after both FINs."""
    peer = Peer(make_stack())
    peer.handshake()
    peer.at(1.0).close()
    peer.at(1.05).send("A")
    peer.at(2.0).send("FA")
    assert peer.stack.tcp_states() == {"TIME_WAIT": 1}
    return peer


def test_time_wait_acknowledges_anything_but_a_bare_ack() -> None:
    """RFC 9293 §3.10.7.4, first step: after both FINs the receive window is zero, so
    data or a second FIN is not acceptable and "an acknowledgment should be sent in
    reply"; a bare ACK at RCV.NXT is acceptable and needs no answer."""
    peer = time_wait()
    for flags, payload in (("PA", b"late data"), ("FA", b""), ("UPA", b"urgent")):
        answer = peer.at(2.5).send(flags, payload, seq=peer.seq)
        assert answer.events == []
        assert (answer.only.flags, answer.only.ack) == ("A", peer.seq)
    assert peer.at(2.6).send("A", seq=peer.seq).segments == []
    assert peer.stack.tcp_states() == {"TIME_WAIT": 1}


def test_time_wait_drops_an_in_window_rst_and_takes_the_exact_one() -> None:
    """With a zero window a RST past RCV.NXT is outside it: dropped silently (RFC 5961
    §3.2 case 1), not challenged; the exact RST ends TIME-WAIT."""
    peer = time_wait()
    assert peer.at(2.5).send("R", seq=(peer.seq + 100) & MASK).segments == []
    assert peer.stack.tcp_states() == {"TIME_WAIT": 1}
    assert peer.at(2.6).send("R", seq=peer.seq).segments == []
    assert peer.stack.tcp_states() == {}


def test_out_of_order_fin_is_acknowledged_at_once_and_kept() -> None:
    """RFC 5681 §4.2: "A TCP receiver SHOULD send an immediate duplicate ACK when an
    out-of-order segment arrives", a FIN past a hole included; once the hole fills,
    the FIN is taken."""
    peer = Peer(make_stack())
    peer.handshake()
    hole = peer.seq
    answer = peer.at(1.0).send("FA", seq=(hole + 100) & MASK)
    assert answer.events == []
    assert (answer.only.flags, answer.only.ack) == ("A", hole)
    filled = peer.at(1.1).send("PA", bytes(100), seq=hole)
    assert filled.events == [DataReceived(peer.flow, bytes(100)), EndOfStream(peer.flow)]
    assert filled.only.ack == (hole + 101) & MASK
