"""RFC 5961 (blind in-window attacks) and RFC 7323 §5 (PAWS), packet by packet: a scapy
peer on an established connection sends resets, SYNs, bad ACKs and stale segments, and
every reply of the stack is checked field by field."""

from __future__ import annotations

import pytest
from support.peer import MASK, Peer, Segment, data_of, make_stack, syn_options

from l3l4 import CloseReason, DropReason, FlowClosed

STACK_WINDOW = 65535
"""The window the SYN-ACK advertises with the default 256 KiB buffer (unscaled, so the
16-bit maximum); nothing widens it until the stack sends another segment."""


def established(**config: object) -> tuple[Peer, Segment]:
    """A connection through a full handshake at t=0, with every option negotiated."""
    peer = Peer(make_stack(**config))
    syn_ack = peer.handshake()
    return peer, syn_ack


def assert_ack(segment: Segment, peer: Peer, *, tsecr: int | None = None) -> None:
    """A pure ACK: SEQ = SND.NXT, ACK = the peer's next sequence number (RCV.NXT)."""
    assert segment.flags == "A"
    assert segment.seq == peer.snd_nxt()
    assert segment.ack == peer.seq
    assert segment.payload == b""
    assert segment.df
    if tsecr is not None:
        assert segment.ts is not None and segment.ts[1] == tsecr


# -- RFC 5961 §3: resets ------------------------------------------------------------------


@pytest.mark.parametrize("flags", ["R", "RA"])
def test_rst_at_rcv_nxt_resets(flags: str) -> None:
    peer, _ = established()
    result = peer.at(1.0).send(flags, seq=peer.seq, ack=peer.snd_nxt())
    assert result.segments == []
    assert result.events == [FlowClosed(peer.flow, CloseReason.RESET)]
    assert peer.stack.tcp_states() == {}
    assert peer.stack.next_deadline() is None


@pytest.mark.parametrize("offset", [1, 1000, STACK_WINDOW - 1])
def test_rst_in_window_but_not_exact_gets_one_challenge_ack(offset: int) -> None:
    peer, syn_ack = established()
    assert syn_ack.window == STACK_WINDOW
    handshake_tsval = peer.tsval()
    result = peer.at(1.0).send("R", seq=(peer.seq + offset) & MASK)
    assert result.events == []
    assert_ack(result.only, peer, tsecr=handshake_tsval)
    assert peer.state() == "ESTABLISHED"
    assert peer.stack.stats.drops[DropReason.TCP_CHALLENGED] == 1
    assert peer.stack.stats.tcp_challenge_acks == 1
    # The connection is intact: data still flows, and the exact reset still works.
    assert data_of(peer.send("PA", b"still here").events) == b"still here"
    closed = peer.at(2.0).send("R")
    assert closed.events == [FlowClosed(peer.flow, CloseReason.RESET)]


@pytest.mark.parametrize("offset", [STACK_WINDOW, 1 << 20, -1, -1000])
def test_rst_outside_the_window_is_dropped_silently(offset: int) -> None:
    peer, _ = established()
    result = peer.at(1.0).send("R", seq=(peer.seq + offset) & MASK)
    assert result.segments == []
    assert result.events == []
    assert peer.state() == "ESTABLISHED"
    assert peer.stack.stats.tcp_challenge_acks == 0


# -- RFC 5961 §4: SYN on a synchronized connection ----------------------------------------


@pytest.mark.parametrize("offset", [0, 500, 1 << 20, -1])
def test_syn_on_established_connection_gets_challenge_ack(offset: int) -> None:
    """§4.2: whatever its sequence number, a SYN is answered with an ACK, never a
    reset, and the connection stays."""
    peer, _ = established()
    peer.at(1.0)
    result = peer.send("S", seq=(peer.seq + offset) & MASK, options=syn_options(peer.tsval()))
    assert result.events == []
    ack = result.only
    assert ack.flags == "A"
    assert ack.seq == peer.snd_nxt() and ack.ack == peer.seq
    assert peer.state() == "ESTABLISHED"
    assert data_of(peer.send("PA", b"after syn").events) == b"after syn"


