"""Two stacks exchanging data both ways over a :class:`~support.link.Link`: each side
sends its payload (waiting for ``Writable`` when ``l4_tx`` takes less), then closes;
each keeps what it received and how its flow ended."""

from __future__ import annotations

from l3l4 import CloseReason, DataReceived, EndOfStream, Event, Flow, FlowClosed, FlowOpened, Writable

from .link import Link, Side

__all__ = ["Exchange"]


class Exchange:
    """Install on ``link`` (it becomes the link's handler), then let side ``a`` connect."""

    def __init__(self, link: Link, payloads: dict[Side, bytes]) -> None:
        self.link = link
        self.payloads = payloads
        self.offset: dict[Side, int] = {"a": 0, "b": 0}
        self.received: dict[Side, bytearray] = {"a": bytearray(), "b": bytearray()}
        self.opened: dict[Side, Flow] = {}
        self.ended: set[Side] = set()
        self.closing: set[Side] = set()
        self.closed: dict[Side, CloseReason] = {}
        link.handler = self.on_event

    def on_event(self, side: Side, event: Event, link: Link) -> None:
        if isinstance(event, FlowOpened):
            assert side not in self.opened, f"{side} opened twice"
            self.opened[side] = event.flow
            self.push(side)
        elif isinstance(event, Writable):
            self.push(side)
        elif isinstance(event, DataReceived):
            assert side in self.opened and side not in self.ended
            self.received[side] += event.data
        elif isinstance(event, EndOfStream):
            assert side not in self.ended
            self.ended.add(side)
        elif isinstance(event, FlowClosed):
            assert side not in self.closed, f"{side} closed twice"
            self.closed[side] = event.reason

    def push(self, side: Side) -> None:
        """Send what the stack takes of the rest of ``side``'s payload; close after it."""
        link, flow, data = self.link, self.opened[side], self.payloads[side]
        stack = link.stack(side)
        if side in self.closing or side in self.closed:
            return
        while self.offset[side] < len(data):
            out = stack.l4_tx(flow, data[self.offset[side] : self.offset[side] + 65536], link.now)
            self.offset[side] += out.accepted
            link.deliver(side, out.events, out.packets)
            if out.accepted == 0:
                return
        self.closing.add(side)
        link.call(side, stack.close(flow, link.now))

    @property
    def done(self) -> bool:
        return len(self.closed) == 2

    def intact(self) -> bool:
        """Each side received exactly what the other sent."""
        return bytes(self.received["a"]) == self.payloads["b"] and bytes(self.received["b"]) == self.payloads["a"]
