"""Two stacks wired back to back in memory, for benchmarks: packets cross at once, time
advances only when the caller says so, and every event is handed to a callback."""

from __future__ import annotations

from collections.abc import Callable

from l3l4 import Config, Event, Output, Stack

OnEvent = Callable[[Stack[bytearray], Event], "Output[bytearray] | None"]
"""Called with each event and the stack it came from; may return the Output of a call
it made on that stack (a reply), which is carried too."""


class Pair:
    """A client and a server stack; ``carry`` delivers output until the wire is quiet."""

    def __init__(self, on_event: OnEvent, **config: object) -> None:
        self.client: Stack[bytearray] = Stack(Config(secret=b"bench-client-000", **config))  # type: ignore[arg-type]
        self.server: Stack[bytearray] = Stack(Config(secret=b"bench-server-000", **config))  # type: ignore[arg-type]
        self.on_event = on_event
        self.now = 0.0

    def carry(self, sender: Stack[bytearray], out: Output[bytearray]) -> None:
        """Deliver ``out``'s packets (and everything they cause) and its events."""
        pending = [(sender, out)]
        while pending:
            origin, output = pending.pop()
            for event in output.events:
                reply = self.on_event(origin, event)
                if reply is not None:
                    pending.append((origin, reply))
            target = self.server if origin is self.client else self.client
            for packet in output.packets:
                pending.append((target, target.l3_rx(packet, self.now)))

    def tick(self, seconds: float) -> None:
        """Advance the clock and run both stacks' timers."""
        self.now += seconds
        for stack in (self.client, self.server):
            self.carry(stack, stack.l4_poll(self.now))
