"""``TcpStream``: one TCP connection of the stack as a :class:`trio.abc.HalfCloseableStream`."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

import trio

from l3l4 import CloseReason, ErrorReceived, Flow, FlowInfo

from ._guard import Guard
from .errors import connect_error, describe

if TYPE_CHECKING:
    from .stack import Network

__all__ = ["TcpStream", "DEFAULT_RECEIVE_SIZE"]

DEFAULT_RECEIVE_SIZE = 65536
"""Bytes ``receive_some()`` returns at most when ``max_bytes`` is not given (as trio's
``SocketStream``)."""


class TcpStream(trio.abc.HalfCloseableStream):
    """A TCP connection of a :class:`~l3l4_trio.Network`, with trio's stream semantics.

    You get one from :meth:`Network.connect`, :meth:`Network.accept` (or
    ``serve_tcp``) or :meth:`TcpRequest.accept`; never build one yourself.

    Errors follow trio: :exc:`trio.BusyResourceError` when two tasks receive (or send)
    at once, :exc:`trio.ClosedResourceError` after :meth:`aclose` (or, for sending,
    after :meth:`send_eof`), and :exc:`trio.BrokenResourceError` once the connection is
    reset, aborted, timed out, or its network has closed. Bytes already received are
    still returned before a reset is reported.

    **Backpressure.** The stack runs with ``Config(rx_manual_consume=True)``: bytes the
    peer sent keep occupying the TCP receive window until :meth:`receive_some` hands
    them to you, so a reader that stops reading closes the window and stops the peer.
    :meth:`send_all` queues into the stack's send buffer (``Config.tcp_send_buffer``)
    and waits for room while the peer or the network is slow.

    **Cancellation.** A cancelled :meth:`receive_some` loses nothing: the bytes stay
    for the next call. A :meth:`send_all` cancelled before any byte was queued has no
    effect. One cancelled (or interrupted by :meth:`aclose`) after queueing some but not
    all of its data leaves the peer with a truncated message, so, as trio allows, the
    stream breaks: the connection is reset (RST) and later calls raise
    :exc:`trio.BrokenResourceError`. The peer sees a reset, never a clean end after
    half a message.

    **Closing.** :meth:`aclose` closes gracefully (FIN after the queued data). As RFC
    1122 §4.2.2.13 asks, it resets instead when received data is still unread, and a
    reset answers data that arrives after it. It is idempotent and a checkpoint, and a
    cancelled ``aclose`` still closes.
    """

    def __init__(self, network: Network, flow: Flow) -> None:
        self._network = network
        self.flow = flow
        """The connection's :class:`~l3l4.Flow`, from this stack's side: ``local_*`` is
        the address the peer connected to (or we connected from)."""
        self.last_error: ErrorReceived | None = None
        """The last ICMP error that quoted this connection, if any (the stack has already
        acted on it: lowered the MSS, or ended a handshake)."""
        self._rx = bytearray()
        self._eof = False
        self._established = False
        self._closed = False
        self._send_shut = False
        self._ended: CloseReason | None = None
        self._broken: str | None = None
        self._writable_pending = False
        self._partial_send = False
        self._rx_lot = trio.lowlevel.ParkingLot()
        self._tx_lot = trio.lowlevel.ParkingLot()
        self._open_lot = trio.lowlevel.ParkingLot()
        self._receive_guard = Guard("another task is already receiving on this stream")
        self._send_guard = Guard("another task is already sending on this stream")

    def __repr__(self) -> str:
        return f"<TcpStream {self.flow}>"

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the connection ended, once the stack has forgotten it; else ``None``."""
        return self._ended

    def info(self) -> FlowInfo:
        """The stack's snapshot of this connection (windows, RTT, buffers).

        Raises :class:`~l3l4.UnknownFlowError` once the connection has ended.
        """
        return self._network.stack.flow_info(self.flow)

    # -- receiving -----------------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Wait for data and return up to ``max_bytes`` of it (65536 if not given).

        Returns ``b""`` once the peer has sent its FIN and everything before it has been
        returned. Taking bytes releases them from the TCP receive window.
        """
        with self._receive_guard:
            if max_bytes is None:
                size = DEFAULT_RECEIVE_SIZE
            else:
                size = operator.index(max_bytes)
                if size < 1:
                    raise ValueError("max_bytes must be at least 1")
            await trio.lowlevel.checkpoint_if_cancelled()
            waited = False
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("the stream was closed")
                rx = self._rx
                if rx:
                    if size >= len(rx):
                        data = bytes(rx)
                        rx.clear()
                    else:
                        data = bytes(memoryview(rx)[:size])
                        del rx[:size]
                    self._network._tcp_consumed(self, len(data))
                    break
                if self._eof or self._ended is CloseReason.CLOSED:
                    data = b""
                    break
                self._raise_if_broken()
                waited = True
                await self._rx_lot.park()
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return data

    # -- sending -------------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Queue all of ``data`` for sending, waiting while the send buffer is full.

        Returns once the stack has taken every byte (it sends them as the windows
        allow), not when the peer has them.
        """
        with self._send_guard:
            self._check_send()
            await trio.lowlevel.checkpoint_if_cancelled()
            waited = False
            with memoryview(data) as raw, raw.cast("B") as view:
                total = len(view)
                sent = 0
                try:
                    while True:
                        self._check_send()
                        if sent >= total:
                            break
                        sent += self._network._tcp_send(self, view[sent:] if sent else view)
                        if sent < total:
                            self._partial_send = sent > 0
                            self._writable_pending = True
                            waited = True
                            await self._tx_lot.park()
                except BaseException:
                    if 0 < sent < total and not self._closed and self._broken is None and self._ended is None:
                        self._break("send_all was interrupted part way, so the connection was reset")
                    raise
                finally:
                    self._partial_send = False
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as the send buffer takes now; return how many bytes.

        Never blocks. After it took less than offered, :meth:`wait_send_all_might_not_block`
        waits for room. Raises like :meth:`send_all`.
        """
        with self._send_guard:
            self._check_send()
            with memoryview(data) as raw, raw.cast("B") as view:
                taken = self._network._tcp_send(self, view)
                if taken < len(view):
                    self._writable_pending = True
            return taken

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the send buffer has room (it may return early, never late)."""
        with self._send_guard:
            self._check_send()
            await trio.lowlevel.checkpoint_if_cancelled()
            waited = False
            while self._writable_pending:
                waited = True
                await self._tx_lot.park()
                self._check_send()
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_eof(self) -> None:
        """Send a FIN after the queued data (TCP half-close, RFC 9293 §3.10.4); receiving
        goes on. Calling it again does nothing."""
        with self._send_guard:
            if self._closed:
                raise trio.ClosedResourceError("the stream was closed")
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("the stream was closed")
            if self._send_shut:
                return
            self._raise_if_broken()
            self._send_shut = True
            self._network._tcp_shutdown(self)

    # -- closing -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the stream: a FIN after the queued data, or a reset if received bytes
        are still unread (RFC 1122 §4.2.2.13). Idempotent; still closes when cancelled."""
        if not self._closed:
            self._closed = True
            if self._ended is None:
                if self._rx or self._partial_send:
                    self._network._tcp_abort(self)
                elif not self._send_shut:
                    self._send_shut = True
                    self._network._tcp_shutdown(self)
            self._rx.clear()
            self._wake()
        await trio.lowlevel.checkpoint()

    # -- called by the network's stack task ----------------------------------------------

    def _on_open(self) -> None:
        self._established = True
        self._open_lot.unpark_all()

    def _on_data(self, data: bytes) -> None:
        if self._closed:
            # RFC 1122 §4.2.2.13: data arriving after CLOSE is lost; say so with a reset.
            self._network._tcp_abort(self)
            return
        self._rx += data
        self._rx_lot.unpark_all()

    def _on_eof(self) -> None:
        self._eof = True
        self._rx_lot.unpark_all()

    def _on_writable(self) -> None:
        self._writable_pending = False
        self._tx_lot.unpark_all()

    def _on_error(self, event: ErrorReceived) -> None:
        self.last_error = event

    def _on_closed(self, reason: CloseReason, why: str | None = None) -> None:
        if self._ended is None:
            self._ended = reason
        if self._broken is None and (why is not None or reason is not CloseReason.CLOSED):
            self._broken = why if why is not None else describe(reason)
        self._writable_pending = False
        self._wake()

    async def _wait_established(self) -> None:
        """Wait for the handshake; raise :class:`~l3l4_trio.ConnectError` if it fails."""
        while not self._established:
            if self._ended is not None:
                raise connect_error(self.flow, self._ended)
            await self._open_lot.park()

    # -- internals -----------------------------------------------------------------------

    def _wake(self) -> None:
        self._rx_lot.unpark_all()
        self._tx_lot.unpark_all()
        self._open_lot.unpark_all()

    def _break(self, why: str) -> None:
        self._broken = why
        self._network._tcp_abort(self)

    def _raise_if_broken(self) -> None:
        if self._broken is not None:
            raise trio.BrokenResourceError(self._broken)
        if self._ended is not None and self._ended is not CloseReason.CLOSED:
            raise trio.BrokenResourceError(describe(self._ended))

    def _check_send(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream was closed")
        if self._send_shut:
            raise trio.ClosedResourceError("send_eof was called: the stream is closed for sending")
        self._raise_if_broken()
        if self._ended is not None:
            raise trio.BrokenResourceError(describe(self._ended))
