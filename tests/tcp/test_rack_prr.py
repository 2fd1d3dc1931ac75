"""RACK-TLP time-based loss detection (RFC 8985 §6), RFC 6675 counting, the loss state
after a timeout with SACK, and Proportional Rate Reduction (RFC 6937), seen on the wire."""

from __future__ import annotations

import pytest
from support.peer import MASK, Peer, Result, Segment, make_stack
from support.sack_peer import QUARTER, RTT, ack, data, end, established, run, warm_up

def test_reordering_within_the_window_is_not_a_loss() -> None:
    """RFC 8985 §6.2 step 5, §6.3: a segment sent before one delivered is lost only once
    RACK.rtt + reo_wnd has passed since it was sent; the hole filled before that is
    reordering, not loss (no retransmission, no fast recovery)."""
    peer = established()
    mss = warm_up(peer)
    flight = peer.at(2.0).tx(bytes(4 * mss)).segments
    assert len(flight) == 4
    # The second segment arrives first, 1 ms late: less than a quarter RTT past the RTT.
    early = peer.at(2.0 + RTT + 0.001)
    assert data(ack(early, flight[0].seq, run(flight[1], flight[1]), echo=flight[1])) == []
    deadline = peer.stack.next_deadline()  # RFC 8985 §6.3: the reordering timer
    assert deadline is not None and 2.0 + RTT + 0.002 < deadline < 2.0 + 2 * RTT
    peer.at(2.0 + RTT + 0.002)  # the hole arrives before it
    assert data(ack(peer, end(flight[1]), echo=flight[0])) == []
    assert data(ack(peer, end(flight[3]), echo=flight[3])) == []
    stats = peer.stack.stats
    assert stats.tcp_retransmits == 0 and stats.tcp_fast_recoveries == 0
    assert peer.stack.flow_info(peer.flow).bytes_in_flight == 0


def test_a_hole_still_missing_at_the_reordering_timer_is_lost() -> None:
    """RFC 8985 §6.3: when the reordering timer fires, what is still missing was sent
    more than RACK.rtt + reo_wnd ago: it is lost, and fast recovery resends it, long
    before the retransmission timeout."""
    peer = established()
    mss = warm_up(peer)
    flight = peer.at(2.0).tx(bytes(4 * mss)).segments
    ack(peer.at(2.0 + RTT + 0.001), flight[0].seq, run(flight[1], flight[1]), echo=flight[1])
    rto = peer.stack.flow_info(peer.flow).rto
    resent = data(peer.poll_deadline())
    assert peer.now < 2.0 + 2 * RTT < 2.0 + rto  # RACK.rtt + reo_wnd after sending, not the RTO
    assert resent and resent[0].seq == flight[0].seq and resent[0].payload == flight[0].payload
    stats = peer.stack.stats
    assert stats.tcp_fast_recoveries == 1 and stats.tcp_timeouts == 0


def test_the_reordering_window_is_a_quarter_of_the_min_rtt_cumulative_acks_measured() -> None:
    """RFC 8985 §6.2 steps 1-2: RACK.min_RTT comes from every RTT measurement, and
    RACK_update runs for each segment newly acknowledged "cumulatively or selectively".
    The warm-up's cumulative ACK measured 10 ms; the SACK 11 ms: the reordering timer is
    at xmit_ts + RACK.rtt (11 ms) + min_RTT / 4 (2.5 ms), not 11 / 4 ms."""
    peer = established()
    mss = warm_up(peer)
    flight = peer.at(2.0).tx(bytes(4 * mss)).segments
    ack(peer.at(2.0 + RTT + 0.001), flight[0].seq, run(flight[1], flight[1]), echo=flight[1])
    assert peer.stack.next_deadline() == pytest.approx(2.0 + (RTT + 0.001) + QUARTER, abs=1e-6)


