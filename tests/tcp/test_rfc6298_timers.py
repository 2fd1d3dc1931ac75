"""RFC 6298 retransmission timers under a driven clock: the SYN-ACK and SYN backoff,
data retransmission with a floored, doubling RTO, and the ways a handshake or a
connection ends when nobody answers (or somebody refuses). Tail loss probes (RFC 8985
§7), which come before the first timeout, are off here; tests/tcp/test_tail_loss_probe.py
has them."""

from __future__ import annotations

from ipaddress import ip_address

import pytest
from scapy.all import ICMP, IP, ICMPv6DestUnreach, IPv6, Raw
from support.peer import MASK, Peer, Segment, syn_options
from support.peer import make_stack as make_any_stack

from l3l4 import CloseReason, Config, DropReason, ErrorReceived, FlowClosed, IcmpErrorKind, Stack

DEFAULTS = Config()


def make_stack(**overrides: object) -> Stack[bytearray]:
    return make_any_stack(tcp_tail_loss_probe=False, **overrides)
INITIAL_RTO = 1.0  # RFC 6298 §2.1


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


def same_segment(a: Segment, b: Segment) -> bool:
    """Equal in every header field and option but the TSval, which moves with time."""

    def strip(segment: Segment) -> tuple[object, ...]:
        options = tuple(
            (kind, (0, value[1]) if kind == "Timestamp" else value) for kind, value in segment.options
        )
        return (segment.flags, segment.seq, segment.ack, segment.window, options, segment.payload, segment.df)

    return strip(a) == strip(b)


# -- the handshake -------------------------------------------------------------------------


def test_unanswered_syn_ack_backs_off_1_2_4_seconds_then_gives_up() -> None:
    peer = Peer(make_stack())
    first = peer.syn().only
    syn_tsval = peer.tsval()
    assert first.flags == "SA"
    expected = 0.0
    for attempt in range(DEFAULTS.tcp_syn_retries):
        expected += INITIAL_RTO * 2**attempt  # 1, 3, 7, 15, 31, 63
        assert peer.stack.next_deadline() == approx(expected)
        assert peer.poll(expected - 0.001).segments == []
        again = peer.poll(expected).only
        assert same_segment(again, first), (again, first)
        assert again.ts is not None and first.ts is not None
        assert again.ts == ((first.ts[0] + int(expected * 1000)) & MASK, syn_tsval)
    expected += INITIAL_RTO * 2**DEFAULTS.tcp_syn_retries
    assert peer.stack.next_deadline() == approx(expected)
    ended = peer.poll(expected)
    assert all(segment.flags == "R" for segment in ended.segments)
    assert ended.events == []  # never opened, so never reported
    assert peer.stack.tcp_states() == {}
    assert peer.stack.stats.tcp_retransmits == DEFAULTS.tcp_syn_retries


def test_connect_without_answer_retransmits_syn_then_times_out() -> None:
    peer = Peer(make_stack(tcp_syn_retries=2))
    syn = peer.connect().only
    assert syn.flags == "S" and syn.ack == 0 and syn.df
    assert syn.option_kinds == ["MSS", "SAckOK", "Timestamp", "WScale"]
    assert syn.mss == 1460 and syn.ts is not None and syn.ts[1] == 0
    assert peer.stack.tcp_states() == {"SYN_SENT": 1}
    for at in (1.0, 3.0):
        assert peer.stack.next_deadline() == approx(at)
        assert same_segment(peer.poll(at).only, syn)
    assert peer.stack.next_deadline() == approx(7.0)
    ended = peer.poll(7.0)
    assert ended.segments == []
    assert ended.events == [FlowClosed(peer.flow, CloseReason.TIMED_OUT)]
    assert peer.stack.tcp_states() == {}
    assert peer.stack.next_deadline() is None


@pytest.mark.parametrize("side", ["passive", "active"])
def test_rto_is_three_seconds_after_a_handshake_timeout_without_rtt_sample(side: str) -> None:
    """RFC 6298 §5.7: if the timer expired awaiting the ACK of a SYN (and the initial RTO
    is below 3 s), the RTO MUST be re-initialized to 3 s when data transmission begins.
    Without timestamps Karn's rule leaves no RTT sample from the handshake."""
    peer = Peer(make_stack())
    no_ts = syn_options(None)
    if side == "passive":
        peer.syn(no_ts)
        peer.poll(1.0)  # the SYN-ACK again
        peer.at(1.1)
        assert peer.send("A").events != []
    else:
        peer.connect()
        peer.poll(1.0)  # the SYN again
        peer.at(1.1)
        peer.send("SA", options=no_ts)
    assert peer.state() == "ESTABLISHED"
    sent = peer.at(2.0).tx(b"z" * 10).only
    assert sent.payload == b"z" * 10
    assert peer.stack.next_deadline() == approx(2.0 + 3.0)


