"""Explicit Congestion Notification (RFC 3168 §6.1) with a scripted peer: negotiation,
ECT on new data only, the echo of a CE mark until CWR, and the sender's reduction."""

from __future__ import annotations

from scapy.layers.inet import IP
from support.peer import MASK, Peer, Segment, make_stack
from support.sack_peer import RTT, ack, end, warm_up

ECT0, CE = 2, 3


def ecn_field(segment: Segment) -> int:
    return segment.raw[1] & 3  # IPv4: the low bits of the TOS byte


def ecn_peer(**config: object) -> tuple[Peer, Segment]:
    """An ECN-setup SYN (ECE and CWR, RFC 3168 §6.1.1) and the stack's SYN-ACK."""
    peer = Peer(make_stack(**config))
    syn_ack = peer.handshake(flags="SEC", rtt=RTT)
    return peer, syn_ack


def send_ce(peer: Peer, payload: bytes) -> list[Segment]:
    """A data segment the network marked Congestion Experienced."""
    packet = peer.build("PA", payload)
    packet[IP].tos = CE
    peer.seq = (peer.seq + len(payload)) & MASK
    return peer.inject(packet).segments


def test_an_ecn_setup_syn_is_answered_with_ece_alone() -> None:
    """RFC 3168 §6.1.1: the SYN-ACK to an ECN-setup SYN carries ECE, not CWR, and no
    ECT; with ``tcp_ecn="off"`` it carries neither."""
    peer, syn_ack = ecn_peer()
    assert "E" in syn_ack.flags and "C" not in syn_ack.flags and ecn_field(syn_ack) == 0
    assert peer.stack.flow_info(peer.flow).ecn and peer.stack.stats.tcp_ecn_negotiated == 1
    peer, syn_ack = ecn_peer(tcp_ecn="off")
    assert syn_ack.flags == "SA" and not peer.stack.flow_info(peer.flow).ecn


def test_new_data_is_ect_but_retransmissions_and_acks_are_not() -> None:
    """RFC 3168 §6.1.4, §6.1.5: ECT(0) on new data; a retransmission, and a pure ACK,
    go without."""
    peer, _ = ecn_peer(tcp_quick_acks=0)
    (segment,) = peer.tx(b"x" * 100).segments
    assert ecn_field(segment) == ECT0
    (again,) = peer.poll_deadline().segments  # the retransmission timeout
    assert again.seq == segment.seq and ecn_field(again) == 0
    assert peer.send("PA", b"y" * 10).segments == []  # the ACK is delayed
    (pure_ack,) = peer.poll_deadline().segments
    assert not pure_ack.payload and ecn_field(pure_ack) == 0


def test_a_ce_mark_is_echoed_until_the_peer_says_cwr() -> None:
    """RFC 3168 §6.1.3: after a CE-marked segment every ACK carries ECE, at once,
    until a segment with CWR arrives."""
    peer, _ = ecn_peer(tcp_quick_acks=0)
    (echo,) = send_ce(peer, b"a" * 100)
    assert "E" in echo.flags and peer.stack.stats.tcp_ecn_ce_received == 1
    (still,) = peer.send("PA", b"b" * 100).segments + peer.poll_deadline().segments
    assert "E" in still.flags
    answers = peer.send("PAC", b"c" * 100).segments + peer.send("PA", b"d" * 100).segments
    answers += peer.poll_deadline().segments
    assert answers and all("E" not in segment.flags for segment in answers)


def test_an_echo_reduces_the_window_once_per_round_trip_and_cwr_follows() -> None:
    """RFC 3168 §6.1.2: ECE halves the window as a loss would, once per window of
    data, resends nothing, and the next new segment carries CWR."""
    peer, _ = ecn_peer()
    mss = warm_up(peer)
    before = peer.stack.flow_info(peer.flow).cwnd
    flight = peer.at(2.0).tx(bytes(4 * mss)).segments
    peer.at(2.0 + RTT)
    for segment in flight[:3]:
        echo = peer.build("AE", ack=end(segment))
        peer.inject(echo)
    stats = peer.stack.stats
    assert stats.tcp_ecn_reductions == 1 and stats.tcp_retransmits == 0
    assert peer.stack.flow_info(peer.flow).cwnd < before
    ack(peer, end(flight[3]), echo=flight[3])
    (new,) = peer.tx(b"z" * 100).segments
    assert "C" in new.flags and ecn_field(new) == ECT0