def test_three_segments_sacked_above_a_hole_make_it_lost_at_once() -> None:
    """RFC 8985 §6.2 step 4: with no reordering seen, reo_wnd is 0 once DupThresh (3)
    segments are SACKed; the segment sent with them and still missing is lost now."""
    peer = established()
    mss = warm_up(peer)
    flight = peer.at(2.0).tx(bytes(6 * mss)).segments
    resent = data(ack(peer.at(2.0 + RTT), flight[0].seq, run(flight[1], flight[3]), echo=flight[3]))
    assert [segment.seq for segment in resent] == [flight[0].seq]  # 4 and 5 were sent with 3, above it
    assert peer.stack.stats.tcp_fast_recoveries == 1


@pytest.mark.parametrize("sacked", [2, 3])
def test_rfc6675_counts_segments_sacked_above_the_hole(sacked: int) -> None:
    """RFC 6675 §4 IsLost and §5: with ``tcp_loss_detection="rfc6675"`` a hole is lost
    at three SACKed segments (or DupThresh duplicate ACKs), whatever the time; with two
    it waits, and the hole filled late (past RACK's window) costs nothing."""
    peer = established(tcp_loss_detection="rfc6675")
    mss = warm_up(peer)
    flight = peer.at(2.0).tx(bytes(6 * mss)).segments
    answers = [
        data(ack(peer.at(2.0 + RTT + k * 0.0002), flight[0].seq, run(flight[1], flight[k]), echo=flight[k]))
        for k in range(1, sacked + 1)
    ]
    stats = peer.stack.stats
    assert answers[:2] == [[], []]  # one and two SACKed segments: not lost, whatever the time
    if sacked == 3:  # the third: lost at once, and only the hole goes
        assert [segment.seq for segment in answers[2]] == [flight[0].seq]
        assert stats.tcp_fast_recoveries == 1
        return
    deadline = peer.stack.next_deadline()
    assert deadline is None or deadline > 2.0 + 2 * RTT  # no reordering timer: the next is the probe
    peer.at(2.0 + RTT + 0.006)  # later than RACK.rtt + reo_wnd: RACK would have resent it
    assert data(ack(peer, end(flight[2]), echo=flight[0])) == []
    assert stats.tcp_retransmits == 0 and stats.tcp_fast_recoveries == 0


def test_a_lost_retransmission_is_found_when_its_reordering_window_passes() -> None:
    """RFC 8985 §6.2 step 5 for a retransmission: once new data sent after it has been
    SACKed, it is lost RACK.rtt + reo_wnd after it was sent (reo_wnd is not 0: reordering
    was seen), and goes again then, by the reordering timer, not the RTO."""
    peer = established()
    mss = warm_up(peer)
    seen = peer.at(2.0).tx(bytes(4 * mss)).segments  # reordering, as in the first test
    ack(peer.at(2.0 + RTT + 0.001), seen[0].seq, run(seen[1], seen[1]), echo=seen[1])
    ack(peer.at(2.0 + RTT + 0.002), end(seen[3]), echo=seen[0])
    flight = peer.at(3.0).tx(bytes(30 * mss)).segments
    first = flight[0]
    for k in range(1, 5):  # the first segment is lost: SACKs one by one, within reo_wnd
        answer = ack(peer.at(3.0 + RTT + k * 0.0001), first.seq, run(flight[1], flight[k]), echo=flight[k])
        assert first.seq not in [segment.seq for segment in answer.segments]
    retransmission = data(peer.poll_deadline())[0]  # the reordering timer: fast recovery
    assert retransmission.seq == first.seq
    sent_at = peer.now
    later: list[tuple[float, Segment]] = []  # new data sent after the retransmission
    for k in range(5, len(flight)):
        answer = ack(peer.at(peer.now + 0.0001), first.seq, run(flight[1], flight[k]), echo=flight[k])
        later += [(peer.now, segment) for segment in data(answer) if segment.seq != first.seq]
    assert later and later[-1][0] < sent_at + QUARTER
    for when, segment in later:  # it arrives, one RTT after it left; the retransmission does not
        answer = ack(peer.at(when + RTT), first.seq, run(flight[1], segment), echo=segment)
        assert first.seq not in [s.seq for s in answer.segments]  # not before its window passed
    again: list[Segment] = []
    for _ in range(10):
        again = [s for s in data(peer.poll_deadline()) if s.seq == first.seq]
        if again or peer.now > sent_at + 2 * RTT:
            break
    assert again, "the lost retransmission was not sent again"
    stats = peer.stack.stats
    timing = f"resent {peer.now - sent_at:.4f} s after the first resend, timeouts={stats.tcp_timeouts}"
    assert sent_at + RTT < peer.now <= sent_at + RTT + QUARTER + 0.0005, timing  # RACK.rtt + reo_wnd
    assert stats.tcp_lost_retransmits >= 1 and stats.tcp_timeouts == 0


