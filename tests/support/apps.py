"""Small applications for the TUN loop in tests: a client that sends a payload and
collects the answer."""

from __future__ import annotations

from l3l4 import (
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowClosed,
    FlowOpened,
    Writable,
)
from l3l4_tun import Loop


class Sender:
    """On each opened flow it sends ``payload`` (waiting for ``Writable`` when the send
    buffer is full), then its FIN; it keeps what comes back until the flow closes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.offset: dict[Flow, int] = {}
        self.received: dict[Flow, bytearray] = {}
        self.closed: dict[Flow, FlowClosed] = {}
        self.ended: set[Flow] = set()

    def on_event(self, loop: Loop, event: Event) -> None:
        flow = event.flow
        if isinstance(event, FlowOpened):
            self.offset[flow] = 0
            self.received[flow] = bytearray()
            self._push(loop, flow)
        elif isinstance(event, Writable):
            self._push(loop, flow)
        elif isinstance(event, DataReceived):
            self.received[flow] += event.data
        elif isinstance(event, EndOfStream):
            self.ended.add(flow)
        elif isinstance(event, FlowClosed):
            self.closed[flow] = event

    def _push(self, loop: Loop, flow: Flow) -> None:
        offset = self.offset[flow]
        if offset >= len(self.payload):
            return
        offset += loop.send(flow, memoryview(self.payload)[offset:])
        self.offset[flow] = offset
        if offset == len(self.payload):
            loop.close(flow)
