"""The l3l4kit callback contract, kept: buffers recycled inline, a missing buffer that
heals at the next call (not at the retransmission timeout), the end of every flow
signalled with its reason, ``Writable`` delivered, and callbacks that raise or misuse
the API met with a clear error and a stack that still works.

Two :class:`~l3l4.CallbackStack` applications talk over a simulated wire
(``support.callback_pair``), in simulated time: the figures here are exact and
repeatable; the wall-clock comparison is ``benchmarks/callbacks.py``.
"""

from __future__ import annotations

import random
from ipaddress import ip_address

import pytest
from support.callback_pair import ECHO_FLOW, App, LegacyApp, Pool, echo_exchange, run

from l3l4 import (
    CallbackStack,
    CloseReason,
    Config,
    DropReason,
    Flow,
    Proto,
    ReentrantCallError,
    TxBufferError,
)

FLOW = ECHO_FLOW
UDP_FLOW = Flow(Proto.UDP, ip_address("198.51.100.7"), 40000, ip_address("203.0.113.53"), 53)
SERVED = FLOW.reversed()


def config(name: str, **overrides: object) -> Config:
    return Config(secret=name.encode().ljust(16, b"-"), **overrides)  # type: ignore[arg-type]


def pattern(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def established(app: LegacyApp, flow: Flow) -> bool:
    return flow in app.net.stack.flows() and app.net.stack.flow_info(flow).state == "ESTABLISHED"


def connected(client: LegacyApp, server: LegacyApp, flow: Flow = FLOW) -> None:
    client.net.connect(flow, client.now)
    run(client, server, lambda: established(client, flow) and established(server, flow.reversed()))


# -- 1. buffers are recycled inline -----------------------------------------------------


def test_each_packet_reaches_l3_tx_before_the_next_buffer_is_asked_for() -> None:
    calls: list[str] = []

    class Recorder(App):
        def l3_tx_buffer(self, size: int) -> bytearray | None:
            calls.append("buffer")
            return super().l3_tx_buffer(size)

        def l3_tx(self, packet: bytearray, length: int) -> None:
            calls.append("tx")
            super().l3_tx(packet, length)

    client = App(config("client"))
    server = Recorder(config("server"), Pool(1))
    connected(client, server)
    calls.clear()
    # One call that owes ten full segments (the initial window, RFC 6928).
    assert server.net.l4_tx(SERVED, pattern(10 * 1448), server.now) == 10 * 1448
    assert calls == ["buffer", "tx"] * 10
    assert len(server.wire) == 10 and server.pool.misses == 0
    assert server.net.stack.stats.tx_buffer_unavailable == 0


def test_a_pool_of_one_recycled_inline_echoes_4_mb_as_fast_as_an_unlimited_pool() -> None:
    *_, unlimited = echo_exchange(4 << 20, Pool(None))
    _, server, pool_of_one = echo_exchange(4 << 20, Pool(1))
    stats = server.net.stack.stats
    assert server.pool.misses == 0 and stats.tx_buffer_unavailable == 0
    assert stats.tcp_retransmits == 0 and stats.dropped == 0
    # Simulated time: the same packets at the same moments.
    assert pool_of_one == pytest.approx(unlimited, rel=1e-9)


# -- 2. a missing buffer heals at the next call ------------------------------------------


def test_a_segment_without_a_buffer_waits_and_goes_at_the_next_call() -> None:
    dry = {"now": False}
    client = App(config("client"))
    server = App(config("server"), Pool(None, dry=lambda now: dry["now"]))
    connected(client, server)
    stack = server.net.stack
    dry["now"] = True
    now = server.now
    assert server.net.l4_tx(SERVED, b"x" * 5000, now) == 5000  # queued: the buffer is the stack's
    assert server.wire == [] and stack.flow_info(SERVED).bytes_in_flight == 0
    assert stack.stats.tx_buffer_unavailable == 1  # one try per call, not one per segment
    assert stack.stats.drops[DropReason.TX_BUFFER_EXHAUSTED] == 0  # nothing was lost
    # A short retry, not the retransmission timeout.
    assert server.net.l4_poll(now) == pytest.approx(now + Config().tx_retry_interval)
    dry["now"] = False
    server.net.l4_poll(now + 0.002)
    assert len(server.wire) == 4 and stack.stats.tcp_tx_resumed == 1
    # Sent: now the tail loss probe or the retransmission timer, not a retry.
    later = server.net.l4_poll(now + 0.002)
    assert later is not None and now + 0.004 < later <= now + 0.002 + stack.flow_info(SERVED).rto
    run(client, server, lambda: len(client.received.get(FLOW, b"")) == 5000)
    assert stack.stats.tcp_retransmits == 0 and client.net.stack.stats.tcp_retransmits == 0


def test_an_ack_without_a_buffer_is_owed_and_sent_next() -> None:
    dry = {"now": False}
    client = App(config("client", tcp_delayed_ack=0.0))
    server = App(config("server", tcp_delayed_ack=0.0), Pool(None, dry=lambda now: dry["now"]))
    connected(client, server)
    client.send(FLOW, b"y" * 1000)
    [segment] = client.wire
    client.wire.clear()
    dry["now"] = True
    server.rx(segment, server.now)  # the ACK it owes finds no buffer
    assert server.received[SERVED] == b"y" * 1000 and server.wire == []
    dry["now"] = False
    # The next call, whatever it is, sends it: here a UDP datagram on another flow.
    server.net.connect(UDP_FLOW.reversed(), server.now)
    server.net.l4_tx(UDP_FLOW.reversed(), b"ping", server.now)
    assert len(server.wire) == 2  # the owed ACK first, then the datagram
    client.rx(server.wire[0], server.now)
    assert client.net.stack.flow_info(FLOW).bytes_in_flight == 0


def test_a_syn_ack_without_a_buffer_goes_at_the_next_call() -> None:
    dry = {"now": True}
    client = App(config("client"))
    server = App(config("server"), Pool(None, dry=lambda now: dry["now"]))
    client.net.connect(FLOW, 0.0)
    [syn] = client.wire
    client.wire.clear()
    server.rx(syn, 0.0)
    assert server.wire == []
    dry["now"] = False
    assert server.poll(0.002) is not None
    assert len(server.wire) == 1  # the SYN-ACK
    run(client, server, lambda: ("opened", SERVED) in server.trace.calls)
    assert client.net.stack.stats.tcp_retransmits == 0


def test_a_handshake_completed_while_the_syn_resend_waits_for_a_buffer_goes_on() -> None:
    """The SYN's retransmission finds no buffer, then the answer to the first SYN
    arrives: the connection is established and its data goes (no SYN is owed any more)."""
    dry = {"now": False}
    client = App(config("client"), Pool(None, dry=lambda now: dry["now"]))
    server = App(config("server"))
    client.net.connect(FLOW, 0.0)
    [syn] = client.wire
    client.wire.clear()
    server.rx(syn, 0.0)
    [syn_ack] = server.wire  # slow: it comes after our retransmission timeout
    server.wire.clear()
    dry["now"] = True
    client.poll(1.0)
    client.rx(syn_ack, 1.001)
    dry["now"] = False
    client.send(FLOW, b"hello")
    assert client.net.stack.flow_info(FLOW).state == "ESTABLISHED"
    run(client, server, lambda: bytes(server.received.get(SERVED, b"")) == b"hello", limit=0.1)


def test_a_delayed_ack_due_while_the_pool_is_dry_is_retried_not_spun_on() -> None:
    dry = {"now": False}
    client = App(config("client"))
    server = App(config("server", tcp_quick_acks=0), Pool(None, dry=lambda now: dry["now"]))
    connected(client, server)
    client.send(FLOW, b"one segment")
    [segment] = client.wire
    client.wire.clear()
    start = server.now
    server.rx(segment, start)  # one segment: its ACK is delayed
    dry["now"] = True
    now, deadlines = start + Config().tcp_delayed_ack, []
    for _ in range(4):
        now = server.poll(now) or now
        deadlines.append(now)
    # Each answer a retry interval later, not the same moment over and over.
    assert all(later - earlier == pytest.approx(Config().tx_retry_interval) for earlier, later in zip(deadlines, deadlines[1:]))
    dry["now"] = False
    server.poll(now)
    assert len(server.wire) == 1


def test_a_new_connection_on_a_flow_whose_last_one_waited_is_retried_too() -> None:
    dry = {"now": True}
    client = App(config("client"), Pool(None, dry=lambda now: dry["now"]))
    client.net.connect(FLOW, 0.0)  # its SYN finds no buffer
    client.net.abort(FLOW, 0.0)
    client.net.connect(FLOW, 0.0)  # the same flow again: this SYN finds none either
    dry["now"] = False
    client.poll(0.002)
    assert len(client.wire) == 1 and client.net.stack.stats.tcp_retransmits == 0


def test_a_fast_retransmit_without_a_buffer_goes_at_the_next_call_not_at_the_rto() -> None:
    dry = {"now": False}
    # Counted duplicates (RFC 5827 early retransmit) start recovery on an ACK; RACK would
    # wait a reordering window first.
    client = App(config("client", tcp_loss_detection="rfc6675"), Pool(None, dry=lambda now: dry["now"]))
    server = App(config("server"))
    connected(client, server)
    stack = client.net.stack
    client.send(FLOW, b"warm")  # an RTT sample, and the server's window settled
    run(client, server, lambda: bytes(server.received.get(SERVED, b"")) == b"warm" and not stack.flow_info(FLOW).bytes_in_flight)
    mss = stack.flow_info(FLOW).mss
    start = client.now
    client.send(FLOW, bytes(3 * mss))
    _, second, third = client.wire  # the first is lost
    client.wire.clear()
    server.rx(second, start)
    server.rx(third, start)
    first_dupack, second_dupack = server.wire
    server.wire.clear()
    client.rx(first_dupack, start + 0.001)
    dry["now"] = True
    client.rx(second_dupack, start + 0.001)  # early retransmit (RFC 5827): no buffer
    assert client.wire == [] and stack.stats.tcp_fast_recoveries == 1
    dry["now"] = False
    client.poll(start + 0.003)
    [resent] = client.wire
    assert stack.stats.tcp_timeouts == 0 and stack.stats.tcp_retransmits == 1
    run(client, server, lambda: len(server.received.get(SERVED, b"")) == 4 + 3 * mss)


def test_a_pool_empty_for_50_ms_at_a_time_loses_nothing_and_retransmits_nothing() -> None:
    # Dry for the first 50 ms of every 100 ms: both the echo's data and its ACKs wait.
    pool = Pool(None, dry=lambda now: now % 0.1 < 0.05)
    client, server, took = echo_exchange(4 << 20, pool, latency=0.001)
    stats = server.net.stack.stats
    assert pool.misses > 10 and stats.tx_buffer_unavailable == pool.misses
    assert stats.tcp_retransmits == 0 and stats.tcp_timeouts == 0 and stats.dropped == 0
    assert client.net.stack.stats.tcp_retransmits == 0 and client.net.stack.stats.tcp_timeouts == 0


# -- 3. the end of a flow is signalled ------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        # request, FIN, then RST: the proxy's upstream must go at the reset.
        ("fin-then-rst", [("rx", b"request"), ("rx", None), ("closed", CloseReason.RESET)]),
        ("rst", [("rx", b"request"), ("closed", CloseReason.RESET)]),
        ("fin-both-ways", [("rx", b"request"), ("rx", None), ("closed", CloseReason.CLOSED)]),
        ("server-aborts", [("rx", b"request"), ("closed", CloseReason.ABORTED)]),
    ],
)
def test_every_end_of_a_flow_reaches_l4_closed_with_its_reason(ending: str, expected: list[tuple[object, ...]]) -> None:
    client = App(config("client"))
    server = App(config("server"))
    connected(client, server)
    client.send(FLOW, b"request")
    run(client, server, lambda: SERVED in server.received)
    if ending == "fin-then-rst":
        client.net.close(FLOW, client.now)
        run(client, server, lambda: ("rx", SERVED, None) in server.trace.calls)
        client.net.abort(FLOW, client.now)
    elif ending == "rst":
        client.net.abort(FLOW, client.now)
    elif ending == "fin-both-ways":
        client.net.close(FLOW, client.now)
        run(client, server, lambda: ("rx", SERVED, None) in server.trace.calls)
        server.net.close(SERVED, server.now)
    else:
        server.net.abort(SERVED, server.now)
    run(client, server, lambda: not server.net.stack.flows())
    assert server.trace.of(SERVED) == [("opened",), *expected]


