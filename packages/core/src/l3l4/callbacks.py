"""The l3l4kit callback API, as a thin adapter over :class:`~l3l4.Stack`.

Packets go in with :meth:`CallbackStack.l3_rx`, data with :meth:`CallbackStack.l4_tx`,
time with :meth:`CallbackStack.l4_poll`; what comes out is handed to the application's
callbacks as it is produced. Outgoing packets are written straight into buffers the
application lends through ``l3_tx_buffer``: no intermediate copy.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from .buffers import ReadableBuffer
from .config import Config
from .events import DataReceived, EndOfStream, FlowClosed, Output
from .flow import Flow
from .stack import Stack

__all__ = ["Callbacks", "CallbackStack"]

B = TypeVar("B")


class Callbacks(Protocol[B]):
    """What an application implements to use :class:`CallbackStack`.

    ``B`` is the application's packet buffer type (a ``bytearray``, a slot of a ring, a
    DPDK mbuf wrapper...).
    """

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        """Data from the peer of ``flow``, in order; ``None`` once it will get no more
        (end of stream, or the flow closed)."""

    def l3_tx(self, packet: B) -> None:
        """Transmit a packet built in a buffer from :meth:`l3_tx_buffer`."""

    def l3_tx_buffer(self, size: int) -> B | None:
        """Lend a buffer for one outgoing packet of ``size`` bytes, or ``None`` if there
        is none free (TCP keeps the data queued; a UDP datagram is dropped and counted)."""

    def l3_tx_buffer_mut(self, buffer: B) -> memoryview:
        """A writable memoryview of exactly ``size`` bytes over a lent buffer."""


class CallbackStack(Generic[B]):
    """A :class:`~l3l4.Stack` driven through l3l4kit-style calls and callbacks.

    Callbacks may call back into the stack (an echo server's ``l4_rx`` may call
    ``l4_tx``): each call finishes its work before any callback runs.
    """

    __slots__ = ("stack", "_callbacks", "_ended")

    def __init__(self, callbacks: Callbacks[B], config: Config | None = None) -> None:
        self._callbacks = callbacks
        self.stack: Stack[B] = Stack(
            config, tx_buffer=callbacks.l3_tx_buffer, tx_buffer_view=callbacks.l3_tx_buffer_mut
        )
        """The stack underneath, for ``stats``, ``flows()`` and the calls not mirrored here."""
        self._ended: set[Flow] = set()

    def l3_rx(self, packet: ReadableBuffer, now: float) -> Flow | None:
        """Take one incoming packet; return the flow it belonged to, if any."""
        out = self.stack.l3_rx(packet, now)
        self._deliver(out)
        return out.flow

    def l4_tx(self, flow: Flow, data: ReadableBuffer, now: float) -> int:
        """Send data on ``flow``; return how many bytes were taken."""
        out = self.stack.l4_tx(flow, data, now)
        self._deliver(out)
        return out.accepted

    def l4_poll(self, now: float) -> float | None:
        """Run the timers due at ``now``; return when to call again (``None``: no timer)."""
        self._deliver(self.stack.l4_poll(now))
        return self.stack.next_deadline()

    def connect(self, flow: Flow, now: float) -> None:
        """Open ``flow`` from this side."""
        self._deliver(self.stack.connect(flow, now))

    def close(self, flow: Flow, now: float) -> None:
        """Close ``flow`` gracefully."""
        self._deliver(self.stack.close(flow, now))

    def abort(self, flow: Flow, now: float) -> None:
        """Abort ``flow``."""
        self._deliver(self.stack.abort(flow, now))

    def _deliver(self, out: Output[B]) -> None:
        callbacks = self._callbacks
        for packet in out.packets:
            callbacks.l3_tx(packet)
        for event in out.events:
            if isinstance(event, DataReceived):
                callbacks.l4_rx(event.flow, event.data)
            elif isinstance(event, EndOfStream):
                self._ended.add(event.flow)
                callbacks.l4_rx(event.flow, None)
            elif isinstance(event, FlowClosed):
                if event.flow in self._ended:
                    self._ended.discard(event.flow)
                else:
                    callbacks.l4_rx(event.flow, None)
