"""Fast retransmit packet by packet (RFC 5681 §3.2, RFC 6582, RFC 6675): duplicate ACKs
put the sender in recovery and the first lost segment is resent, once."""

from __future__ import annotations

import pytest
from support.peer import MASK, Options, Peer, make_stack, syn_options


@pytest.mark.parametrize("sack", [True, False], ids=["sack", "newreno"])
def test_entering_recovery_resends_the_lost_segment_once(sack: bool) -> None:
    """RFC 6675 §5 (4.2): after retransmitting the first segment presumed lost, HighRxt
    is set to its end "to prevent repeated retransmission of the same data"."""
    peer = Peer(make_stack())
    peer.handshake(syn_options(None, sack=sack), rtt=0.01)  # no timestamps: plain options
    mss = peer.stack.flow_info(peer.flow).mss
    sent = peer.at(1.0).tx(bytes(10 * mss)).segments  # the initial window (RFC 6928)
    assert len(sent) == 10
    lost = sent[0]
    # Every segment but the first arrives: a duplicate ACK for each, with a SACK block
    # for what has arrived when SACK was agreed.
    replies = []
    for k, segment in enumerate(sent[1:], start=1):
        options: Options = []
        if sack:
            right = (segment.seq + len(segment.payload)) & MASK
            options = [("NOP", None), ("NOP", None), ("SAck", (sent[1].seq, right))]
        replies += peer.at(1.01 + k * 0.001).send("A", ack=lost.seq, options=options).segments
    resent = [segment for segment in replies if segment.seq == lost.seq]
    assert len(resent) == 1, [(segment.seq - lost.seq, len(segment.payload)) for segment in replies]
    assert resent[0].payload == lost.payload
    assert peer.stack.stats.tcp_fast_recoveries == 1
    assert peer.stack.stats.tcp_retransmits == 1


@pytest.mark.parametrize("trigger", ["timeout", "duplicate-acks"])
def test_a_retransmission_with_sack_blocks_still_fits_the_path(trigger: str) -> None:
    """RFC 9293 §3.7.1: "if there are any IP or TCP options to be sent in a packet, then
    the sender must decrease the size of the TCP data accordingly". A full-sized segment
    resent while we hold the peer's data out of order carries SACK blocks, so it carries
    that much less data; it went out as IP fragments before (found by the conformance
    bench, tests/conformance)."""
    peer = Peer(make_stack(tcp_tail_loss_probe=trigger != "timeout"))  # the probe would come first
    peer.handshake(rtt=0.01)
    mtu = peer.stack.path_mtu(peer.flow)
    mss = peer.stack.flow_info(peer.flow).mss
    sent = peer.at(1.0).tx(bytes(3 * mss)).segments
    assert [len(segment.payload) for segment in sent] == [mss] * 3
    # The peer's data with a hole in front: held out of order, SACKed from now on.
    peer.send("PA", bytes(100), seq=(peer.seq + 100) & MASK, ack=sent[0].seq)
    if trigger == "timeout":
        resent = peer.at(5.0).poll().segments
    else:
        # RFC 5827 early retransmit: two duplicate ACKs with three segments out (with
        # SACK agreed, RFC 6675 §2: ACKs that SACK new data).
        resent = []
        for segment in sent[1:]:
            block = (sent[1].seq, (segment.seq + len(segment.payload)) & MASK)
            resent += peer.send("A", ack=sent[0].seq, options=[("NOP", None), ("NOP", None), ("SAck", block)]).segments
    resent = [segment for segment in resent if segment.payload]
    assert resent and resent[0].seq == sent[0].seq and resent[0].sack
    assert len(resent[0].raw) <= mtu
    assert len(resent[0].payload) == mss - 12  # NOP, NOP and one SACK block of 8 bytes