@pytest.mark.parametrize("ending", ["fin-then-rst", "rst", "fin-both-ways"])
def test_without_l4_closed_a_flow_still_ends_with_one_l4_rx_none(ending: str) -> None:
    """Code written for l3l4kit's four callbacks hears the end of every flow once."""
    client = App(config("client"))
    server = LegacyApp(config("server"))
    connected(client, server)
    client.send(FLOW, b"request", then_close=ending != "rst")
    run(client, server, lambda: [call[2] for call in server.trace.calls] == (
        [b"request"] if ending == "rst" else [b"request", None]))
    if ending == "fin-both-ways":
        server.net.close(SERVED, server.now)
    else:
        client.net.abort(FLOW, client.now)
    run(client, server, lambda: not server.net.stack.flows() and not client.net.stack.flows())
    assert [call[2] for call in server.trace.calls] == [b"request", None]


def test_udp_flows_end_with_l4_closed_idle() -> None:
    client = App(config("client"))
    server = App(config("server", udp_idle_timeout=5.0))
    client.net.connect(UDP_FLOW, 0.0)
    client.net.l4_tx(UDP_FLOW, b"query", 0.0)
    run(client, server, lambda: UDP_FLOW.reversed() in server.received)
    assert server.poll(server.now + 5.0) is None
    assert server.trace.of(UDP_FLOW.reversed()) == [("opened",), ("rx", b"query"), ("closed", CloseReason.IDLE)]


