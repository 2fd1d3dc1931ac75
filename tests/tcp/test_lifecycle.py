"""Connection lifecycles between two stacks: simultaneous open and close, half-close,
refusal, manual accept, reasons in every ending."""

from __future__ import annotations

from ipaddress import ip_address

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    EndOfStream,
    Flow,
    FlowClosed,
    FlowOpened,
    FlowRequested,
    Proto,
    Stack,
)
from support.link import Impairment, Link

A_SIDE = Flow(Proto.TCP, ip_address("198.51.100.1"), 5000, ip_address("198.51.100.2"), 6000)
B_SIDE = A_SIDE.reversed()


def pair(**config: object) -> Link:
    a: Stack[bytearray] = Stack(Config(secret=b"a-secret-0123456", **config))  # type: ignore[arg-type]
    b: Stack[bytearray] = Stack(Config(secret=b"b-secret-0123456", **config))  # type: ignore[arg-type]
    return Link(a, b, Impairment(delay=0.01))


def kinds(link: Link, side: str) -> list[str]:
    return [type(e).__name__ for e in link.events[side]]


def test_simultaneous_open_rfc9293_figure_8() -> None:
    link = pair()
    # Both SYNs are on the wire before either arrives.
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.call("b", link.b.connect(B_SIDE, 0.0))
    link.run(lambda: len(link.events["a"]) == 1 and len(link.events["b"]) == 1, limit=5.0)
    assert link.events["a"] == [FlowOpened(A_SIDE)] and link.events["b"] == [FlowOpened(B_SIDE)]
    assert link.a.flow_info(A_SIDE).state == "ESTABLISHED" == link.b.flow_info(B_SIDE).state
    link.call("a", link.a.l4_tx(A_SIDE, b"after a simultaneous open", link.now))
    link.run(lambda: len(link.events["b"]) == 2, limit=5.0)
    assert link.events["b"][-1] == DataReceived(B_SIDE, b"after a simultaneous open")


def test_simultaneous_close_rfc9293_figure_13() -> None:
    link = pair()
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.run(lambda: len(link.events["b"]) == 1, limit=5.0)
    link.run(limit=1.0)
    link.call("a", link.a.close(A_SIDE, link.now))
    link.call("b", link.b.close(B_SIDE, link.now))
    link.run(lambda: FlowClosed(A_SIDE, CloseReason.CLOSED) in link.events["a"], limit=5.0)
    link.run(lambda: FlowClosed(B_SIDE, CloseReason.CLOSED) in link.events["b"], limit=5.0)
    # Both went through CLOSING into TIME_WAIT.
    assert link.a.tcp_states() == {"TIME_WAIT": 1} and link.b.tcp_states() == {"TIME_WAIT": 1}
    link.run(limit=120.0)
    assert link.a.tcp_states() == {} and link.b.tcp_states() == {}


def test_half_close_keeps_the_other_direction_open() -> None:
    link = pair()
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.run(lambda: len(link.events["b"]) == 1, limit=5.0)
    link.call("a", link.a.l4_tx(A_SIDE, b"request", link.now))
    link.call("a", link.a.close(A_SIDE, link.now))
    link.run(lambda: EndOfStream(B_SIDE) in link.events["b"], limit=5.0)
    assert link.events["b"][1:] == [DataReceived(B_SIDE, b"request"), EndOfStream(B_SIDE)]
    # b keeps sending after a's FIN; a keeps receiving in FIN_WAIT_2.
    for chunk in (b"response part 1, ", b"part 2"):
        link.call("b", link.b.l4_tx(B_SIDE, chunk, link.now))
        link.run(limit=0.5)
    assert link.a.flow_info(A_SIDE).state == "FIN_WAIT_2"
    received = b"".join(e.data for e in link.events["a"] if isinstance(e, DataReceived))
    assert received == b"response part 1, part 2"
    link.call("b", link.b.close(B_SIDE, link.now))
    link.run(limit=120.0)
    assert link.events["a"][-2:] == [EndOfStream(A_SIDE), FlowClosed(A_SIDE, CloseReason.CLOSED)]
    assert link.events["b"][-1] == FlowClosed(B_SIDE, CloseReason.CLOSED)


