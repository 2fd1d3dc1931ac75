"""Tail loss probes (RFC 8985 §7): when the ACKs stop with data in flight, a probe two
round trips later, not the retransmission timeout, and fast recovery from what the
peer's answer to it says."""

from __future__ import annotations

import pytest
from support.peer import MASK, Options, Peer, make_stack, syn_options

RTT = 0.01


def established(**config: object) -> Peer:
    peer = Peer(make_stack(**config))
    peer.handshake(rtt=RTT)  # timestamps and SACK, as Linux offers them
    return peer


def sack(left: int, right: int) -> Options:
    return [("NOP", None), ("NOP", None), ("SAck", (left, right))]


def test_a_lost_last_segment_is_probed_not_timed_out() -> None:
    peer = established()
    mss = peer.stack.flow_info(peer.flow).mss
    first, second, last = peer.at(1.0).tx(bytes(3 * mss)).segments
    peer.at(1.0 + RTT).send("A", ack=(second.seq + mss) & MASK)  # the last is lost
    info = peer.stack.flow_info(peer.flow)
    assert info.srtt is not None
    # RFC 8985 §7.2: PTO = 2 SRTT plus the peer's worst delayed ACK with one segment
    # out, and no later than the retransmission timer.
    assert peer.stack.next_deadline() == pytest.approx(peer.now + min(2 * info.srtt + 0.2, info.rto))
    probe = peer.poll_deadline().only
    assert probe.seq == last.seq and probe.payload == last.payload  # no new data: the last again
    stats = peer.stack.stats
    assert stats.tcp_tail_loss_probes == 1 and stats.tcp_timeouts == 0  # a probe, not a timeout:
    assert peer.stack.flow_info(peer.flow).cwnd == info.cwnd  # the window did not collapse
    peer.send("A", ack=(last.seq + mss) & MASK)
    assert peer.stack.flow_info(peer.flow).bytes_in_flight == 0


def test_a_whole_lost_flight_is_repaired_by_fast_recovery_after_the_probe() -> None:
    """A TSO super-packet lost whole: nothing comes back but the answer to the probe,
    which SACKs the last segment; everything below it was sent earlier and is lost."""
    peer = established()
    mss = peer.stack.flow_info(peer.flow).mss
    flight = peer.at(1.0).tx(bytes(10 * mss)).segments
    assert len(flight) == 10
    probe = peer.poll_deadline().only
    assert peer.now < 1.0 + 0.1  # two round trips and a margin, not the RTO
    assert probe.seq == flight[-1].seq
    answer = peer.send("A", ack=flight[0].seq, options=sack(probe.seq, (probe.seq + mss) & MASK))
    resent = [segment for segment in answer.segments if segment.payload]
    assert resent and resent[0].seq == flight[0].seq
    stats = peer.stack.stats
    assert stats.tcp_fast_recoveries == 1 and stats.tcp_timeouts == 0


def test_one_probe_per_episode() -> None:
    peer = established()
    mss = peer.stack.flow_info(peer.flow).mss
    peer.at(1.0).tx(bytes(4 * mss))
    peer.poll_deadline()
    assert peer.stack.stats.tcp_tail_loss_probes == 1
    peer.poll_deadline()  # nothing answered the probe: now the timeout
    assert peer.stack.stats.tcp_tail_loss_probes == 1 and peer.stack.stats.tcp_timeouts == 1


@pytest.mark.parametrize("setting", ["off", "no-sack"])
def test_no_probe_when_turned_off_or_without_sack(setting: str) -> None:
    peer = Peer(make_stack(tcp_tail_loss_probe=setting != "off"))
    peer.handshake(syn_options(None, sack=setting != "no-sack"), rtt=RTT)
    mss = peer.stack.flow_info(peer.flow).mss
    peer.at(1.0).tx(bytes(3 * mss))
    assert peer.stack.next_deadline() == pytest.approx(1.0 + peer.stack.flow_info(peer.flow).rto)
    peer.poll_deadline()
    assert peer.stack.stats.tcp_tail_loss_probes == 0 and peer.stack.stats.tcp_timeouts == 1