# -- 4. Writable is delivered ----------------------------------------------------------


def test_l4_writable_comes_when_the_stack_wide_budget_frees() -> None:
    client = App(config("client"))
    server = App(config("server", max_tcp_buffer_bytes=20_000, tcp_send_buffer_min=0))
    other = Flow(Proto.TCP, ip_address("198.51.100.8"), 40001, ip_address("203.0.113.81"), 7)
    connected(client, server)
    connected(client, server, other)
    # The first flow takes the whole budget; the second gets nothing and has nothing
    # in flight: no packet of its flow will come to retry after.
    server.send(SERVED, pattern(20_000))
    server.send(other.reversed(), b"z" * 5000)
    assert server.pending[other.reversed()] == b"z" * 5000
    run(client, server, lambda: len(client.received.get(other, b"")) == 5000)
    assert ("writable", other.reversed()) in server.trace.calls


def test_the_seeds_retry_after_l3_rx_pattern_works_with_the_budget_spent() -> None:
    """``tcp_send_buffer_min``: a flow with nothing queued is never refused outright,
    so its data leaves and its ACK brings the ``l3_rx`` the legacy app retries after."""
    client = App(config("client"))
    server = LegacyApp(config("server", max_tcp_buffer_bytes=20_000))
    other = Flow(Proto.TCP, ip_address("198.51.100.8"), 40001, ip_address("203.0.113.81"), 7)
    connected(client, server)
    connected(client, server, other)
    server.send(SERVED, pattern(20_000))
    server.send(other.reversed(), b"z" * 50_000)
    assert 0 < len(server.pending[other.reversed()]) < 50_000
    run(client, server, lambda: len(client.received.get(other, b"")) == 50_000)


