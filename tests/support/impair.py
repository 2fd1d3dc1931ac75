"""An impairment layer between a TUN device and the stack: the reordering, duplication
and delay this kernel cannot add (it has no netem), from a seeded RNG."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass

from l3l4 import Stack
from l3l4_tun import Handler, Loop, TunDevice


@dataclass(frozen=True)
class Impairment:
    """What happens to each packet, both ways. Probabilities in [0, 1]; seconds."""

    delay: float = 0.002
    reorder: float = 0.0
    """Chance a packet is held ``reorder_delay`` longer, so later ones overtake it."""
    reorder_delay: float = 0.003
    duplicate: float = 0.0


class ImpairedLoop(Loop):
    """A :class:`~l3l4_tun.Loop` whose packets wait in a queue on the way in and out."""

    def __init__(
        self,
        stack: Stack[bytearray],
        devices: Sequence[TunDevice],
        handler: Handler,
        impairment: Impairment,
        seed: int,
    ) -> None:
        super().__init__(stack, devices, handler)
        self.impairment = impairment
        self._rng = random.Random(seed)
        self._held: list[tuple[float, int, bool, bytes, bool]] = []
        self._order = 0
        self.reordered = 0
        self.duplicated = 0

    def _hold(self, packet: bytes, inbound: bool, trusted: bool, now: float) -> None:
        imp, rng = self.impairment, self._rng
        copies = 1
        if rng.random() < imp.duplicate:
            copies = 2
            self.duplicated += 1
        for _ in range(copies):
            at = now + imp.delay
            if rng.random() < imp.reorder:
                at += imp.reorder_delay
                self.reordered += 1
            self._order += 1
            heapq.heappush(self._held, (at, self._order, inbound, packet, trusted))

    def receive(self, packet: bytes | memoryview, trusted: bool, now: float) -> None:
        self._hold(bytes(packet), True, trusted, now)

    def transmit(self, packet: bytearray, now: float) -> None:
        self._hold(bytes(packet), False, False, now)

    def next_wakeup(self) -> float | None:
        deadline = super().next_wakeup()
        if self._held and (deadline is None or self._held[0][0] < deadline):
            return self._held[0][0]
        return deadline

    def wakeup(self, now: float) -> None:
        held = self._held
        while held and held[0][0] <= now:
            _, _, inbound, packet, trusted = heapq.heappop(held)
            if inbound:
                super().receive(packet, trusted, now)
            else:
                super().transmit(bytearray(packet), now)
        deadline = self.stack.next_deadline()
        if deadline is not None and deadline <= now:
            super().wakeup(now)
