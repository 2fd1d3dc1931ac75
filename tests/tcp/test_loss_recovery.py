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
