"""Small applications for the TUN loop in tests: a client that sends a payload and
collects the answer, and an upload to a kernel server checked end to end."""

from __future__ import annotations

import hashlib
import subprocess

from l3l4 import (
    CloseReason,
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowClosed,
    FlowOpened,
    Writable,
)
from l3l4_tun import Loop
from l3l4_tun.testing import serve_until_exit


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


def upload_to_hash_server(
    loop: Loop, sender: Sender, receiver: subprocess.Popen[bytes], flow: Flow, payload: bytes
) -> None:
    """Open ``flow`` from l3l4 to a kernel ``hash_server`` (``support.clients``) and let
    ``sender`` upload ``payload``; check that the server saw every byte (its SHA-256 came
    back, then its 16-byte reply) and that the flow closed in good order."""
    loop.connect(flow)
    serve_until_exit(loop, [receiver], 120.0)
    _, err = receiver.communicate()
    assert receiver.returncode == 0, err
    assert loop.run_until(lambda: flow in sender.closed, 30.0)
    assert bytes(sender.received[flow]) == hashlib.sha256(payload).digest() + hashlib.shake_256(b"reply").digest(16)
    assert sender.closed[flow] == FlowClosed(flow, CloseReason.CLOSED)
