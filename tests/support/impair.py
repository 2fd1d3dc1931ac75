"""An impairment layer between a TUN device and the stack: the reordering, duplication
and delay this kernel cannot add (it has no netem), from a seeded RNG, as the
in-memory link of ``support.link`` impairs packets."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence

from l3l4 import Stack
from l3l4_tun import Handler, Loop, TunDevice

from support.link import Impairment, impair


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
        arrivals = impair(self.impairment, self._rng, packet, now)
        self.duplicated += len(arrivals) > 1
        for at, copy in arrivals:
            self.reordered += at > now + self.impairment.delay
            self._order += 1
            heapq.heappush(self._held, (at, self._order, inbound, copy, trusted))

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
