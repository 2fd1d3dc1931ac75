"""The l3l4kit callback API, as a thin adapter over :class:`~l3l4.Stack`.

Packets go in with :meth:`CallbackStack.l3_rx`, data with :meth:`CallbackStack.l4_tx`,
time with :meth:`CallbackStack.l4_poll`. Outgoing packets are written straight into
buffers the application lends through ``l3_tx_buffer`` and handed to ``l3_tx`` one by
one as they are written, so ``l3_tx`` can put each buffer back in its pool before the
next is asked for. Data and the ends of flows reach the application's ``l4_*``
callbacks once the call has finished its work, so those may call back into the stack.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from .buffers import ReadableBuffer
from .config import Config
from .errors import ReentrantCallError, TxBufferError
from .events import CloseReason, DataReceived, EndOfStream, FlowClosed, FlowOpened, Output, Writable
from .flow import Flow
from .stack import Stack

__all__ = ["Callbacks", "CallbacksWithLength", "CallbackStack"]

B = TypeVar("B")


class Callbacks(Protocol[B]):
    """What an application implements to use :class:`CallbackStack`.

    ``B`` is the application's packet buffer type (a ``bytearray``, a slot of a ring, a
    DPDK mbuf wrapper...). Three more callbacks are optional, looked up by name:
    ``l4_opened(flow)``, ``l4_writable(flow)`` and ``l4_closed(flow, reason)`` (see
    :class:`CallbackStack`). ``l3_tx`` may take the packet's length too
    (:class:`CallbacksWithLength`).
    """

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        """Data from the peer of ``flow``, in order; ``None`` once it will send no more
        (its FIN; without ``l4_closed``, also when the flow ends without one)."""

    def l3_tx(self, packet: B) -> None:
        """Transmit a packet built in a buffer from :meth:`l3_tx_buffer`, now; the
        buffer is the application's again when this returns."""

    def l3_tx_buffer(self, size: int) -> B | None:
        """Lend a buffer for one outgoing packet of ``size`` bytes, or ``None`` if there
        is none free (TCP keeps the segment and sends it at the next call that gets a
        buffer; a UDP datagram is dropped and counted)."""

    def l3_tx_buffer_mut(self, buffer: B) -> memoryview:
        """A writable memoryview over a lent buffer: ``size`` bytes, or more if
        ``l3_tx`` takes the length."""


class CallbacksWithLength(Protocol[B]):
    """:class:`Callbacks` whose ``l3_tx`` is told each packet's length: then
    ``l3_tx_buffer_mut`` may give views longer than the packets (an mbuf, a ring slot
    of the device's MTU), and the packet is written at the start."""

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        """As :meth:`Callbacks.l4_rx`."""

    def l3_tx(self, packet: B, length: int) -> None:
        """Transmit the first ``length`` bytes of ``packet``, now."""

    def l3_tx_buffer(self, size: int) -> B | None:
        """As :meth:`Callbacks.l3_tx_buffer`."""

    def l3_tx_buffer_mut(self, buffer: B) -> memoryview:
        """A writable memoryview over a lent buffer: at least ``size`` bytes."""


def _takes_length(l3_tx: Callable[..., None]) -> bool:
    """Whether ``l3_tx`` has a second positional parameter without a default: the
    packet's length (:class:`CallbacksWithLength`). A ``*args`` wrapper, a parameter
    with a default or an unreadable signature mean the l3l4kit form, ``l3_tx(packet)``."""
    try:
        signature = inspect.signature(l3_tx)  # follows functools.wraps
    except (TypeError, ValueError):
        return False
    positional = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 and positional[1].default is inspect.Parameter.empty