def test_data_in_the_call_that_ends_the_flow_can_still_be_consumed() -> None:
    """We closed first; the peer's last data and its FIN (the FIN overtook the data)
    complete in one call: l4_rx gets the data while the flow is already in TIME_WAIT
    (its l4_closed comes next), and ``consumed`` for it, as a proxy does, must not fail."""
    consumed: list[int] = []

    class Consuming(App):
        def l4_rx(self, flow: Flow, data: bytes | None) -> None:
            super().l4_rx(flow, data)
            if data:
                self.net.consumed(flow, len(data), self.now)
                consumed.append(len(data))

    client = App(config("client"))
    server = Consuming(config("server", rx_manual_consume=True))
    connected(client, server)
    server.net.close(SERVED, server.now)
    run(client, server, lambda: ("rx", FLOW, None) in client.trace.calls)
    client.send(FLOW, b"last words", then_close=True)
    data, fin = client.wire
    client.wire.clear()
    server.rx(fin, server.now)  # held beyond the hole; then one call brings it all
    server.rx(data, server.now)
    assert consumed == [10]
    assert server.trace.of(SERVED)[-2:] == [("rx", None), ("closed", CloseReason.CLOSED)]


# -- callbacks that raise, and misuse -------------------------------------------------


def test_an_l3_tx_that_raises_propagates_and_the_stack_recovers() -> None:
    failures = {"left": 0}

    class Flaky(App):
        def l3_tx(self, packet: bytearray, length: int) -> None:
            if failures["left"]:
                failures["left"] -= 1
                raise OSError("device busy")
            super().l3_tx(packet, length)

    client = App(config("client"))
    server = Flaky(config("server"))
    connected(client, server)
    failures["left"] = 1
    # l4_tx took the bytes: raising now would have them offered again. The error of
    # their packet comes from the next call.
    assert server.net.l4_tx(SERVED, b"lost once", server.now) == 9
    assert server.net.stack.stats.drops[DropReason.TX_CALLBACK_FAILED] == 1
    with pytest.raises(OSError, match="device busy"):
        server.poll(server.now)
    # The next call works, and TCP resends what the failed packet carried, once.
    run(client, server, lambda: bytes(client.received.get(FLOW, b"")) == b"lost once")
    assert server.net.stack.stats.tcp_retransmits == 1
    assert server.net.stack.stats.tx_packets == server.pool.lent - 1  # the failed one is not counted


