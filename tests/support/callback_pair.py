"""Applications on :class:`l3l4.CallbackStack`, as an l3l4kit user writes them, and a
simulated wire that joins two of them with a delay, in simulated time.

``Pool`` is the DPDK-style buffer pool the callback API was made for: ``l3_tx_buffer``
takes a buffer from it, ``l3_tx`` transmits the packet and puts the buffer back.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address

from l3l4 import CallbackStack, CloseReason, Config, Flow, Proto

ECHO_FLOW = Flow(Proto.TCP, ip_address("198.51.100.7"), 40000, ip_address("203.0.113.80"), 7)


class Pool:
    """``count`` buffers of ``size`` bytes (``None``: a new buffer for every packet);
    ``dry(now)`` says when it lends nothing, as a device ring that is full."""

    def __init__(self, count: int | None, size: int = 2048, dry: Callable[[float], bool] | None = None) -> None:
        self.free = [bytearray(size) for _ in range(count or 0)]
        self.unlimited = count is None
        self.size = size
        self.dry = dry
        self.now = 0.0
        self.misses = 0
        self.lent = 0

    def take(self, size: int) -> bytearray | None:
        if (self.dry is not None and self.dry(self.now)) or size > self.size or not (self.free or self.unlimited):
            self.misses += 1
            return None
        self.lent += 1
        return self.free.pop() if self.free else bytearray(self.size)

    def give(self, buffer: bytearray) -> None:
        if not self.unlimited:
            self.free.append(buffer)


@dataclass
class Trace:
    """Every callback in the order it came: ``("rx", flow, data)``, ``("closed", flow,
    reason)``..."""

    calls: list[tuple[object, ...]] = field(default_factory=list)

    def of(self, flow: Flow) -> list[tuple[object, ...]]:
        """The calls naming ``flow``, without it: ``[("rx", b"..."), ("rx", None)]``."""
        return [(call[0], *call[2:]) for call in self.calls if len(call) > 1 and call[1] == flow]


class LegacyApp:
    """The four callbacks l3l4kit has, and nothing more: packets out through a pool into
    ``wire``; data in is kept (and echoed with ``echo``). Data to send waits in a
    per-flow queue, ``pending``, retried after every ``l3_rx`` for that flow (the
    seed's pattern); a flow in ``closing`` is closed once its queue is empty (an echo
    server closes after the peer's FIN)."""

    def __init__(self, config: Config | None = None, pool: Pool | None = None, *, echo: bool = False) -> None:
        self.pool = pool if pool is not None else Pool(None)
        self.wire: list[bytes] = []
        self.trace = Trace()
        self.received: dict[Flow, bytearray] = {}
        self.pending: dict[Flow, bytearray] = {}
        self.closing: set[Flow] = set()
        self.echo = echo
        self.now = 0.0
        self.net: CallbackStack[bytearray] = CallbackStack(self, config)

    # -- the l3l4kit callbacks ---------------------------------------------------------

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        self.trace.calls.append(("rx", flow, data))
        if data is None:
            if self.echo:
                self.closing.add(flow)
        else:
            self.received.setdefault(flow, bytearray()).extend(data)
            if self.echo:
                self.pending.setdefault(flow, bytearray()).extend(data)
        self.flush(flow)

    def l3_tx(self, packet: bytearray, length: int) -> None:
        self.wire.append(bytes(memoryview(packet)[:length]))
        self.pool.give(packet)

    def l3_tx_buffer(self, size: int) -> bytearray | None:
        return self.pool.take(size)

    def l3_tx_buffer_mut(self, buffer: bytearray) -> memoryview:
        return memoryview(buffer)

    # -- the application ---------------------------------------------------------------

    def rx(self, packet: bytes, now: float) -> None:
        self.now = self.pool.now = now
        flow = self.net.l3_rx(packet, now)
        if flow is not None:
            self.flush(flow)

    def poll(self, now: float) -> float | None:
        self.now = self.pool.now = now
        return self.net.l4_poll(now)

    def send(self, flow: Flow, data: bytes, *, then_close: bool = False) -> None:
        """Queue ``data`` for ``flow`` and send what may go now."""
        self.pending.setdefault(flow, bytearray()).extend(data)
        if then_close:
            self.closing.add(flow)
        self.flush(flow)

    def flush(self, flow: Flow) -> None:
        """Send what waits for ``flow``; close it once all is sent if it is closing."""
        pending = self.pending.get(flow)
        if pending and flow in self.net.stack.flows():
            taken = self.net.l4_tx(flow, pending, self.now)
            del pending[:taken]
        if flow in self.closing and not pending and self._may_close(flow):
            self.closing.discard(flow)
            self.net.close(flow, self.now)


    def _may_close(self, flow: Flow) -> bool:
        """Open, and past SYN-SENT (where a close would abandon the connection, queued
        data and all: RFC 9293 §3.10.4)."""
        stack = self.net.stack
        return flow in stack.flows() and (flow.proto is not Proto.TCP or stack.flow_info(flow).state != "SYN_SENT")


class App(LegacyApp):
    """With the optional callbacks too: ``l4_opened``, ``l4_writable``, ``l4_closed``."""

    def l4_opened(self, flow: Flow) -> None:
        self.trace.calls.append(("opened", flow))

    def l4_writable(self, flow: Flow) -> None:
        self.trace.calls.append(("writable", flow))
        self.flush(flow)

    def l4_closed(self, flow: Flow, reason: CloseReason) -> None:
        self.trace.calls.append(("closed", flow, reason))
        self.pending.pop(flow, None)
        self.closing.discard(flow)


def run(a: LegacyApp, b: LegacyApp, done: Callable[[], bool], *, latency: float = 0.0005, limit: float = 120.0) -> float:
    """Carry packets between ``a`` and ``b`` (each way ``latency`` seconds late) and
    run their timers, in simulated time from their clock, until ``done()``; return the
    simulated time it took. Fails if ``limit`` simulated seconds pass first."""
    start = now = max(a.now, b.now)
    in_flight: list[tuple[float, int, int, bytes]] = []
    count = 0
    apps = (a, b)
    deadlines: list[float | None] = [a.poll(now), b.poll(now)]
    stuck = 0  # rounds in a row in which neither time nor a packet moved
    while True:
        for index, app in enumerate(apps):
            for packet in app.wire:
                heapq.heappush(in_flight, (now + latency, count, 1 - index, packet))
                count += 1
            app.wire.clear()
        if done():
            return now - start
        times = [t for t in (*deadlines, in_flight[0][0] if in_flight else None) if t is not None]
        assert times, "nothing left to happen, and not done"
        stuck = stuck + 1 if min(times) <= now and not (in_flight and in_flight[0][0] <= now) else 0
        assert stuck < 1000, f"a deadline at {now} that never moves on: a busy loop"
        now = max(now, min(times))
        assert now - start <= limit, f"not done within {limit} simulated seconds"
        while in_flight and in_flight[0][0] <= now:
            _, _, target, packet = heapq.heappop(in_flight)
            apps[target].rx(packet, now)
        deadlines = [app.poll(now) for app in apps]


def echo_exchange(size: int, server_pool: Pool, *, latency: float = 0.0005) -> tuple[App, App, float]:
    """The client sends ``size`` seeded random bytes and a FIN to an echo server whose
    buffers come from ``server_pool``, over :func:`run`'s wire; returns both apps and
    the simulated time until the client has it all back, checked, and both flows are
    gone."""
    client = App(Config(secret=b"echo-client-0000"))
    server = App(Config(secret=b"echo-server-0000"), server_pool, echo=True)
    data = random.Random(size).randbytes(size)
    client.net.connect(ECHO_FLOW, 0.0)
    client.send(ECHO_FLOW, data, then_close=True)
    took = run(client, server, lambda: not client.net.stack.flows() and not server.net.stack.flows(), latency=latency)
    assert hashlib.sha256(client.received[ECHO_FLOW]).digest() == hashlib.sha256(data).digest()
    assert server.received[ECHO_FLOW.reversed()] == data
    return client, server, took
