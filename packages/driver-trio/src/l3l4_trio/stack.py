"""The stack task: ``open_stack`` runs an l3l4 ``Stack`` on a packet link under trio, and
``Network`` is what the application uses to accept, connect and serve."""

from __future__ import annotations

import dataclasses
import errno
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Generic, NoReturn, TypeVar

import trio

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    EndOfStream,
    ErrorReceived,
    Event,
    Flow,
    FlowClosed,
    FlowOpened,
    FlowRequested,
    InvalidStateError,
    L3L4Error,
    Output,
    Proto,
    SendClosedError,
    Stack,
    UnknownFlowError,
    Writable,
)
from l3l4.wire.vnet import offloading

from .errors import ConnectError, connect_error
from .links import OffloadLink, Packet, PacketLink
from .request import TcpRequest
from .stream import TcpStream
from .udp import UdpSocket

__all__ = ["Address", "Network", "NetworkStatistics", "open_stack"]

Address = tuple[str | IPv4Address | IPv6Address, int]
"""An ``(ip, port)`` pair; the ip as text or an ``ipaddress`` object."""

T = TypeVar("T")

# RFC 6335 §6: the dynamic (ephemeral) port range, 49152..65535.
_EPHEMERAL_FIRST = 49152
_EPHEMERAL_COUNT = 65536 - _EPHEMERAL_FIRST
# How long leaving open_stack may spend handing the final resets to the link.
_SHUTDOWN_FLUSH = 1.0


@dataclass(frozen=True, slots=True)
class NetworkStatistics:
    """What :meth:`Network.statistics` reports."""

    tcp_streams: int
    """TCP connections with a stream (accepted or not yet)."""
    udp_sockets: int
    """UDP flows with a socket."""
    pending_accepts: int
    """Streams waiting for :meth:`Network.accept`."""
    pending_requests: int
    """Requests waiting for :meth:`Network.accept_request`."""
    pending_udp: int
    """UDP flows waiting for :meth:`Network.accept_udp`."""
    backlog_overflows: int
    """Flows refused because their queue held ``backlog`` already."""