# -- data ------------------------------------------------------------------------------------


@pytest.mark.parametrize("min_rto", [0.2, 0.5])
def test_data_retransmission_after_min_rto_with_doubling(min_rto: float) -> None:
    peer = Peer(make_stack(tcp_min_rto=min_rto))
    peer.handshake(rtt=0.01)  # RTO from the sample is 0.01 + 4 * 0.005, under the floor
    first = peer.at(1.0).tx(b"d" * 100).only
    assert first.flags == "PA" and first.seq == (peer.stack_isn or 0) + 1 and first.payload == b"d" * 100
    when, rto = 1.0, min_rto
    for _ in range(5):
        when += rto
        assert peer.stack.next_deadline() == approx(when)
        assert peer.poll(when - 0.0001).segments == []
        again = peer.poll(when).only
        assert (again.flags, again.seq, again.ack, again.payload) == (first.flags, first.seq, first.ack, first.payload)
        rto *= 2
        assert peer.stack.flow_info(peer.flow).rto == approx(rto)
    assert peer.stack.stats.tcp_retransmits == 5
    assert peer.stack.stats.tcp_timeouts == 5


def test_rto_backoff_is_capped_at_max_rto() -> None:
    peer = Peer(make_stack(tcp_min_rto=0.2, tcp_max_rto=1.0))
    peer.handshake()
    peer.at(1.0).tx(b"c" * 10)
    when = 1.0
    for interval in (0.2, 0.4, 0.8, 1.0, 1.0, 1.0):
        when += interval
        assert peer.stack.next_deadline() == approx(when)
        assert len(peer.poll(when).segments) == 1


def test_ack_of_all_data_stops_the_retransmission_timer() -> None:
    config = DEFAULTS
    peer = Peer(make_stack())
    peer.handshake()
    peer.at(1.0).tx(b"e" * 100)
    assert peer.stack.next_deadline() == approx(1.0 + config.tcp_min_rto)
    assert peer.at(1.05).send("A").segments == []
    assert peer.stack.flow_info(peer.flow).bytes_in_flight == 0
    assert config.tcp_idle_timeout is not None
    assert peer.stack.next_deadline() == approx(1.05 + config.tcp_idle_timeout)


def test_partial_ack_restarts_the_timer() -> None:
    """RFC 6298 §5.3: an ACK of new data restarts the timer at now + RTO."""
    peer = Peer(make_stack())
    peer.handshake(window=65535)
    sent = peer.at(1.0).tx(b"f" * 3000).segments
    assert len(sent) == 3
    peer.at(1.1).send("A", ack=sent[0].seq + len(sent[0].payload))
    rto = peer.stack.flow_info(peer.flow).rto
    assert rto >= DEFAULTS.tcp_min_rto
    assert peer.stack.next_deadline() == approx(1.1 + rto)
    again = peer.poll(1.1 + rto).only
    assert again.seq == sent[1].seq and again.payload == sent[1].payload


def test_connection_times_out_after_max_retries() -> None:
    peer = Peer(make_stack(tcp_max_retries=3))
    peer.handshake()
    peer.at(1.0).tx(b"g" * 10)
    for _ in range(3):
        assert len(peer.poll_deadline().segments) == 1
    ended = peer.poll_deadline()
    assert peer.now == approx(1.0 + 0.2 + 0.4 + 0.8 + 1.6)
    assert all(segment.flags == "R" for segment in ended.segments)
    assert ended.events == [FlowClosed(peer.flow, CloseReason.TIMED_OUT)]
    assert peer.stack.tcp_states() == {}
    assert peer.stack.next_deadline() is None
    assert peer.stack.stats.tcp_retransmits == 3