def test_connect_to_a_closed_port_is_refused() -> None:
    link = pair(accept="manual")
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.run(lambda: len(link.events["b"]) == 1, limit=5.0)
    assert link.events["b"] == [FlowRequested(B_SIDE)]
    assert link.b.next_deadline() is not None  # the request ages out if ignored
    link.call("b", link.b.reject(B_SIDE, link.now))
    link.run(limit=5.0)
    assert link.events["a"] == [FlowClosed(A_SIDE, CloseReason.REFUSED)]
    assert link.events["b"][-1] == FlowClosed(B_SIDE, CloseReason.REFUSED)
    assert link.a.flows() == [] and link.b.flows() == []


def test_manual_accept_lets_the_application_decide_late() -> None:
    link = pair(accept="manual")
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.call("a", link.a.l4_tx(A_SIDE, b"queued before the handshake", 0.0))
    link.run(lambda: len(link.events["b"]) == 1, limit=5.0)
    # The application takes 3 s to decide (say, connecting upstream first): the peer's
    # SYN retransmissions meanwhile get no answer.
    link.run(limit=3.0)
    assert kinds(link, "a") == [] and kinds(link, "b") == ["FlowRequested"]
    link.call("b", link.b.accept(B_SIDE, link.now))
    link.run(lambda: len(link.events["b"]) == 3, limit=10.0)
    assert link.events["b"][1:] == [FlowOpened(B_SIDE), DataReceived(B_SIDE, b"queued before the handshake")]


def test_abort_resets_the_peer() -> None:
    link = pair()
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.run(lambda: len(link.events["b"]) == 1, limit=5.0)
    link.call("b", link.b.abort(B_SIDE, link.now))
    link.run(limit=5.0)
    assert link.events["b"][-1] == FlowClosed(B_SIDE, CloseReason.ABORTED)
    assert link.events["a"][-1] == FlowClosed(A_SIDE, CloseReason.RESET)
    assert link.a.flows() == [] and link.b.flows() == []


def test_peer_gone_silent_times_out() -> None:
    link = pair(tcp_max_retries=4)
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.run(lambda: len(link.events["b"]) == 1, limit=5.0)
    link.impairment.loss = 1.0  # the cable is cut
    link.call("a", link.a.l4_tx(A_SIDE, b"into the void", link.now))
    link.run(lambda: bool(link.events["a"][1:]), limit=600.0)
    assert link.events["a"][-1] == FlowClosed(A_SIDE, CloseReason.TIMED_OUT)
    assert link.a.stats.tcp_timeouts == 4


def test_connect_with_no_answer_times_out() -> None:
    link = pair(tcp_syn_retries=2)
    link.impairment.loss = 1.0
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.run(lambda: bool(link.events["a"]), limit=600.0)
    # RFC 6298 §5.5 backoff from the initial 1 s: SYNs at 0, 1 and 3 s, given up at 7 s.
    assert link.events["a"] == [FlowClosed(A_SIDE, CloseReason.TIMED_OUT)]
    assert abs(link.now - 7.0) < 1e-6


def test_close_and_abort_in_time_wait_do_nothing() -> None:
    """The app may see EndOfStream and call close in the same Output that moved the
    connection to TIME_WAIT: that must not raise."""
    link = pair()
    link.call("a", link.a.connect(A_SIDE, 0.0))
    link.run(lambda: FlowOpened(B_SIDE) in link.events["b"], limit=5.0)
    link.call("a", link.a.close(A_SIDE, link.now))
    link.run(lambda: EndOfStream(B_SIDE) in link.events["b"], limit=5.0)
    link.call("b", link.b.close(B_SIDE, link.now))
    link.run(lambda: FlowClosed(A_SIDE, CloseReason.CLOSED) in link.events["a"], limit=5.0)
    assert link.a.tcp_states() == {"TIME_WAIT": 1}
    assert link.a.close(A_SIDE, link.now).packets == []
    assert link.a.abort(A_SIDE, link.now).packets == []
    assert link.a.tcp_states() == {"TIME_WAIT": 1}