class _Incoming(Generic[T]):
    """``async for`` over an accept method; ends when the network closes (a failed link
    still raises :exc:`trio.BrokenResourceError`)."""

    def __init__(self, receive: Callable[[], Awaitable[T]]) -> None:
        self._receive = receive

    def __aiter__(self) -> _Incoming[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._receive()
        except trio.ClosedResourceError:
            raise StopAsyncIteration from None


class Network:
    """A running l3l4 stack: every address and port, TCP and UDP, as trio objects.

    Made by :func:`open_stack`, never directly. One task (started by ``open_stack``)
    drives the stack: it feeds arriving packets to ``l3_rx``, calls ``l4_poll`` at
    ``next_deadline()`` (a trio deadline, on :func:`trio.current_time`), and hands each
    event to the stream or socket it concerns, waking the tasks waiting there. A writer
    beside it hands the stack's packets to the link, so a link that pushes back never
    stops the reading. Streams call into the stack synchronously (those calls never
    block), queue the packets they produce for the writer, and bring the driving task's
    deadline forward if they set an earlier timer. Nothing polls: every task sleeps
    until a packet, a timer or an event concerns it.

    :attr:`stack` is the :class:`l3l4.Stack` underneath, for ``flow_info``, ``stats``
    and ``tcp_states``; drive flows through the streams, not through it.
    """

    def __init__(self, link: PacketLink, config: Config | None, *, backlog: int, udp_queue: int) -> None:
        if backlog < 1:
            raise ValueError("backlog must be at least 1")
        if udp_queue < 1:
            raise ValueError("udp_queue must be at least 1")
        config = config if config is not None else Config()
        if not config.rx_manual_consume:
            # Streams release bytes from the window only as the application reads them:
            # that is the whole of receive backpressure, so it is not optional here.
            config = dataclasses.replace(config, rx_manual_consume=True)
        offload = link if isinstance(link, OffloadLink) and link.offload else None
        if offload is not None and not config.tcp_tso_packet:
            config = offloading(config, True)
        if offload is None and config.tcp_checksum_offload:
            raise ValueError("Config.tcp_checksum_offload needs a link that offloads (TunLink(fd, offload=True))")
        self.config = config
        """The stack's configuration (always with ``rx_manual_consume=True``; over an
        offloading link, unless ``tcp_tso_packet`` was set, with ``tcp_tso_packet`` 65535
        and ``tcp_checksum_offload``)."""
        self.stack: Stack[bytearray] = Stack(config)
        self._link = link
        self._offload = offload
        if offload is not None:
            offload.attach(self.stack)
        self._udp_queue = udp_queue
        self._tcp: dict[Flow, TcpStream] = {}
        self._udp: dict[Flow, UdpSocket] = {}
        self._requests: dict[Flow, TcpRequest] = {}
        self._incoming_tx, self._incoming_rx = trio.open_memory_channel[TcpStream](backlog)
        self._udp_tx, self._udp_rx = trio.open_memory_channel[UdpSocket](backlog)
        self._requests_tx, self._requests_rx = trio.open_memory_channel[TcpRequest](backlog)
        self._outbox: list[bytearray] = []
        self._outbox_lot = trio.lowlevel.ParkingLot()
        self._waiting: trio.CancelScope | None = None
        self._tasks = trio.CancelScope()
        self._ended: str | None = None
        self._broken = False
        self._next_port = 0
        self._overflows = 0

    # -- accepting -----------------------------------------------------------------------

    async def accept(self) -> TcpStream:
        """Wait for the next TCP connection a peer opened (to any address and port).

        Up to ``backlog`` established connections wait here; more are reset. Under
        ``Config(accept="manual")`` connections come from :meth:`accept_request`
        instead. Raises :exc:`trio.ClosedResourceError` once the network is closed
        (:exc:`trio.BrokenResourceError` if its link failed).
        """
        try:
            return await self._incoming_rx.receive()
        except trio.EndOfChannel:
            raise self._ended_error() from None

    def incoming(self) -> AsyncIterator[TcpStream]:
        """``async for stream in net.incoming()``: :meth:`accept` until the network closes."""
        return _Incoming(self.accept)

    async def serve_tcp(
        self,
        handler: Callable[[TcpStream], Awaitable[object]],
        *,
        handler_nursery: trio.Nursery | None = None,
        task_status: trio.TaskStatus[Network] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Accept connections forever and run ``handler(stream)`` for each, as
        :func:`trio.serve_tcp` does: in ``handler_nursery`` (default: a nursery of this
        call), closing the stream with :func:`trio.aclose_forcefully` when the handler
        returns. ``await nursery.start(net.serve_tcp, handler)`` returns once accepting.

        Raises :exc:`trio.ClosedResourceError` when the network closes.
        """
        async with trio.open_nursery() as nursery:
            handlers = nursery if handler_nursery is None else handler_nursery
            task_status.started(self)
            while True:
                stream = await self.accept()
                handlers.start_soon(_run_handler, handler, stream)

    async def accept_request(self) -> TcpRequest:
        """Wait for the next SYN under ``Config(accept="manual")``; answer it with
        :meth:`TcpRequest.accept` or :meth:`TcpRequest.reject`.

        Up to ``backlog`` requests wait here; more are rejected.
        """
        try:
            return await self._requests_rx.receive()
        except trio.EndOfChannel:
            raise self._ended_error() from None

    def requests(self) -> AsyncIterator[TcpRequest]:
        """``async for request in net.requests()``: :meth:`accept_request` until closed."""
        return _Incoming(self.accept_request)

    async def accept_udp(self) -> UdpSocket:
        """Wait for the next UDP flow a peer opened (its first datagram is queued in it).

        Up to ``backlog`` new flows wait here; more are closed and their datagram dropped.
        """
        try:
            return await self._udp_rx.receive()
        except trio.EndOfChannel:
            raise self._ended_error() from None

    def incoming_udp(self) -> AsyncIterator[UdpSocket]:
        """``async for sock in net.incoming_udp()``: :meth:`accept_udp` until closed."""
        return _Incoming(self.accept_udp)

    # -- opening -------------------------------------------------------------------------

    async def connect(self, local: Address | Flow, remote: Address | None = None) -> TcpStream:
        """Open a TCP connection from ``local`` (any address; port 0 picks a free
        ephemeral port) to ``remote``, or for the given :class:`~l3l4.Flow`, and wait
        for the handshake.

        Raises :class:`~l3l4_trio.ConnectionRefused` (a ``ConnectionRefusedError``),
        :class:`~l3l4_trio.ConnectTimeout` (a ``TimeoutError``) or
        :class:`~l3l4_trio.HostUnreachable`, all :class:`~l3l4_trio.ConnectError`;
        :class:`~l3l4.FlowExistsError` if the flow is open already, and
        :exc:`trio.ClosedResourceError` if the network closes meanwhile. Cancelled, it
        abandons the handshake.
        """
        flow = self._flow(Proto.TCP, local, remote)
        self._check_open()
        await trio.lowlevel.checkpoint_if_cancelled()
        out = self.stack.connect(flow, trio.current_time())
        stream = TcpStream(self, flow)
        self._tcp[flow] = stream
        self._apply(out)
        await self._established(stream)
        return stream

    def open_udp(self, local: Address | Flow, remote: Address | None = None) -> UdpSocket:
        """Open a UDP flow from ``local`` (any address; port 0 picks one) to ``remote``,
        or for the given :class:`~l3l4.Flow`. It never blocks: UDP has no handshake.

        Raises :class:`~l3l4.FlowExistsError` if the flow is open already.
        """
        flow = self._flow(Proto.UDP, local, remote)
        self._check_open()
        out = self.stack.connect(flow, trio.current_time())
        sock = UdpSocket(self, flow, self._udp_queue)
        self._udp[flow] = sock
        self._apply(out)
        return sock

    async def _established(self, stream: TcpStream) -> None:
        """Wait for a stream's handshake; abort it if cancelled."""
        try:
            await stream._wait_established()
        except ConnectError:
            if self._ended is not None:
                raise self._ended_error() from None
            raise
        except BaseException:
            if stream.close_reason is None:
                self._tcp_abort(stream)
            raise

    def statistics(self) -> NetworkStatistics:
        """Counts of what this network holds and has refused."""
        return NetworkStatistics(
            tcp_streams=len(self._tcp),
            udp_sockets=len(self._udp),
            pending_accepts=self._incoming_rx.statistics().current_buffer_used,
            pending_requests=self._requests_rx.statistics().current_buffer_used,
            pending_udp=self._udp_rx.statistics().current_buffer_used,
            backlog_overflows=self._overflows,
        )

    # -- the stack task ------------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The stack task: drive the stack, and beside it a writer, until ``_tasks`` is
        cancelled (leaving open_stack) or the link fails."""
        async with trio.open_nursery() as nursery:
            self._tasks = nursery.cancel_scope
            nursery.start_soon(self._until_link_fails, self._drive)
            nursery.start_soon(self._until_link_fails, self._transmit)
            task_status.started()

    async def _until_link_fails(self, loop: Callable[[], Awaitable[None]]) -> None:
        try:
            await loop()
        except (trio.ClosedResourceError, trio.BrokenResourceError, trio.EndOfChannel) as exc:
            if self._ended is None:
                self._end(f"the network's link failed ({type(exc).__name__}: {exc})", broken=True)
            self._tasks.cancel()

    async def _drive(self) -> None:
        """The only caller of ``l3_rx`` and ``l4_poll``: feed arriving packets to the
        stack and run its timers at ``next_deadline()``."""
        link = self._link
        offload = self._offload
        stack = self.stack
        while True:
            now = trio.current_time()
            deadline = stack.next_deadline()
            if deadline is not None and deadline <= now:
                self._apply(stack.l4_poll(now))
                continue
            received: Sequence[Packet] = ()
            # With offloads, each packet comes with whether its checksums are verified.
            offloaded: Sequence[tuple[Packet, bool]] = ()
            # Wait for packets or the next timer. A stream's call that sets an earlier
            # timer moves this scope's deadline (see _apply).
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as self._waiting:
                try:
                    if offload is None:
                        received = await link.receive_packets()
                    else:
                        offloaded = await offload.receive_offloaded()
                finally:
                    self._waiting = None
            now = trio.current_time()
            for packet in received:
                self._apply(stack.l3_rx(packet, now))
            for packet, verified in offloaded:
                self._apply(stack.l3_rx(packet, now, verified))

    async def _transmit(self) -> None:
        """Hand queued packets to the link. A task of its own, so that a link pushing
        back never stops the stack from reading (two stacks over a pair of sockets
        would otherwise each wait, with full queues, for the other to read)."""
        link = self._link
        while True:
            while not self._outbox:
                await self._outbox_lot.park()
            packets, self._outbox = self._outbox, []
            await link.send_packets(packets)

    def _apply(self, out: Output[bytearray]) -> None:
        """Take what a stack call produced: packets to the writer, events to their flows."""
        if self._ended is not None:
            return
        if out.packets:
            self._outbox.extend(out.packets)
            self._outbox_lot.unpark_all()
        for event in out.events:
            self._dispatch(event)
        waiting = self._waiting
        if waiting is not None:
            deadline = self.stack.next_deadline()
            if deadline is not None and deadline < waiting.deadline:
                waiting.deadline = deadline

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            if event.flow.proto is Proto.TCP:
                stream = self._tcp.get(event.flow)
                if stream is not None:
                    stream._on_data(event.data)
            else:
                sock = self._udp.get(event.flow)
                if sock is not None:
                    sock._on_datagram(event.data)
        elif isinstance(event, Writable):
            stream = self._tcp.get(event.flow)
            if stream is not None:
                stream._on_writable()
        elif isinstance(event, FlowOpened):
            self._opened(event.flow)
        elif isinstance(event, EndOfStream):
            stream = self._tcp.get(event.flow)
            if stream is not None:
                stream._on_eof()
        elif isinstance(event, FlowClosed):
            self._requests.pop(event.flow, None)
            closed = self._tcp.pop(event.flow, None) or self._udp.pop(event.flow, None)
            if closed is not None:
                closed._on_closed(event.reason)
        elif isinstance(event, FlowRequested):
            self._requested(event.flow)
        elif isinstance(event, ErrorReceived):
            target = self._tcp.get(event.flow) or self._udp.get(event.flow)
            if target is not None:
                target._on_error(event)

    def _opened(self, flow: Flow) -> None:
        if flow.proto is Proto.TCP:
            stream = self._tcp.get(flow)
            if stream is not None:  # ours: connect or an accepted request
                stream._on_open()
                return
            stream = TcpStream(self, flow)
            stream._on_open()
            self._tcp[flow] = stream
            try:
                self._incoming_tx.send_nowait(stream)
            except trio.WouldBlock:
                self._overflows += 1
                self._tcp_abort(stream)
            return
        if flow in self._udp:  # ours: open_udp
            return
        sock = UdpSocket(self, flow, self._udp_queue)
        self._udp[flow] = sock
        try:
            self._udp_tx.send_nowait(sock)
        except trio.WouldBlock:
            self._overflows += 1
            self._udp_close(sock)

    def _requested(self, flow: Flow) -> None:
        request = TcpRequest(self, flow)
        self._requests[flow] = request
        try:
            self._requests_tx.send_nowait(request)
        except trio.WouldBlock:
            self._overflows += 1
            request._take()
            self._reject_request(request)

    # -- calls from streams, sockets and requests ----------------------------------------

    def _tcp_send(self, stream: TcpStream, data: memoryview) -> int:
        try:
            out = self.stack.l4_tx(stream.flow, data, trio.current_time())
        except (UnknownFlowError, SendClosedError) as exc:
            raise trio.BrokenResourceError(f"the connection cannot send: {exc}") from exc
        self._apply(out)
        return out.accepted

    def _tcp_consumed(self, stream: TcpStream, count: int) -> None:
        if stream.close_reason is None:
            self._call(self.stack.consumed, stream.flow, count)

    def _tcp_shutdown(self, stream: TcpStream) -> None:
        self._call(self.stack.close, stream.flow)

    def _tcp_abort(self, stream: TcpStream) -> None:
        self._call(self.stack.abort, stream.flow)

    def _udp_send(self, sock: UdpSocket, data: bytes | bytearray | memoryview) -> None:
        try:
            out = self.stack.l4_tx(sock.flow, data, trio.current_time())
        except UnknownFlowError as exc:
            raise trio.BrokenResourceError(f"the flow is gone: {exc}") from exc
        self._apply(out)

    def _udp_close(self, sock: UdpSocket) -> None:
        self._call(self.stack.close, sock.flow)

    def _accept_request(self, request: TcpRequest) -> TcpStream:
        self._check_open()
        flow = request.flow
        if self._requests.get(flow) is request:
            del self._requests[flow]
        try:
            out = self.stack.accept(flow, trio.current_time())
        except (UnknownFlowError, InvalidStateError):
            # It waited past tcp_halfopen_idle_timeout and the stack forgot it.
            raise connect_error(flow, CloseReason.TIMED_OUT) from None
        stream = TcpStream(self, flow)
        self._tcp[flow] = stream
        self._apply(out)
        return stream

    def _reject_request(self, request: TcpRequest) -> None:
        flow = request.flow
        if self._requests.get(flow) is request:
            del self._requests[flow]
            try:
                self._apply(self.stack.reject(flow, trio.current_time()))
            except (UnknownFlowError, InvalidStateError):
                pass  # it aged out: the peer has been forgotten already

    def _call(self, method: Callable[..., Output[bytearray]], *args: object) -> None:
        """Call a stack method on a flow that may have ended meanwhile."""
        if self._ended is not None:
            return
        try:
            out = method(*args, trio.current_time())
        except UnknownFlowError:
            return
        self._apply(out)

    # -- ending --------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Leaving open_stack: reset every connection, tell the peers, break every stream."""
        if self._ended is not None:
            return
        now = trio.current_time()
        stack = self.stack
        requests = list(self._requests.values())
        streams, sockets = self._forget()
        for request in requests:
            try:
                self._outbox.extend(stack.reject(request.flow, now).packets)
            except L3L4Error:
                pass
        for flow in stack.flows():
            try:
                out = stack.abort(flow, now) if flow.proto is Proto.TCP else stack.close(flow, now)
            except L3L4Error:
                continue
            self._outbox.extend(out.packets)
        packets, self._outbox = self._outbox, []
        self._end("the network was closed", streams=streams, sockets=sockets)
        if packets:
            with trio.move_on_after(_SHUTDOWN_FLUSH):
                try:
                    await self._link.send_packets(packets)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    pass

    def _forget(self) -> tuple[list[TcpStream], list[UdpSocket]]:
        streams = list(self._tcp.values())
        sockets = list(self._udp.values())
        self._tcp.clear()
        self._udp.clear()
        self._requests.clear()
        return streams, sockets

    def _end(
        self,
        why: str,
        *,
        broken: bool = False,
        streams: list[TcpStream] | None = None,
        sockets: list[UdpSocket] | None = None,
    ) -> None:
        if streams is None or sockets is None:
            streams, sockets = self._forget()
        self._ended = why
        self._broken = broken
        self._outbox.clear()
        for channel in (self._incoming_rx, self._udp_rx, self._requests_rx):
            while True:
                try:
                    channel.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
        self._incoming_tx.close()
        self._udp_tx.close()
        self._requests_tx.close()
        for stream in streams:
            stream._on_closed(CloseReason.ABORTED, why)
        for sock in sockets:
            sock._on_closed(CloseReason.ABORTED, why)

    def _check_open(self) -> None:
        if self._ended is not None:
            raise self._ended_error()

    def _ended_error(self) -> trio.ClosedResourceError | trio.BrokenResourceError:
        why = self._ended if self._ended is not None else "the network is closed"
        return trio.BrokenResourceError(why) if self._broken else trio.ClosedResourceError(why)

    def _flow(self, proto: Proto, local: Address | Flow, remote: Address | None) -> Flow:
        if isinstance(local, Flow):
            if remote is not None:
                raise TypeError("give a Flow, or a local and a remote address, not both")
            if local.proto is not proto:
                raise ValueError(f"{local} is not a {proto.name} flow")
            return local
        if remote is None:
            raise TypeError("the remote address is missing")
        local_ip, local_port = ip_address(local[0]), int(local[1])
        remote_ip, remote_port = ip_address(remote[0]), int(remote[1])
        if local_port == 0:
            local_port = self._ephemeral_port(proto, local_ip, remote_ip, remote_port)
        return Flow(proto, local_ip, local_port, remote_ip, remote_port)

    def _ephemeral_port(
        self, proto: Proto, local_ip: IPv4Address | IPv6Address, remote_ip: IPv4Address | IPv6Address, port: int
    ) -> int:
        """The next port of the dynamic range not in use toward this remote end."""
        table: dict[Flow, TcpStream] | dict[Flow, UdpSocket] = self._tcp if proto is Proto.TCP else self._udp
        for _ in range(_EPHEMERAL_COUNT):
            candidate = _EPHEMERAL_FIRST + self._next_port % _EPHEMERAL_COUNT
            self._next_port += 1
            if Flow(proto, local_ip, candidate, remote_ip, port) not in table:
                return candidate
        raise OSError(errno.EADDRNOTAVAIL, f"no free port on {local_ip} toward {remote_ip}:{port}")


async def _run_handler(handler: Callable[[TcpStream], Awaitable[object]], stream: TcpStream) -> None:
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def open_stack(
    link: PacketLink,
    config: Config | None = None,
    *,
    backlog: int = 128,
    udp_queue: int = 256,
) -> AsyncIterator[Network]:
    """Run an l3l4 stack on ``link`` for the duration of the ``async with`` block.

    ::

        async with l3l4_trio.open_stack(link, Config(secret=...)) as net:
            stream = await net.accept()

    The stack's task runs in a nursery of its own; time is :func:`trio.current_time`
    (so tests can run under :class:`trio.testing.MockClock`). The stack always runs
    with ``rx_manual_consume=True`` (``config`` is adjusted if needed): bytes leave
    the TCP receive window only as streams hand them to the application.

    Over an :class:`~l3l4_trio.OffloadLink` that offloads (``TunLink(fd, offload=True)``)
    the stack takes the device's checksum verdicts, and sends TCP packets of up to
    64 KiB for the device to segment, their checksums left for it to complete:
    ``Config.tcp_tso_packet`` becomes 65535 and ``Config.tcp_checksum_offload`` true
    unless ``config`` sets ``tcp_tso_packet`` (setting it to ``config.mtu`` keeps every
    packet within the MTU and complete).

    ``backlog`` bounds each queue of new flows (:meth:`~Network.accept`,
    :meth:`~Network.accept_request`, :meth:`~Network.accept_udp`); ``udp_queue`` the
    datagrams waiting in each :class:`UdpSocket`.

    Leaving the block aborts every flow: TCP peers get a reset (sent before the block
    exits, with up to a second for the link to take it), local streams and sockets
    raise :exc:`trio.BrokenResourceError`. The link is not closed: it is yours.
    An exception from the block comes out as itself, not wrapped in an exception group.
    """
    network = Network(link, config, backlog=backlog, udp_queue=udp_queue)
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(network._run)
            try:
                yield network
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                # Stop the stack's tasks only: an outer cancellation of the block must
                # still come out of it.
                network._tasks.cancel()
    except BaseExceptionGroup as group:
        if body_error is not None and len(group.exceptions) == 1 and group.exceptions[0] is body_error:
            raise body_error from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            await network._shutdown()