def test_user_timeout_closes_when_it_expires_not_at_the_next_retransmission() -> None:
    """RFC 9293 §3.8.3: data may stay unacknowledged ``tcp_user_timeout`` seconds. The
    connection ends then, between two retransmissions, not at the next backed-off one."""
    peer = Peer(make_stack(tcp_user_timeout=1.0))
    peer.handshake(rtt=0.01)  # the RTO is the 0.2 s floor
    peer.at(1.0).tx(b"u" * 10)
    for when in (1.2, 1.6):  # retransmissions at the doubling RTO
        assert peer.stack.next_deadline() == approx(when)
        assert len(peer.poll(when).segments) == 1
    # The next retransmission would be at 2.4; the user timeout expires at 2.0.
    assert peer.stack.next_deadline() == approx(2.0)
    assert peer.poll(1.999).events == []
    ended = peer.poll(2.0)
    assert ended.events == [FlowClosed(peer.flow, CloseReason.TIMED_OUT)]
    assert peer.stack.tcp_states() == {}


def test_user_timeout_counts_from_the_last_progress() -> None:
    peer = Peer(make_stack(tcp_user_timeout=1.0))
    peer.handshake(rtt=0.01)
    sent = peer.at(1.0).tx(b"v" * 3000).segments
    assert len(sent) == 3
    peer.at(1.5).send("A", ack=(sent[0].seq + len(sent[0].payload)) & MASK)  # some data acknowledged
    assert peer.poll(2.4).events == []
    assert peer.poll(2.5).events == [FlowClosed(peer.flow, CloseReason.TIMED_OUT)]


# -- connect answered ------------------------------------------------------------------------


def test_connect_answered_by_rst_ack_is_refused() -> None:
    peer = Peer(make_stack())
    syn = peer.connect().only
    # RFC 9293 §3.10.7.3: a reset whose ACK does not acknowledge our SYN is dropped, and
    # so is one without ACK.
    assert peer.at(0.1).send("RA", seq=0, ack=(syn.seq + 5) & MASK).events == []
    assert peer.at(0.1).send("R", seq=0).events == []
    assert peer.state() == "SYN_SENT"
    refused = peer.at(0.2).send("RA", seq=0, ack=(syn.seq + 1) & MASK)
    assert refused.segments == []
    assert refused.events == [FlowClosed(peer.flow, CloseReason.REFUSED)]
    assert peer.stack.tcp_states() == {}
    assert peer.stack.next_deadline() is None


def test_connect_answered_by_icmp_port_unreachable() -> None:
    peer = Peer(make_stack())
    syn = peer.connect().only
    router = "198.51.100.254"
    error = IP(src=router, dst=peer.stack_addr) / ICMP(type=3, code=3) / Raw(syn.raw[:28])
    result = peer.at(0.3).inject(error)
    assert result.segments == []
    assert result.events == [
        ErrorReceived(peer.flow, IcmpErrorKind.UNREACHABLE, 3, 3, None, ip_address(router)),
        FlowClosed(peer.flow, CloseReason.UNREACHABLE),
    ]
    assert peer.stack.tcp_states() == {}


def test_connect_answered_by_icmpv6_port_unreachable() -> None:
    peer = Peer(make_stack(), addr="2001:db8::1", stack_addr="2001:db8:ffff::80")
    syn = peer.connect().only
    assert syn.mss == 1440
    error = IPv6(src="2001:db8::fe", dst=peer.stack_addr) / ICMPv6DestUnreach(code=4) / Raw(syn.raw)
    result = peer.at(0.3).inject(error)
    assert result.events[-1] == FlowClosed(peer.flow, CloseReason.UNREACHABLE)
    assert peer.stack.tcp_states() == {}


def test_icmp_quoting_a_sequence_number_not_in_flight_is_ignored() -> None:
    """RFC 5927 §4.1: the quoted sequence number must lie in [SND.UNA, SND.NXT]."""
    peer = Peer(make_stack())
    syn = peer.connect().only
    forged = bytearray(syn.raw[:28])
    forged[24:28] = ((syn.seq + 100_000) & MASK).to_bytes(4, "big")
    error = IP(src="198.51.100.254", dst=peer.stack_addr) / ICMP(type=3, code=3) / Raw(bytes(forged))
    result = peer.at(0.3).inject(error)
    assert result.events == [] and result.segments == []
    assert peer.stack.stats.drops[DropReason.BAD_ICMP] == 1
    assert peer.state() == "SYN_SENT"