def test_an_l4_tx_that_took_nothing_raises_at_once() -> None:
    app = OneArgument(20)  # every view too short: the datagram cannot be written
    app.net.connect(UDP_FLOW, 0.0)
    with pytest.raises(TxBufferError):
        app.net.l4_tx(UDP_FLOW, b"hello", 0.0)
    app.view_size = None
    app.net.l4_poll(0.0)  # nothing was left over to raise


def test_an_l4_rx_that_raises_propagates_after_every_other_callback() -> None:
    class Crashing(App):
        def l4_rx(self, flow: Flow, data: bytes | None) -> None:
            super().l4_rx(flow, data)
            if data is not None:
                raise RuntimeError("application bug")

    client = App(config("client"))
    server = Crashing(config("server"))
    client.net.connect(FLOW, 0.0)
    client.send(FLOW, b"data", then_close=True)
    [syn] = client.wire
    client.wire.clear()
    server.rx(syn, 0.0)
    client.rx(server.wire.pop(), 0.001)
    # The FIN overtakes the data: the data's l3_rx then delivers both.
    data, fin = client.wire
    server.rx(fin, 0.002)
    assert server.trace.calls == [("opened", SERVED)]
    with pytest.raises(RuntimeError, match="application bug"):
        server.rx(data, 0.002)
    assert server.trace.calls[1:] == [("rx", SERVED, b"data"), ("rx", SERVED, None)]  # the FIN still came
    assert server.net.l4_tx(SERVED, b"still works", 0.003) == 11


