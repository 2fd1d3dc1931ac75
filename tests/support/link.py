"""Two stacks wired back to back through an impaired in-memory link, with time driven
by the test: loss, duplication, reordering, delay and corruption from a seeded RNG."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from l3l4 import Event, Stack

Side = str  # "a" or "b"
Handler = Callable[[Side, Event, "Link"], None]


@dataclass
class Impairment:
    """What the link does to each packet, per direction. Probabilities in [0, 1]."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    """Chance a packet is held back by ``reorder_delay`` extra seconds."""
    corrupt: float = 0.0
    """Chance one byte of the packet is flipped (checksums must catch it)."""
    delay: float = 0.005
    """One-way delay in seconds."""
    reorder_delay: float = 0.004
    drop_if: Callable[[bytes], bool] | None = None
    """Drop every packet this returns True for (deterministic losses)."""


def impair(imp: Impairment, rng: random.Random, data: bytes, now: float) -> list[tuple[float, bytes]]:
    """What becomes of one packet sent at ``now``: each copy that arrives, with when."""
    if imp.drop_if is not None and imp.drop_if(data):
        return []
    if rng.random() < imp.loss:
        return []
    arrivals = []
    for _ in range(2 if rng.random() < imp.duplicate else 1):
        when = now + imp.delay
        if rng.random() < imp.reorder:
            when += imp.reorder_delay
        payload = data
        if rng.random() < imp.corrupt:
            mutable = bytearray(data)
            mutable[rng.randrange(len(mutable))] ^= 1 << rng.randrange(8)
            payload = bytes(mutable)
        arrivals.append((when, payload))
    return arrivals


@dataclass
class Link:
    a: Stack[bytearray]
    b: Stack[bytearray]
    impairment: Impairment = field(default_factory=Impairment)
    seed: int = 0
    now: float = 0.0
    handler: Handler | None = None
    events: dict[Side, list[Event]] = field(default_factory=lambda: {"a": [], "b": []})
    wire: list[tuple[Side, bytes]] = field(default_factory=list)
    """Every packet put on the wire (before impairment), with its sender."""
    record: bool = False

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._queue: list[tuple[float, int, Side, bytes]] = []
        self._order = 0

    def stack(self, side: Side) -> Stack[bytearray]:
        return self.a if side == "a" else self.b

    def send(self, sender: Side, packets: list[bytearray]) -> None:
        """Put packets from ``sender`` on the wire toward the other side."""
        target = "b" if sender == "a" else "a"
        imp = self.impairment
        rng = self._rng
        for packet in packets:
            data = bytes(packet)
            if self.record:
                self.wire.append((sender, data))
            for when, payload in impair(imp, rng, data, self.now):
                self._order += 1
                heapq.heappush(self._queue, (when, self._order, target, payload))

    def deliver(self, side: Side, output_events: list[Event], packets: list[bytearray]) -> None:
        """Record what a call produced on ``side`` and send its packets."""
        self.send(side, packets)
        for event in output_events:
            self.events[side].append(event)
            if self.handler is not None:
                self.handler(side, event, self)

    def call(self, side: Side, result: object) -> None:
        """Take the Output of a call made by the test on ``side``."""
        from l3l4 import Output

        assert isinstance(result, Output)
        self.deliver(side, result.events, result.packets)

    def step(self, horizon: float = float("inf")) -> bool:
        """Advance to the next delivery or timer, if it comes by ``horizon``; return
        False when nothing is left before then."""
        deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
        next_timer = min(deadlines) if deadlines else None
        next_packet = self._queue[0][0] if self._queue else None
        if (next_packet is None or next_packet > horizon) and (next_timer is None or next_timer > horizon):
            return False
        if next_packet is not None and (next_timer is None or next_packet <= next_timer):
            when, _, target, payload = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            out = self.stack(target).l3_rx(payload, self.now)
            self.deliver(target, out.events, out.packets)
        else:
            assert next_timer is not None
            self.now = max(self.now, next_timer)
            for side in ("a", "b"):
                out = self.stack(side).l4_poll(self.now)
                self.deliver(side, out.events, out.packets)
        return True

    def run(self, until: Callable[[], bool] | None = None, limit: float = 3600.0) -> None:
        """Step until ``until()`` holds or nothing is left within ``limit`` seconds;
        the clock never passes ``now + limit``."""
        horizon = self.now + limit
        while until is None or not until():
            if not self.step(horizon):
                if until is None:
                    self.now = max(self.now, horizon) if self._queue or self._pending_timers() else self.now
                break

    def _pending_timers(self) -> bool:
        return self.a.next_deadline() is not None or self.b.next_deadline() is not None