def held_answer(peer: Peer, base: int, mss: int, held: set[int], echo: Segment) -> Result:
    """A receiver's ACK holding segments ``held`` (numbered from ``base``): cumulative up
    to the first missing, SACK blocks for the runs above it (at most three)."""
    cum = 0
    while cum in held:
        cum += 1
    runs: list[list[int]] = []
    for index in sorted(index for index in held if index > cum):
        if runs and runs[-1][1] == index:
            runs[-1][1] += 1
        else:
            runs.append([index, index + 1])
    blocks = [((base + a * mss) & MASK, (base + b * mss) & MASK) for a, b in runs[:3]]
    return ack(peer, base + cum * mss, *blocks, echo=echo)


def test_after_a_timeout_only_the_holes_are_resent() -> None:
    """Loss state (RFC 6675 §5.1 allows keeping SACK information after a timeout; RFC 2018
    §8; Linux's tcp_enter_loss): at the RTO the window is one segment and what is resent,
    as it grows, is the unSACKed data alone, never what the peer SACKed."""
    peer = established()
    mss = peer.stack.flow_info(peer.flow).mss
    flight = peer.at(1.0).tx(bytes(30 * mss)).segments
    assert len(flight) == 10
    base = flight[0].seq
    # Segments 2..9 arrive, 0 and 1 do not; what fast recovery sends next is lost too.
    ack(peer.at(1.0 + RTT), base, run(flight[2], flight[9]), echo=flight[9])
    assert peer.stack.stats.tcp_fast_recoveries == 1
    at_rto = data(peer.poll_deadline())
    assert peer.stack.stats.tcp_timeouts == 1
    assert [segment.seq for segment in at_rto] == [base]  # one segment: the first hole
    held = set(range(2, 10))
    sacked_from, sacked_to = (flight[2].seq - base) & MASK, (end(flight[9]) - base) & MASK
    outgoing = at_rto
    for _ in range(100):
        for segment in outgoing:
            offset = (segment.seq - base) & MASK
            overlaps = sacked_from < offset + len(segment.payload) and offset < sacked_to
            assert not overlaps, "SACKed data sent again"
            held.add(offset // mss)
        if not outgoing:
            break
        outgoing = data(held_answer(peer.at(peer.now + 0.001), base, mss, held, outgoing[-1]))
    info = peer.stack.flow_info(peer.flow)
    assert info.bytes_in_flight == 0 and info.bytes_queued == 0 and held == set(range(30))
    assert peer.stack.stats.tcp_timeouts == 1


def test_an_ack_ending_where_sacked_data_starts_is_reneging() -> None:
    """RFC 2018 §8: a receiver may discard data it SACKed. After a timeout, an ACK that
    stops exactly at the start of a SACKed block means it did (Linux's
    tcp_check_sack_reneging): that data is resent, not taken as delivered."""
    peer = established()
    mss = peer.stack.flow_info(peer.flow).mss
    flight = peer.at(1.0).tx(bytes(10 * mss)).segments
    ack(peer.at(1.0 + RTT), flight[0].seq, run(flight[1], flight[9]), echo=flight[9])
    resent = data(peer.poll_deadline())  # the fast retransmission was lost: the RTO
    assert peer.stack.stats.tcp_timeouts == 1 and [s.seq for s in resent] == [flight[0].seq]
    answer = ack(peer.at(peer.now + RTT), flight[1].seq, echo=resent[0])  # no SACK: 1..9 dropped
    assert peer.stack.stats.tcp_sack_reneging == 1
    assert flight[1].seq in [segment.seq for segment in data(answer)]


def prr_sends(prr: bool) -> list[int]:
    """Segments sent per ACK in a recovery from one loss in a flight of 20 (cwnd 20):
    the first ACK SACKs 3 segments (recovery at once), each next one more."""
    peer = established(tcp_prr=prr)
    mss = peer.stack.flow_info(peer.flow).mss
    ten = peer.at(1.0).tx(bytes(10 * mss)).segments
    ack(peer.at(1.0 + RTT), end(ten[-1]), echo=ten[-1])  # slow start: cwnd 20 segments
    flight = peer.at(2.0).tx(bytes(40 * mss)).segments
    assert len(flight) == 20
    counts = []
    for k in range(3, 20):
        answer = ack(peer.at(2.0 + RTT + k * 0.0001), flight[0].seq, run(flight[1], flight[k]), echo=flight[k])
        counts.append(len(data(answer)))
    assert peer.stack.stats.tcp_fast_recoveries == 1
    return counts


def test_prr_sends_in_proportion_to_what_is_delivered() -> None:
    """RFC 6937 §3.1: while pipe > ssthresh, sndcnt = CEIL(prr_delivered * ssthresh /
    RecoverFS) - prr_out: CUBIC's ssthresh is 0.7 of the window (RFC 9438 §4.6), so 7
    segments per 10 delivered, spread over the ACKs (at most 2 on one), the
    retransmission included; then PRR-SSRB, one segment per segment delivered."""
    counts = prr_sends(True)
    assert counts[0] == 2  # 3 delivered x 0.7 = 2.1 segments: the retransmission and one new
    assert max(counts) <= 2 and max(counts[1:]) <= 1  # never a burst
    assert 6 <= sum(counts[:8]) <= 8  # 10 delivered: 7 sent, +-1 for rounding to whole segments
    assert sum(counts[:4]) >= 3  # sending starts long before pipe falls to ssthresh
    assert counts[-6:] == [1] * 6  # pipe at ssthresh: one out per one delivered


def test_without_prr_nothing_is_sent_until_pipe_is_below_ssthresh() -> None:
    """RFC 6675 §5: cwnd = ssthresh at once; with pipe 17 segments (20 - 3 SACKed - 1
    lost + 1 resent) and ssthresh 14, the next 3 ACKs send nothing; then one each."""
    counts = prr_sends(False)
    assert counts[:4] == [1, 0, 0, 0]  # the retransmission only
    assert counts[4:] == [1] * (len(counts) - 4)


def test_slow_start_grows_by_the_bytes_delivered_up_to_ssthresh() -> None:
    """RFC 3465 §2.2 byte counting without the per-ACK limit L (as Linux): one ACK for
    10 segments opens the window by 10 segments; never beyond ssthresh (RFC 5681 §3.1)."""
    peer = established(tcp_tail_loss_probe=False)
    mss = peer.stack.flow_info(peer.flow).mss
    before = peer.stack.flow_info(peer.flow).cwnd
    ten = peer.at(1.0).tx(bytes(10 * mss)).segments
    assert len(ten) == 10
    ack(peer.at(1.0 + RTT), end(ten[-1]), echo=ten[-1])
    assert peer.stack.flow_info(peer.flow).cwnd == before + 10 * mss
    flight = peer.at(2.0).tx(bytes(20 * mss)).segments
    assert len(flight) == 20
    resent = data(peer.poll_deadline())  # the RTO: cwnd one segment, ssthresh 0.7 of 20
    assert peer.stack.stats.tcp_timeouts == 1 and [s.seq for s in resent] == [flight[0].seq]
    ack(peer.at(peer.now + RTT), end(flight[-1]), echo=resent[0])  # all 20 delivered at once
    info = peer.stack.flow_info(peer.flow)
    assert info.cwnd == info.ssthresh < 20 * mss
