"""Packet links: what a stack task reads IP packets from and writes them to.

A link moves whole IP packets, nothing else. :func:`memory_link_pair` wires two stacks
together in memory (with seeded loss and delay for tests); :class:`TunLink` runs over a
non-blocking file descriptor such as a Linux TUN device's, with the device's checksum
and segmentation offloads if it has them (an :class:`OffloadLink`).
"""

from __future__ import annotations

import errno
import heapq
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import trio

from l3l4 import Stack
from l3l4.wire.vnet import NO_OFFLOAD_HEADER, VNET_HEADER, checksum_trusted, transmit_header

from ._guard import Guard

__all__ = [
    "Packet",
    "PacketLink",
    "OffloadLink",
    "MemoryLink",
    "MemoryLinkStatistics",
    "memory_link_pair",
    "TunLink",
]

Packet = bytes | bytearray | memoryview


class PacketLink(Protocol):
    """What :func:`~l3l4_trio.open_stack` needs from a link.

    ``receive_packets`` waits for at least one packet and returns every packet it can
    have without waiting further (in arrival order). It must be cancel-safe: if it
    raises :exc:`trio.Cancelled`, no packet was taken. It raises
    :exc:`trio.ClosedResourceError` once this end is closed, and
    :exc:`trio.BrokenResourceError` or :exc:`trio.EndOfChannel` when the link is gone.

    ``send_packets`` transmits packets in order, waiting if the link pushes back.
    ``aclose`` closes this end; it is idempotent and wakes blocked callers.
    """

    async def receive_packets(self) -> Sequence[Packet]: ...

    async def send_packets(self, packets: Sequence[Packet]) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class OffloadLink(PacketLink, Protocol):
    """A :class:`PacketLink` that may carry a device's checksum and TCP segmentation
    offloads, as :class:`TunLink` does with ``offload=True``. When :attr:`offload` is
    true, :func:`~l3l4_trio.open_stack`

    - runs the stack with ``Config.tcp_tso_packet`` 65535 and ``tcp_checksum_offload``
      if the config leaves ``tcp_tso_packet`` 0, so that new data leaves in TCP packets
      of up to 64 KiB for the device to segment and to checksum;
    - calls :meth:`attach` with the stack, once, before any packet moves: the link asks
      it for the segment size of each packet larger than the MTU
      (:meth:`l3l4.Stack.tso_segment_size`);
    - receives with :meth:`receive_offloaded` instead of ``receive_packets``, and hands
      each packet's flag to :meth:`l3l4.Stack.l3_rx` as ``checksum_verified``.
    """

    @property
    def offload(self) -> bool:
        """Whether the device offloads (otherwise the link is used as a plain one)."""
        ...

    def attach(self, stack: Stack[bytearray]) -> None:
        """Use ``stack`` for the segment sizes of the packets it sends through the link."""
        ...

    async def receive_offloaded(self) -> Sequence[tuple[Packet, bool]]:
        """``receive_packets``, each packet with whether its checksums need no
        verification (the device checked them, or agreed to leave them partial)."""
        ...


# -- in memory ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryLinkStatistics:
    """Counters of one direction of a memory link (what this end sent)."""

    sent: int
    """Packets handed to :meth:`MemoryLink.send_packets`."""
    lost: int
    """Packets dropped by the seeded loss."""
    overflowed: int
    """Packets dropped because ``queue_limit`` packets were already in flight."""


class _Pipe:
    """One direction: packets in flight, ordered by delivery time."""

    __slots__ = (
        "queue", "lot", "rng", "loss", "delay", "jitter", "limit", "order",
        "sender_closed", "sent", "lost", "overflowed",
    )

    def __init__(self, rng: random.Random, loss: float, delay: float, jitter: float, limit: int) -> None:
        self.queue: list[tuple[float, int, bytes]] = []
        self.lot = trio.lowlevel.ParkingLot()
        self.rng = rng
        self.loss = loss
        self.delay = delay
        self.jitter = jitter
        self.limit = limit
        self.order = 0
        self.sender_closed = False
        self.sent = 0
        self.lost = 0
        self.overflowed = 0

    def push(self, packet: Packet, now: float) -> None:
        self.sent += 1
        # Draw every random number for every packet, so one knob does not shift the
        # sequence another sees: a seed gives the same losses whatever the delays.
        lose = self.rng.random() < self.loss
        extra = self.rng.random() * self.jitter
        if lose:
            self.lost += 1
            return
        if len(self.queue) >= self.limit:
            self.overflowed += 1
            return
        self.order += 1
        heapq.heappush(self.queue, (now + self.delay + extra, self.order, bytes(packet)))


