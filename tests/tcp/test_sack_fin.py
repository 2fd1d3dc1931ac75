"""SACK blocks for a FIN held beyond a hole (RFC 2018 §3: blocks of "contiguous
sequence space"), found by the conformance bench (tests/conformance): Linux reports
such a FIN in its SACK option, alone or with the data it ends."""

from __future__ import annotations

from support.peer import MASK, Peer, make_stack


def test_a_fin_beyond_a_hole_is_sacked_alone() -> None:
    peer = Peer(make_stack())
    peer.handshake()
    fin = (peer.seq + 100) & MASK
    answers = peer.send("FA", seq=fin).segments
    assert [segment.ack for segment in answers] == [peer.seq]
    assert answers[0].sack == [(fin, (fin + 1) & MASK)]


def test_a_fin_beyond_a_hole_extends_the_block_of_its_data() -> None:
    peer = Peer(make_stack())
    peer.handshake()
    start = (peer.seq + 100) & MASK
    answers = peer.send("FA", bytes(50), seq=start).segments
    assert answers[0].sack == [(start, (start + 51) & MASK)]


def test_the_fin_block_goes_once_the_hole_is_filled() -> None:
    peer = Peer(make_stack())
    peer.handshake()
    peer.send("FA", seq=(peer.seq + 100) & MASK)
    answers = peer.send("PA", bytes(100)).segments
    assert answers and answers[-1].ack == (peer.seq + 1) & MASK
    assert answers[-1].sack == []
