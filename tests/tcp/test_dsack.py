"""D-SACK (RFC 2883) both ways: the duplicates l3l4 reports, the undo of a window
reduction every retransmission of which the peer reports as a duplicate (RFC 3708,
as Linux's DSACK undo), and the TCP_INFO-like figures ``flow_info`` gives."""

from __future__ import annotations

from support.peer import MASK, Segment
from support.sack_peer import RTT, ack, data, end, established, run, warm_up


def sack_blocks(segment: Segment) -> list[tuple[int, int]]:
    edges = segment.option("SAck") or ()
    return [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]


def test_a_duplicate_below_rcv_nxt_is_reported_once_as_the_first_block() -> None:
    """RFC 2883 §4 (1): data that arrived twice is reported in the first SACK block of
    the next ACK (even with nothing out of order), and only in that one."""
    peer = established()
    start = peer.seq
    peer.send("PA", b"x" * 100)
    reply = peer.send("PA", b"x" * 100, seq=start)  # the same segment again
    assert [sack_blocks(segment) for segment in reply.segments] == [[(start, (start + 100) & MASK)]]
    assert peer.stack.stats.tcp_dsacks_sent == 1
    later = peer.send("PA", b"y" * 10)
    assert all(not sack_blocks(segment) for segment in later.segments)


def test_a_duplicate_of_held_out_of_order_data_comes_before_its_range() -> None:
    """RFC 2883 §4 (2): a duplicate of data held beyond a hole: the first block is the
    duplicate, the next the held range it lies in."""
    peer = established()
    start = peer.seq
    beyond = (start + 100) & MASK
    peer.send("PA", b"b" * 200, seq=beyond)
    peer.send("PA", b"c" * 100, seq=(beyond + 200) & MASK)  # the held range grows to 300
    reply = peer.send("PA", b"b" * 200, seq=beyond)
    (segment,) = reply.segments
    assert sack_blocks(segment)[:2] == [(beyond, (beyond + 200) & MASK), (beyond, (beyond + 300) & MASK)]


def test_no_dsack_without_sack_or_when_off() -> None:
    """D-SACK needs SACK (RFC 2883 §4), and ``Config(tcp_dsack=False)`` keeps it off."""
    for peer in (established(tcp_dsack=False), established(tcp_sack=False)):
        start = peer.seq
        peer.send("PA", b"x" * 100)
        reply = peer.send("PA", b"x" * 100, seq=start)
        assert all(not sack_blocks(segment) for segment in reply.segments)
        assert peer.stack.stats.tcp_dsacks_sent == 0


def test_a_spurious_fast_retransmit_is_undone_when_the_peer_reports_it_twice() -> None:
    """RFC 3708 §3 with D-SACK: three segments SACKed above a hole start recovery (the
    window is cut); the hole was only reordered, so the peer reports the retransmission
    as a duplicate: the cut is undone (``tcp_undos``), cwnd and ssthresh return."""
    peer = established()
    mss = warm_up(peer)
    before = peer.stack.flow_info(peer.flow)
    flight = peer.at(2.0).tx(bytes(5 * mss)).segments
    peer.at(2.0 + RTT)
    sent = [segment for last in flight[2:5] for segment in data(ack(peer, flight[0].seq, run(flight[1], last), echo=last))]
    assert peer.stack.stats.tcp_fast_recoveries == 1
    (resent,) = [segment for segment in sent if segment.seq == flight[0].seq]
    cut = peer.stack.flow_info(peer.flow)
    assert cut.in_recovery and cut.ssthresh < before.ssthresh
    # The original arrives (reordered): everything is acknowledged; then the
    # retransmission arrives too, and the peer says so with a D-SACK block.
    peer.at(2.0 + RTT + 0.001)
    ack(peer, end(flight[4]), echo=flight[4])
    ack(peer, end(flight[4]), (resent.seq, end(resent)), echo=resent)
    after = peer.stack.flow_info(peer.flow)
    stats = peer.stack.stats
    assert stats.tcp_dsacks_received == 1 and stats.tcp_undos == 1
    assert after.ssthresh == before.ssthresh and after.cwnd >= cut.cwnd
    assert after.dsacks_received == 1 and after.total_retransmits == 1


def test_a_duplicate_reported_twice_counts_once_towards_the_undo() -> None:
    """Two segments resent in one episode: the undo waits for a D-SACK of each. A
    receiver may report the same duplicate again (Linux repeats it until new data
    arrives); the repeat must not stand in for the other retransmission."""
    peer = established()
    mss = warm_up(peer)
    flight = peer.at(2.0).tx(bytes(8 * mss)).segments
    peer.at(2.0 + RTT)
    # Segments 2-7 arrive, 0 and 1 are late: both are resent (PRR paces them by what
    # is delivered, RFC 6937).
    sent = [segment for last in flight[2:] for segment in data(ack(peer, flight[0].seq, run(flight[2], last), echo=last))]
    first, second = ([s for s in sent if s.seq == flight[i].seq] for i in (0, 1))
    assert len(first) == 1 and len(second) == 1
    peer.at(2.0 + 2 * RTT)
    ack(peer, end(flight[7]), echo=flight[7])  # the originals were only reordered
    for _ in range(2):
        ack(peer, end(flight[7]), (first[0].seq, end(first[0])), echo=first[0])
    assert peer.stack.stats.tcp_dsacks_received == 2 and peer.stack.stats.tcp_undos == 0
    ack(peer, end(flight[7]), (second[0].seq, end(second[0])), echo=second[0])
    assert peer.stack.stats.tcp_undos == 1


def test_a_real_loss_is_not_undone() -> None:
    """A D-SACK for data never resent (a duplicate the network made) undoes nothing."""
    peer = established()
    mss = warm_up(peer)
    flight = peer.at(2.0).tx(bytes(5 * mss)).segments
    peer.at(2.0 + RTT)
    for last in flight[2:5]:
        ack(peer, flight[0].seq, run(flight[1], last), echo=last)
    ack(peer, end(flight[4]), echo=flight[4])
    ack(peer, end(flight[4]), run(flight[3], flight[3]), echo=flight[4])  # a duplicate of an original
    stats = peer.stack.stats
    assert stats.tcp_dsacks_received == 1 and stats.tcp_undos == 0


def test_flow_info_reports_retransmissions_reordering_and_delivery_rate() -> None:
    """The TCP_INFO-like figures: min RTT, total retransmissions, reordering seen (a
    segment sent once arriving below one delivered before, RFC 8985 §6.2), and a
    delivery rate over the last round trip."""
    peer = established()
    mss = warm_up(peer)
    flight = peer.at(2.0).tx(bytes(4 * mss)).segments
    peer.at(2.0 + RTT)
    ack(peer, flight[0].seq, run(flight[2], flight[2]), echo=flight[2])
    ack(peer, end(flight[3]), echo=flight[3])  # the first two arrive late: reordering
    info = peer.stack.flow_info(peer.flow)
    assert info.min_rtt is not None and abs(info.min_rtt - RTT) < 1e-6
    assert info.reordering_seen and info.total_retransmits == 0 and info.bytes_lost == 0
    # The last rate sample: the four segments delivered while the newest of them was in
    # flight, over its round trip.
    assert abs(info.delivery_rate - 4 * mss / RTT) < 1