class MemoryLink:
    """One end of an in-memory link made by :func:`memory_link_pair`."""

    def __init__(self, inbound: _Pipe, outbound: _Pipe) -> None:
        self._inbound = inbound
        self._outbound = outbound
        self._closed = False
        self._receive_guard = Guard("another task is already receiving on this link")

    async def receive_packets(self) -> list[bytes]:
        """Wait for the next packet to arrive; return it with every other packet due.

        Raises :exc:`trio.ClosedResourceError` after :meth:`aclose`, and
        :exc:`trio.EndOfChannel` once the other end is closed and nothing is left.
        """
        with self._receive_guard:
            await trio.lowlevel.checkpoint_if_cancelled()
            pipe = self._inbound
            waited = False
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("this end of the link is closed")
                queue = pipe.queue
                now = trio.current_time()
                if queue and queue[0][0] <= now:
                    packets = []
                    while queue and queue[0][0] <= now:
                        packets.append(heapq.heappop(queue)[2])
                    if not waited:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return packets
                if pipe.sender_closed and not queue:
                    raise trio.EndOfChannel
                waited = True
                with trio.move_on_at(queue[0][0] if queue else math.inf):
                    await pipe.lot.park()

    async def send_packets(self, packets: Sequence[Packet]) -> None:
        """Put packets on the link toward the other end. Never blocks: a packet beyond
        the link's ``queue_limit`` is dropped, as a router's full queue would.

        Raises :exc:`trio.ClosedResourceError` after :meth:`aclose` and
        :exc:`trio.BrokenResourceError` once the other end is closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise trio.ClosedResourceError("this end of the link is closed")
        if self._inbound.sender_closed:
            raise trio.BrokenResourceError("the other end of the link is closed")
        pipe = self._outbound
        now = trio.current_time()
        for packet in packets:
            pipe.push(packet, now)
        pipe.lot.unpark_all()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def aclose(self) -> None:
        """Close this end: its callers get :exc:`trio.ClosedResourceError`, the other end
        :exc:`trio.EndOfChannel` (receiving) or :exc:`trio.BrokenResourceError` (sending)."""
        if not self._closed:
            self._closed = True
            self._outbound.sender_closed = True
            self._outbound.lot.unpark_all()
            self._inbound.lot.unpark_all()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> MemoryLink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def statistics(self) -> MemoryLinkStatistics:
        """What this end has sent, lost and overflowed."""
        pipe = self._outbound
        return MemoryLinkStatistics(sent=pipe.sent, lost=pipe.lost, overflowed=pipe.overflowed)


def memory_link_pair(
    *,
    loss: float = 0.0,
    delay: float = 0.0,
    jitter: float = 0.0,
    queue_limit: int = 10_000,
    seed: int = 0,
) -> tuple[MemoryLink, MemoryLink]:
    """Two ends of an in-memory link, for wiring two stacks back to back.

    Each direction loses a packet with probability ``loss`` and delivers the rest after
    ``delay`` seconds plus up to ``jitter`` more (so jitter reorders), on trio's clock:
    under ``trio.testing.MockClock(autojump_threshold=0)`` no real time passes. The
    randomness comes from ``random.Random`` seeded with ``seed``, one generator per
    direction, so a seed replays the same losses.
    """
    if not 0.0 <= loss < 1.0:
        raise ValueError(f"loss {loss} is outside [0, 1)")
    if delay < 0 or jitter < 0:
        raise ValueError("delay and jitter must not be negative")
    if queue_limit < 1:
        raise ValueError("queue_limit must be at least 1")
    forward = _Pipe(random.Random(seed * 2), loss, delay, jitter, queue_limit)
    backward = _Pipe(random.Random(seed * 2 + 1), loss, delay, jitter, queue_limit)
    return MemoryLink(backward, forward), MemoryLink(forward, backward)


# -- a file descriptor (TUN) -------------------------------------------------------------

# Errors one packet can earn from a TUN device without the device being gone: no buffer
# space, too big, or not an IP packet the kernel would take.
_DROP_ERRNOS = frozenset({errno.ENOBUFS, errno.EMSGSIZE, errno.EINVAL})
# What an offloading device may hand over in one read: a GSO super-packet, up to the
# largest IPv6 packet without a jumbo payload (RFC 8200 §3: 40 + 65535 bytes).
_LARGEST_PACKET = 40 + 65535


class TunLink:
    """A link over a non-blocking file descriptor that carries one IP packet per
    ``read``/``write``: a Linux TUN device opened with ``IFF_TUN | IFF_NO_PI`` (for
    example an ``l3l4_tun.TunDevice``'s ``.fd``), or a datagram socket in tests.

    The fd must already be non-blocking. Reading goes until ``BlockingIOError`` (at most
    ``batch`` packets per call, each of at most ``mtu`` bytes), then waits with
    :func:`trio.lowlevel.wait_readable`. :meth:`aclose` calls
    :func:`trio.lowlevel.notify_closing` first, so a task blocked on the fd wakes with
    :exc:`trio.ClosedResourceError`; the fd itself is closed only with ``close_fd=True``
    (otherwise its owner closes it, after the link).

    ``offload=True`` is for a TUN device opened with ``IFF_VNET_HDR`` and checksum and
    TCP segmentation offload turned on (``TUNSETOFFLOAD``), such as
    ``l3l4_tun.TunDevice(offload=True)``'s fd: every packet read or written then starts
    with a virtio-net header (:mod:`l3l4.wire.vnet`). Reads take super-packets of up to
    64 KiB whatever ``mtu`` says, and :func:`~l3l4_trio.open_stack` uses the link as an
    :class:`OffloadLink`: the kernel's checksum verdicts go to the stack, TCP packets
    larger than the stack's MTU are written for the kernel to segment, and TCP packets
    whose checksum the stack left partial (``Config.tcp_checksum_offload``) are marked
    for the kernel to complete (``NEEDS_CSUM``). Without ``offload``
    the fd carries raw IP packets (``TunDevice(offload=False)``).

    ``write_drops`` counts packets the kernel refused one by one (``ENOBUFS``,
    ``EMSGSIZE``, ``EINVAL``); any other error breaks the link.
    """

    def __init__(
        self, fd: int, *, mtu: int = 65535, batch: int = 64, close_fd: bool = False, offload: bool = False
    ) -> None:
        if os.get_blocking(fd):
            raise ValueError(f"fd {fd} is blocking; open it with O_NONBLOCK or call os.set_blocking(fd, False)")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._fd = fd
        self._size = VNET_HEADER + max(mtu, _LARGEST_PACKET) if offload else mtu
        self._batch = batch
        self._close_fd = close_fd
        self._closed = False
        self._stack: Stack[bytearray] | None = None
        self._receive_guard = Guard("another task is already receiving on this link")
        self._send_guard = Guard("another task is already sending on this link")
        self.offload = offload
        """Every packet read or written carries a virtio-net header."""
        self.write_drops = 0

    def fileno(self) -> int:
        return self._fd

    def attach(self, stack: Stack[bytearray]) -> None:
        """Take segment sizes and the checksum mode from ``stack``
        (:func:`~l3l4_trio.open_stack` calls this). With ``offload``, a packet larger than
        ``stack.config.mtu`` is written with a GSO header, and with
        ``stack.config.tcp_checksum_offload`` every TCP packet is marked ``NEEDS_CSUM``;
        before a stack is attached, every packet is written whole and complete."""
        self._stack = stack

    async def receive_packets(self) -> list[bytes]:
        """Wait until the fd is readable; return every packet it has (up to ``batch``).

        With ``offload`` the virtio-net headers are cut off, and with them the kernel's
        word on checksums: a packet of its own has only a partial one, which fails
        verification. :meth:`receive_offloaded` keeps that word.
        """
        if self.offload:
            return [raw[VNET_HEADER:] for raw in await self._read()]
        return await self._read()

    async def receive_offloaded(self) -> list[tuple[Packet, bool]]:
        """:meth:`receive_packets`, each packet with whether the kernel vouched for its
        checksums (always ``False`` without ``offload``)."""
        if self.offload:
            return [(memoryview(raw)[VNET_HEADER:], checksum_trusted(raw)) for raw in await self._read()]
        return [(raw, False) for raw in await self._read()]

    async def _read(self) -> list[bytes]:
        """Every read the fd has (up to ``batch``), waiting for the first."""
        with self._receive_guard:
            await trio.lowlevel.checkpoint_if_cancelled()
            waited = False
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("the link is closed")
                packets: list[bytes] = []
                eof = False
                try:
                    while len(packets) < self._batch:
                        packet = os.read(self._fd, self._size)
                        if not packet:
                            eof = True
                            break
                        packets.append(packet)
                except BlockingIOError:
                    pass
                except OSError as exc:
                    raise trio.BrokenResourceError(f"reading the link failed: {exc}") from exc
                if packets:
                    if not waited:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    return packets
                if eof:
                    raise trio.BrokenResourceError("the link's other end is closed")
                waited = True
                await trio.lowlevel.wait_readable(self._fd)

    async def send_packets(self, packets: Sequence[Packet]) -> None:
        """Write each packet (after its virtio-net header, with ``offload``), waiting with
        :func:`trio.lowlevel.wait_writable` while the fd pushes back. If cancelled while
        waiting, the packets before have been sent."""
        with self._send_guard:
            await trio.lowlevel.checkpoint_if_cancelled()
            waited = False
            for packet in packets:
                header = self._vnet_header(packet) if self.offload else b""
                while True:
                    if self._closed:
                        raise trio.ClosedResourceError("the link is closed")
                    try:
                        if header:
                            os.writev(self._fd, (header, packet))
                        else:
                            os.write(self._fd, packet)
                        break
                    except BlockingIOError:
                        waited = True
                        await trio.lowlevel.wait_writable(self._fd)
                    except OSError as exc:
                        if exc.errno in _DROP_ERRNOS:
                            self.write_drops += 1
                            break
                        raise trio.BrokenResourceError(f"writing the link failed: {exc}") from exc
            if not waited:
                await trio.lowlevel.cancel_shielded_checkpoint()

    def _vnet_header(self, packet: Packet) -> bytes:
        """The virtio-net header to write before ``packet``."""
        stack = self._stack
        if stack is None:
            return NO_OFFLOAD_HEADER
        return transmit_header(packet, stack.config.mtu, stack.tso_segment_size, stack.config.tcp_checksum_offload)

    async def aclose(self) -> None:
        """Stop using the fd (waking blocked tasks), and close it if ``close_fd``."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._fd)
            if self._close_fd:
                os.close(self._fd)
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