def test_in_window_syn_counts_as_challenged() -> None:
    peer, _ = established()
    peer.at(1.0).send("S", seq=peer.seq, options=syn_options(peer.tsval()))
    assert peer.stack.stats.drops[DropReason.TCP_CHALLENGED] == 1
    assert peer.stack.stats.tcp_challenge_acks == 1


# -- RFC 5961 §7: rate limit ----------------------------------------------------------------


def challenges_until_refused(peer: Peer, now: float, limit: int) -> int:
    """Send in-window resets at ``now`` until one goes unanswered; return how many were
    answered (each with a challenge ACK)."""
    answered = 0
    while peer.at(now).send("R", seq=(peer.seq + 100) & MASK).segments:
        answered += 1
        assert answered <= limit * 3 // 2, "more challenge ACKs than the budget allows"
    return answered


def test_challenge_ack_rate_limit_holds_within_a_second_and_recovers() -> None:
    peer, _ = established(tcp_challenge_ack_limit=4)
    answered = challenges_until_refused(peer, 10.5, 4)
    assert 2 <= answered < 6  # this second's budget, drawn from [limit / 2, limit * 3 / 2)
    # SYN challenges draw on the same budget.
    assert peer.at(10.8).send("S", seq=peer.seq, options=syn_options(peer.tsval())).segments == []
    assert peer.state() == "ESTABLISHED"
    # The next second: challenges go out again.
    recovered = peer.at(11.6).send("R", seq=(peer.seq + 100) & MASK)
    assert_ack(recovered.only, peer)
    stats = peer.stack.stats
    assert stats.tcp_challenge_acks == answered + 1
    assert stats.drops[DropReason.TCP_CHALLENGED] == answered + 3


def test_challenge_ack_limit_is_shared_by_the_whole_stack() -> None:
    stack = make_stack(tcp_challenge_ack_limit=4)
    first = Peer(stack, port=40001)
    second = Peer(stack, port=40002)
    first.handshake()
    second.handshake()
    assert challenges_until_refused(first, 5.1, 4) >= 2
    assert second.at(5.3).send("R", seq=(second.seq + 1) & MASK).segments == []
    assert stack.tcp_states() == {"ESTABLISHED": 2}


def test_each_seconds_challenge_budget_is_drawn_from_the_secret() -> None:
    """CVE-2016-5696: with a fixed budget an off-path attacker counts the challenge ACKs
    its own connection still gets to learn what others' guesses spent. Each second's
    budget lies in [limit / 2, limit * 3 / 2), varies, averages near the limit, and
    depends on the stack's secret."""
    budgets = {}
    for secret in (b"challenge-secret-1", b"challenge-secret-2"):
        peer, _ = established(tcp_challenge_ack_limit=10, secret=secret)
        budgets[secret] = [challenges_until_refused(peer, 100.0 + n, 10) for n in range(40)]
    for drawn in budgets.values():
        assert all(5 <= budget < 15 for budget in drawn)
        assert len(set(drawn)) > 3
        assert 8 <= sum(drawn) / len(drawn) <= 12
    first, second = budgets.values()
    assert first != second


# -- RFC 5961 §5: ACK values ------------------------------------------------------------------


def test_ack_of_unsent_data_is_answered_and_its_data_not_delivered() -> None:
    peer, _ = established()
    snd_nxt = peer.snd_nxt()
    result = peer.at(1.0).send("PA", b"bogus", seq=peer.seq, ack=(snd_nxt + 1000) & MASK)
    assert data_of(result.events) == b""
    assert result.events == []
    assert_ack(result.only, peer)
    assert peer.stack.stats.drops[DropReason.TCP_BAD_ACK] == 1
    assert peer.stack.flow_info(peer.flow).snd_una == snd_nxt
    # The same bytes with an acceptable ACK are taken.
    assert data_of(peer.send("PA", b"honest").events) == b"honest"


def test_ack_older_than_max_snd_wnd_is_answered_and_its_data_not_delivered() -> None:
    peer, _ = established()
    snd_una = peer.stack.flow_info(peer.flow).snd_una
    stale = (snd_una - (1 << 20)) & MASK
    result = peer.at(1.0).send("PA", b"stale", seq=peer.seq, ack=stale)
    assert result.events == []
    assert_ack(result.only, peer)
    assert peer.stack.stats.drops[DropReason.TCP_BAD_ACK] == 1


