"""Two small applications any driver can run: ``Echo`` and ``Sink``.

A handler hears every event of a stack and acts through an :class:`Application`: an
``l3l4_tun.Loop``, an ``l3l4_pcap.Replay``, or anything else with the same few methods.
So the same handler serves a TUN device (``l3l4-tun echo``), records a session
(``l3l4-pcap record``) and replays a capture of it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from l3l4 import (
    Config,
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


class Sink:
    """Takes every connection and every byte, sends nothing, and closes each TCP
    connection once the peer has (the default application of a replay)."""

    def __init__(self) -> None:
        self.bytes_received = 0

    def on_event(self, app: Application, event: Event) -> None:
        if isinstance(event, DataReceived):
            self.bytes_received += len(event.data)
            if event.flow.proto is Proto.TCP and app.stack.config.rx_manual_consume:
                try:
                    app.consumed(event.flow, len(event.data))
                except UnknownFlowError:
                    pass
        elif isinstance(event, FlowRequested):
            app.accept(event.flow)
        elif isinstance(event, EndOfStream):
            try:
                app.close(event.flow)
            except UnknownFlowError:
                pass


class Echo:
    """Sends every byte back on the flow it came from; closes after the peer does.

    Run its stack with ``Config(rx_manual_consume=True)`` (:meth:`config`) for
    backpressure: a TCP byte counts as consumed only once ``send`` has taken its echo,
    so a client that sends without reading fills our send buffer, then our receive
    window, which closes (a zero window). ``pending`` then never holds more than
    ``Config.tcp_receive_buffer`` bytes per flow, however much the client tries to send.
    Without manual consume the stack reopens the window as soon as bytes arrive and
    ``pending`` grows for as long as the client does not read. Bytes the stack cannot
    take yet wait in ``pending`` for ``Writable``.
    """

    def __init__(self) -> None:
        self.pending: dict[Flow, bytearray] = {}
        """Per TCP flow, bytes received and not yet taken by ``send``."""
        self.finishing: set[Flow] = set()
        self.bytes_echoed = 0

    @staticmethod
    def config(base: Config | None = None) -> Config:
        """``base`` (default: the default :class:`~l3l4.Config`) with manual consume,
        which Echo's backpressure needs."""
        return replace(base or Config(), rx_manual_consume=True)

    def on_event(self, app: Application, event: Event) -> None:
        flow = event.flow
        if isinstance(event, DataReceived):
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
        """Send what is pending; release to the receive window only what was taken."""
        buffer = self.pending.get(flow)
        try:
            if buffer:
                taken = app.send(flow, buffer)
                self.bytes_echoed += taken
                del buffer[:taken]
                if taken and app.stack.config.rx_manual_consume:
                    app.consumed(flow, taken)
            if flow in self.finishing and not buffer:
                self.finishing.discard(flow)
                self.pending.pop(flow, None)
                app.close(flow)
        except UnknownFlowError:  # reset meanwhile
            self.pending.pop(flow, None)
            self.finishing.discard(flow)