def test_a_lost_retransmission_is_sent_again_when_later_data_is_sacked() -> None:
    """RFC 8985 §6.2 for a retransmission: new data sent after it arrives (SACKed) while
    it does not: it was lost too, and goes again at once, not at the RTO."""
    peer = established(tcp_tail_loss_probe=False)
    mss = peer.stack.flow_info(peer.flow).mss
    flight = peer.at(1.0).tx(bytes(30 * mss)).segments
    first = flight[0]
    resent: list[int] = []
    after = []
    # Everything but the first arrives; each ACK SACKs one more segment.
    for segment in flight[1:]:
        block = (flight[1].seq, (segment.seq + mss) & MASK)
        answer = peer.at(peer.now + 0.001).send("A", ack=first.seq, options=sack(*block))
        resent += [s.seq for s in answer.segments if s.seq == first.seq]
        after += [s for s in answer.segments if s.seq != first.seq and s.payload]
    assert resent == [first.seq]  # the fast retransmit, which is lost as well
    assert after, "recovery sent new data after the retransmission"
    newest = after[-1]
    block = (flight[1].seq, (newest.seq + len(newest.payload)) & MASK)
    again = peer.at(peer.now + 0.001).send("A", ack=first.seq, options=sack(*block)).segments
    assert [s.seq for s in again if s.seq == first.seq] == [first.seq]
    stats = peer.stack.stats
    assert stats.tcp_lost_retransmits == 1 and stats.tcp_timeouts == 0


def test_a_tail_the_peer_already_holds_is_not_probed_again_recovery_starts() -> None:
    """Only the last segment arrived (one ACK SACKing it, too few for recovery): a copy
    of it would SACK nothing new; the probe timer starts recovery instead."""
    peer = established()
    mss = peer.stack.flow_info(peer.flow).mss
    flight = peer.at(1.0).tx(bytes(10 * mss)).segments
    last = flight[-1]
    peer.at(1.0 + RTT).send("A", ack=flight[0].seq, options=sack(last.seq, (last.seq + mss) & MASK))
    resent = [segment for segment in peer.poll_deadline().segments if segment.payload]
    assert resent and resent[0].seq == flight[0].seq
    stats = peer.stack.stats
    assert stats.tcp_fast_recoveries == 1 and stats.tcp_timeouts == 0


def test_the_probes_sack_counts_on_an_ack_that_also_moves_snd_una() -> None:
    """The answer to the probe acknowledges the first segment (its own ACK was lost)
    and SACKs the probe: the rest is lost, and recovery starts from it."""
    peer = established()
    mss = peer.stack.flow_info(peer.flow).mss
    flight = peer.at(1.0).tx(bytes(10 * mss)).segments
    probe = peer.poll_deadline().only
    answer = peer.send("A", ack=flight[1].seq, options=sack(probe.seq, (probe.seq + mss) & MASK))
    resent = [segment for segment in answer.segments if segment.payload]
    assert resent and resent[0].seq == flight[1].seq
    assert peer.stack.stats.tcp_fast_recoveries == 1 and peer.stack.stats.tcp_timeouts == 0


def test_flow_info_reports_bytes_acked_received_and_sacked_as_tcp_info_does() -> None:
    peer = established()
    mss = peer.stack.flow_info(peer.flow).mss
    flight = peer.at(1.0).tx(bytes(4 * mss)).segments
    peer.at(1.01)  # a round trip later: the hole is not lost before RACK's reordering window
    peer.send("PA", b"x" * 300, ack=flight[1].seq)  # two acknowledged, 300 bytes received
    peer.send("A", ack=flight[1].seq, options=sack(flight[3].seq, (flight[3].seq + mss) & MASK))
    info = peer.stack.flow_info(peer.flow)
    assert (info.bytes_acked, info.bytes_received, info.bytes_sacked) == (mss, 300, mss)
    assert info.rttvar >= 0 and not info.in_recovery
    peer.send("FA", ack=(flight[3].seq + mss) & MASK)
    peer.close()
    info = peer.stack.flow_info(peer.flow)
    assert (info.bytes_acked, info.bytes_received, info.bytes_sacked) == (4 * mss, 300, 0)