def test_old_ack_within_max_snd_wnd_still_carries_data() -> None:
    """§5.2: [SND.UNA - MAX.SND.WND, SND.NXT] is acceptable; a duplicate ACK's data is
    processed normally (RFC 9293 §3.10.7.4)."""
    peer, _ = established()
    peer.at(0.5).tx(b"s" * 200)
    peer.send("A")  # all 200 bytes acknowledged
    snd_una = peer.stack.flow_info(peer.flow).snd_una
    result = peer.at(1.0).send("PA", b"fine", ack=(snd_una - 100) & MASK)
    assert data_of(result.events) == b"fine"
    assert peer.stack.stats.drops[DropReason.TCP_BAD_ACK] == 0


def test_ack_below_iss_plus_one_is_answered_and_its_data_not_delivered() -> None:
    """Below ISS + 1 lies nothing a peer that acknowledged our SYN can acknowledge, even
    inside MAX.SND.WND: the ACK is unacceptable (§5.2), as Linux has it (its bound is
    the bytes acknowledged so far); found by the conformance bench."""
    peer, syn_ack = established()
    result = peer.at(1.0).send("PA", b"early", seq=peer.seq, ack=syn_ack.seq)
    assert result.events == []
    assert_ack(result.only, peer)
    assert peer.stack.stats.drops[DropReason.TCP_BAD_ACK] == 1


# -- RFC 9293 §3.10.7.4: unacceptable segments --------------------------------------------


@pytest.mark.parametrize("offset", [STACK_WINDOW, 1 << 20])
def test_data_beyond_the_window_is_acked_not_delivered(offset: int) -> None:
    peer, _ = established()
    result = peer.at(1.0).send("PA", b"x" * 100, seq=(peer.seq + offset) & MASK)
    assert result.events == []
    assert_ack(result.only, peer)
    assert peer.stack.stats.drops[DropReason.TCP_OUT_OF_WINDOW] == 1
    assert peer.stack.flow_info(peer.flow).rcv_nxt == peer.seq


def test_duplicate_data_is_acked_not_delivered_again() -> None:
    peer, _ = established(tcp_delayed_ack=0)
    start = peer.seq
    first = peer.at(1.0).send("PA", b"y" * 100)
    assert data_of(first.events) == b"y" * 100
    assert_ack(first.only, peer)
    again = peer.at(1.1).send("PA", b"y" * 100, seq=start)
    assert again.events == []
    assert_ack(again.only, peer)


# -- RFC 7323 §5: PAWS ----------------------------------------------------------------------------


def test_paws_drops_a_segment_with_an_older_tsval_and_acks() -> None:
    peer, _ = established()
    peer.at(1.0)
    newest = peer.tsval()
    assert data_of(peer.send("PA", b"a" * 100).events) == b"a" * 100
    rcv_nxt = peer.seq
    result = peer.at(1.01).send("PA", b"b" * 100, seq=rcv_nxt, tsval=(newest - 1) & MASK)
    assert result.events == []
    ack = result.only
    assert ack.flags == "A" and ack.seq == peer.snd_nxt() and ack.ack == rcv_nxt
    assert ack.ts is not None and ack.ts[1] == newest  # TS.Recent is unchanged
    assert peer.stack.stats.drops[DropReason.TCP_PAWS] == 1
    assert peer.stack.flow_info(peer.flow).rcv_nxt == rcv_nxt
    # The same bytes with a current timestamp are taken.
    assert data_of(peer.send("PA", b"b" * 100).events) == b"b" * 100


def test_paws_does_not_apply_to_resets() -> None:
    """§5.3 R1 applies only "if the RST bit is not set"."""
    peer, _ = established()
    peer.at(1.0).send("PA", b"data")
    result = peer.at(1.5).send("R", tsval=peer.ts_base - 5)
    assert result.events == [FlowClosed(peer.flow, CloseReason.RESET)]
    assert peer.stack.stats.drops[DropReason.TCP_PAWS] == 0