def test_a_view_longer_than_the_packet_is_an_mbuf_and_l3_tx_is_told_the_length() -> None:
    client = App(config("client"))
    server = App(config("server"), Pool(4, size=9000))  # jumbo buffers for 1500-byte packets
    connected(client, server)
    server.send(SERVED, b"m" * 3000)
    run(client, server, lambda: bytes(client.received.get(FLOW, b"")) == b"m" * 3000)


class OneArgument:
    """An l3l4kit-style application whose ``l3_tx`` takes the packet alone."""

    def __init__(self, view_size: int | None) -> None:
        self.view_size = view_size
        self.sent: list[bytes] = []
        self.net: CallbackStack[bytearray] = CallbackStack(self, config("one"))

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        pass

    def l3_tx(self, packet: bytearray) -> None:
        self.sent.append(bytes(packet))

    def l3_tx_buffer(self, size: int) -> bytearray | None:
        return bytearray(size if self.view_size is None else self.view_size)

    def l3_tx_buffer_mut(self, buffer: bytearray) -> memoryview:
        return memoryview(buffer)


@pytest.mark.parametrize(
    ("view_size", "message"),
    [
        (20, r"l3_tx_buffer_mut gave 20 bytes for a 33-byte packet$"),
        (2048, r"gave 2048 bytes for a 33-byte packet; for longer buffers take the length: l3_tx\(packet, length\)"),
    ],
)
def test_a_view_of_the_wrong_size_raises_tx_buffer_error_naming_the_sizes(view_size: int, message: str) -> None:
    app = OneArgument(view_size)
    app.net.connect(UDP_FLOW, 0.0)
    with pytest.raises(TxBufferError, match=message):
        app.net.l4_tx(UDP_FLOW, b"hello", 0.0)
    assert app.sent == [] and app.net.stack.stats.drops[DropReason.TX_CALLBACK_FAILED] == 1
    app.view_size = None  # fixed: the next call works
    assert app.net.l4_tx(UDP_FLOW, b"hello", 0.0) == 5 and len(app.sent[0]) == 33


def test_l3_tx_is_told_the_length_only_when_it_asks_for_it() -> None:
    import functools
    from collections.abc import Callable

    from l3l4.callbacks import _takes_length

    def decorated(function: Callable[..., None]) -> Callable[..., None]:
        def wrapper(*args: object) -> None:
            function(*args)

        return wrapper

    def one(packet: bytearray) -> None: ...
    def two(packet: bytearray, length: int) -> None: ...
    def defaulted(packet: bytearray, flush: bool = True) -> None: ...

    assert _takes_length(two) and not _takes_length(one) and not _takes_length(defaulted)
    assert not _takes_length(decorated(two))  # no functools.wraps: the l3l4kit form
    assert _takes_length(functools.wraps(two)(decorated(two)))
    assert not _takes_length(print)


def test_l3_tx_may_not_call_back_into_the_stack() -> None:
    class Reentrant(OneArgument):
        def l3_tx(self, packet: bytearray) -> None:
            self.net.l4_tx(UDP_FLOW, b"again", 0.0)

    app = Reentrant(None)
    app.net.connect(UDP_FLOW, 0.0)
    assert app.net.l4_tx(UDP_FLOW, b"hello", 0.0) == 5  # taken (and lost): raised next
    with pytest.raises(ReentrantCallError):
        app.net.l4_poll(0.0)