class CallbackStack(Generic[B]):
    """A :class:`~l3l4.Stack` driven through l3l4kit-style calls and callbacks.

    Within one call (``l3_rx``, ``l4_tx``, ``l4_poll``, ``connect``, ``consumed``,
    ``close``, ``abort``), each packet is handed to ``l3_tx`` as soon as it is written; then come
    the ``l4_*`` callbacks, in the order things happened:

    - ``l4_opened(flow)`` (optional): a flow opened (a TCP handshake completed either
      way, a first UDP datagram, ``connect`` of a UDP flow).
    - ``l4_rx(flow, data)``: data, in order. ``l4_rx(flow, None)`` once at the peer's
      FIN: it sends no more, but the flow may still send (half-close).
    - ``l4_writable(flow)`` (optional): an ``l4_tx`` that took less than offered may
      be retried; room has opened (the flow's own buffer or the stack-wide budget).
    - ``l4_closed(flow, reason)`` (optional): the flow is gone (a
      :class:`~l3l4.CloseReason`); nothing more will name it. Without it, a flow that
      ends without a FIN gets ``l4_rx(flow, None)`` instead.

    These may call back into the stack (an echo server's ``l4_rx`` calls ``l4_tx``);
    ``l3_tx``, ``l3_tx_buffer`` and ``l3_tx_buffer_mut`` run in the middle of the
    stack's work and may not (:class:`~l3l4.ReentrantCallError`).

    If a callback raises, the call still finishes its work and every other callback
    still runs; then the first exception propagates to the caller (any others are
    attached to it as notes). A packet whose ``l3_tx``, ``l3_tx_buffer`` or
    ``l3_tx_buffer_mut`` raised is not sent (``TX_CALLBACK_FAILED``); TCP sends its
    segment again later as for any loss, or at the next call for a buffer it never got.
    An ``l4_tx`` that raises took nothing: when it did take data, the errors of its
    packets wait and propagate from the next call instead (``l4_poll`` at the latest),
    so that the bytes it took are not offered twice. A buffer whose
    ``l3_tx_buffer_mut`` raised or was too short is not handed back: it is the
    application's to reclaim.
    """

    __slots__ = (
        "stack", "_callbacks", "_ended", "_errors", "_deferred", "_busy", "_opened", "_writable", "_closed", "_size",
    )

    def __init__(self, callbacks: Callbacks[B] | CallbacksWithLength[B], config: Config | None = None) -> None:
        self._callbacks = callbacks
        self._errors: list[Exception] = []
        # Errors of an l4_tx that took data, for the next call to raise.
        self._deferred: list[Exception] = []
        self._busy = False
        self._size = 0
        self._opened: Callable[[Flow], Any] | None = getattr(callbacks, "l4_opened", None)
        self._writable: Callable[[Flow], Any] | None = getattr(callbacks, "l4_writable", None)
        self._closed: Callable[[Flow, CloseReason], Any] | None = getattr(callbacks, "l4_closed", None)
        l3_tx: Callable[..., None] = callbacks.l3_tx
        transmit: Callable[[B, int], None]
        view: Callable[[B], memoryview]
        if _takes_length(l3_tx):
            transmit, view = l3_tx, callbacks.l3_tx_buffer_mut
        else:

            def transmit(packet: B, length: int) -> None:
                l3_tx(packet)

            view = self._exact_view
        self.stack: Stack[B] = Stack(
            config, tx_buffer=self._lend, tx_buffer_view=view, transmit=transmit, tx_errors=self._errors
        )
        """The stack underneath, for ``stats``, ``flows()`` and the calls not mirrored here."""
        self._ended: set[Flow] = set()

    def l3_rx(self, packet: ReadableBuffer, now: float) -> Flow | None:
        """Take one incoming packet; return the flow it belonged to, if any."""
        return self._run(self.stack.l3_rx, packet, now).flow

    def l4_tx(self, flow: Flow, data: ReadableBuffer, now: float) -> int:
        """Send data on ``flow``; return how many bytes were taken. Less than offered:
        retry at ``l4_writable``, or after a later call that names the flow."""
        return self._run(self.stack.l4_tx, flow, data, now, defer_if_taken=True).accepted

    def l4_poll(self, now: float) -> float | None:
        """Run the timers due at ``now`` and send what waited for a buffer; return when
        to call again (``None``: nothing to do until a packet or data comes)."""
        self._run(self.stack.l4_poll, now)
        return self.stack.next_deadline()

    def consumed(self, flow: Flow, count: int, now: float) -> None:
        """With ``Config(rx_manual_consume=True)``: ``count`` more bytes delivered to
        ``l4_rx`` have been dealt with, so the receive window may reopen by as much."""
        self._run(self.stack.consumed, flow, count, now)

    def connect(self, flow: Flow, now: float) -> None:
        """Open ``flow`` from this side."""
        self._run(self.stack.connect, flow, now)

    def close(self, flow: Flow, now: float) -> None:
        """Close ``flow`` gracefully: a FIN after the queued data."""
        self._run(self.stack.close, flow, now)

    def abort(self, flow: Flow, now: float) -> None:
        """Abort ``flow``: a TCP connection is reset."""
        self._run(self.stack.abort, flow, now)

    def _lend(self, size: int) -> B | None:
        self._size = size
        return self._callbacks.l3_tx_buffer(size)

    def _exact_view(self, buffer: B) -> memoryview:
        view = self._callbacks.l3_tx_buffer_mut(buffer)
        if len(view) != self._size:
            raise TxBufferError(
                f"l3_tx_buffer_mut gave {len(view)} bytes for a {self._size}-byte packet"
                + ("" if len(view) < self._size else "; for longer buffers take the length: l3_tx(packet, length)")
            )
        return view

    def _run(self, call: Callable[..., Output[B]], *args: Any, defer_if_taken: bool = False) -> Output[B]:
        if self._busy:
            raise ReentrantCallError("l3_tx, l3_tx_buffer and l3_tx_buffer_mut may not call into the stack")
        self._busy = True
        try:
            out = call(*args)
        except BaseException:
            self._errors.clear()  # the call's own exception says what went wrong
            raise
        finally:
            self._busy = False
        # This call's own, and those an l4_tx that took data left: a nested call from an
        # l4_* callback raises only its own.
        errors = self._deferred + self._errors
        self._deferred = []
        self._errors.clear()
        self._deliver(out, errors)
        if errors and defer_if_taken and out.accepted:
            self._deferred = errors
            return out
        if errors:
            first = errors[0]
            for other in errors[1:]:
                first.add_note(f"also raised in the same call: {other!r}")
            raise first
        return out

    def _deliver(self, out: Output[B], errors: list[Exception]) -> None:
        callbacks = self._callbacks
        for event in out.events:
            try:
                if isinstance(event, DataReceived):
                    callbacks.l4_rx(event.flow, event.data)
                elif isinstance(event, EndOfStream):
                    if self._closed is None:
                        self._ended.add(event.flow)
                    callbacks.l4_rx(event.flow, None)
                elif isinstance(event, FlowClosed):
                    if self._closed is not None:
                        self._closed(event.flow, event.reason)
                    elif event.flow in self._ended:
                        self._ended.discard(event.flow)
                    else:
                        callbacks.l4_rx(event.flow, None)
                elif isinstance(event, Writable):
                    if self._writable is not None:
                        self._writable(event.flow)
                elif isinstance(event, FlowOpened):
                    if self._opened is not None:
                        self._opened(event.flow)
            except Exception as error:
                errors.append(error)
