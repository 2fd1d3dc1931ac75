"""``UdpSocket``: one UDP flow of the stack as a :class:`trio.abc.Channel` of datagrams."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import trio

from l3l4 import CloseReason, ErrorReceived, Flow

from ._guard import Guard
from .errors import describe

if TYPE_CHECKING:
    from .stack import Network

__all__ = ["UdpSocket"]


class UdpSocket(trio.abc.Channel[bytes]):
    """A UDP flow: datagrams to and from one remote address and port, from one local
    address and port (any address: the stack serves them all).

    You get one from :meth:`Network.open_udp` (outward) or :meth:`Network.accept_udp`
    (a first datagram arrived); never build one yourself. It is a trio channel:
    ``await sock.send(data)`` sends one datagram, ``await sock.receive()`` returns the
    next, and ``async for datagram in sock`` reads until the flow ends.

    At most ``max_queued`` datagrams wait for :meth:`receive`; more are dropped (as a
    kernel drops past a socket's buffer) and counted in :attr:`dropped`.

    When the stack ends the flow (idle timeout, eviction) :meth:`receive` returns what
    is queued, then raises :exc:`trio.EndOfChannel`, and :meth:`send` raises
    :exc:`trio.BrokenResourceError`. After :meth:`aclose` both raise
    :exc:`trio.ClosedResourceError`.
    """

    def __init__(self, network: Network, flow: Flow, max_queued: int) -> None:
        self._network = network
        self.flow = flow
        """The flow, from this stack's side."""
        self.dropped = 0
        """Datagrams dropped because ``max_queued`` were already waiting."""
        self.last_error: ErrorReceived | None = None
        """The last ICMP error that quoted this flow (say, port unreachable), if any."""
        self._queue: deque[bytes] = deque()
        self._max_queued = max_queued
        self._closed = False
        self._ended: CloseReason | None = None
        self._broken: str | None = None
        self._lot = trio.lowlevel.ParkingLot()
        self._receive_guard = Guard("another task is already receiving on this flow")

    def __repr__(self) -> str:
        return f"<UdpSocket {self.flow}>"

    @property
    def close_reason(self) -> CloseReason | None:
        """Why the flow ended, once the stack has forgotten it; else ``None``."""
        return self._ended

    async def send(self, value: bytes | bytearray | memoryview) -> None:
        """Send one datagram (IP fragments it if it exceeds the path MTU).

        Raises :class:`~l3l4.PayloadTooLargeError` (a ``ValueError``) for a datagram
        over 65507 bytes on IPv4 or 65527 on IPv6.
        """
        self._check()
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check()
        self._network._udp_send(self, value)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, value: bytes | bytearray | memoryview) -> None:
        """:meth:`send` without the checkpoint: UDP never waits."""
        self._check()
        self._network._udp_send(self, value)

    async def receive(self) -> bytes:
        """Wait for the next datagram and return it."""
        with self._receive_guard:
            await trio.lowlevel.checkpoint_if_cancelled()
            waited = False
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("the flow was closed")
                if self._queue:
                    datagram = self._queue.popleft()
                    break
                if self._broken is not None:
                    raise trio.BrokenResourceError(self._broken)
                if self._ended is not None:
                    raise trio.EndOfChannel
                waited = True
                await self._lot.park()
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return datagram

    def receive_nowait(self) -> bytes:
        """The next queued datagram; raises :exc:`trio.WouldBlock` if there is none."""
        with self._receive_guard:
            if self._closed:
                raise trio.ClosedResourceError("the flow was closed")
            if self._queue:
                return self._queue.popleft()
            if self._broken is not None:
                raise trio.BrokenResourceError(self._broken)
            if self._ended is not None:
                raise trio.EndOfChannel
            raise trio.WouldBlock

    async def aclose(self) -> None:
        """Forget the flow in the stack. Idempotent; still closes when cancelled."""
        if not self._closed:
            self._closed = True
            self._queue.clear()
            if self._ended is None:
                self._network._udp_close(self)
            self._lot.unpark_all()
        await trio.lowlevel.checkpoint()

    # -- called by the network's stack task ----------------------------------------------

    def _on_datagram(self, data: bytes) -> None:
        if len(self._queue) >= self._max_queued:
            self.dropped += 1
            return
        self._queue.append(data)
        self._lot.unpark_all()

    def _on_error(self, event: ErrorReceived) -> None:
        self.last_error = event

    def _on_closed(self, reason: CloseReason, why: str | None = None) -> None:
        if self._ended is None:
            self._ended = reason
        if why is not None and self._broken is None:
            self._broken = why
        self._lot.unpark_all()

    def _check(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the flow was closed")
        if self._broken is not None:
            raise trio.BrokenResourceError(self._broken)
        if self._ended is not None:
            raise trio.BrokenResourceError(describe(self._ended))
