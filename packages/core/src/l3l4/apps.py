"""Two small applications any driver can run: ``Echo`` and ``Sink``.

A handler hears every event of a stack and acts through an :class:`Application`: an
``l3l4_tun.Loop``, an ``l3l4_pcap.Replay``, or anything else with the same few methods.
So the same handler serves a TUN device (``l3l4-tun echo``), records a session
(``l3l4-pcap record``) and replays a capture of it.
"""

from __future__ import annotations

from typing import Protocol

from l3l4 import (
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowClosed,
    FlowRequested,
    Proto,
    Stack,
    UnknownFlowError,
    Writable,
)

__all__ = ["Application", "Echo", "Handler", "Sink"]


class Application(Protocol):
    """What a handler may call: the stack, and the calls that transmit what it makes."""

    @property
    def stack(self) -> Stack[bytearray]: ...

    def send(self, flow: Flow, data: bytes | bytearray | memoryview) -> int: ...

    def close(self, flow: Flow) -> None: ...

    def accept(self, flow: Flow) -> None: ...

    def consumed(self, flow: Flow, count: int) -> None: ...


class Handler(Protocol):
    """Hears every event of the stack."""

    def on_event(self, app: Application, event: Event) -> None: ...


def _consume(app: Application, event: DataReceived) -> None:
    if event.flow.proto is Proto.TCP and app.stack.config.rx_manual_consume:
        try:
            app.consumed(event.flow, len(event.data))
        except UnknownFlowError:
            pass


class Sink:
    """Takes every connection and every byte, sends nothing, and closes each TCP
    connection once the peer has (the default application of a replay)."""

    def __init__(self) -> None:
        self.bytes_received = 0

    def on_event(self, app: Application, event: Event) -> None:
        if isinstance(event, DataReceived):
            self.bytes_received += len(event.data)
            _consume(app, event)
        elif isinstance(event, FlowRequested):
            app.accept(event.flow)
        elif isinstance(event, EndOfStream):
            try:
                app.close(event.flow)
            except UnknownFlowError:
                pass


class Echo:
    """Sends every byte back on the flow it came from, with backpressure (bytes the
    stack cannot take yet wait for ``Writable``); closes after the peer does."""

    def __init__(self) -> None:
        self.pending: dict[Flow, bytearray] = {}
        self.finishing: set[Flow] = set()
        self.bytes_echoed = 0

    def on_event(self, app: Application, event: Event) -> None:
        flow = event.flow
        if isinstance(event, DataReceived):
            _consume(app, event)
            if flow.proto is Proto.UDP:
                self.bytes_echoed += app.send(flow, event.data)
                return
            self.pending.setdefault(flow, bytearray()).extend(event.data)
            self._flush(app, flow)
        elif isinstance(event, FlowRequested):
            app.accept(flow)
        elif isinstance(event, Writable):
            self._flush(app, flow)
        elif isinstance(event, EndOfStream):
            self.finishing.add(flow)
            self._flush(app, flow)
        elif isinstance(event, FlowClosed):
            self.pending.pop(flow, None)
            self.finishing.discard(flow)

    def _flush(self, app: Application, flow: Flow) -> None:
        buffer = self.pending.get(flow)
        try:
            if buffer:
                taken = app.send(flow, buffer)
                self.bytes_echoed += taken
                del buffer[:taken]
            if flow in self.finishing and not buffer:
                self.finishing.discard(flow)
                self.pending.pop(flow, None)
                app.close(flow)
        except UnknownFlowError:  # reset meanwhile
            self.pending.pop(flow, None)
            self.finishing.discard(flow)
