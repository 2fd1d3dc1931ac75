"""A blocking event loop that serves a :class:`~l3l4.Stack` on TUN devices.

It sleeps in ``select``/``epoll`` until a device is readable, another registered file
is ready, or the stack's next deadline comes; it never spins and never polls on a
timer of its own.
"""

from __future__ import annotations

import os
import selectors
import signal
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Protocol

from l3l4 import Config, Event, Flow, Output, Stack
from l3l4.wire.vnet import VNET_HEADER, checksum_trusted, completed, is_tcp, offloading, transmit_header

from .device import TunDevice

__all__ = ["Loop", "Handler", "Recorder", "default_stack", "serve"]


class Handler(Protocol):
    """What the application implements: it hears every event of the stack."""

    def on_event(self, loop: Loop, event: Event) -> None: ...


class Recorder(Protocol):
    """Gets every packet in and out (for a pcap writer, say)."""

    def record(self, packet: bytes | bytearray | memoryview, outbound: bool, now: float) -> None: ...


class Loop:
    """Moves packets between TUN devices and a stack, time into it, events out of it.

    The application acts through the loop's methods (:meth:`send`, :meth:`close`...):
    they call the stack and write what it produced at once. Other file descriptors
    (upstream sockets of a proxy) join the same loop with :meth:`add_reader` /
    :meth:`add_writer`.
    """

    def __init__(
        self,
        stack: Stack[bytearray],
        devices: Sequence[TunDevice],
        handler: Handler,
        *,
        recorder: Recorder | None = None,
        batch: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if stack.config.tcp_checksum_offload and not all(device.vnet_hdr for device in devices):
            raise ValueError("Config.tcp_checksum_offload needs devices opened with offload=True")
        self.stack = stack
        self.devices = list(devices)
        self.handler = handler
        self.recorder = recorder
        self.batch = batch
        self.clock = clock
        self.tx_dropped = 0
        """Packets the kernel refused because a device queue was full."""
        self._selector = selectors.DefaultSelector()
        self._callbacks: dict[tuple[int, int], Callable[[], None]] = {}
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        for device in self.devices:
            self._selector.register(device.fd, selectors.EVENT_READ, device)
        self._out = self.devices[0]
        self._mtu = stack.config.mtu
        self._partial = stack.config.tcp_checksum_offload

    @property
    def now(self) -> float:
        return self.clock()

    # -- the application's calls ---------------------------------------------------------

    def send(self, flow: Flow, data: bytes | bytearray | memoryview) -> int:
        """``stack.l4_tx``; returns the bytes accepted."""
        out = self.stack.l4_tx(flow, data, self.now)
        self.dispatch(out)
        return out.accepted

    def connect(self, flow: Flow) -> None:
        self.dispatch(self.stack.connect(flow, self.now))

    def close(self, flow: Flow) -> None:
        self.dispatch(self.stack.close(flow, self.now))

    def abort(self, flow: Flow) -> None:
        self.dispatch(self.stack.abort(flow, self.now))

    def accept(self, flow: Flow) -> None:
        self.dispatch(self.stack.accept(flow, self.now))

    def reject(self, flow: Flow) -> None:
        self.dispatch(self.stack.reject(flow, self.now))

    def consumed(self, flow: Flow, count: int) -> None:
        self.dispatch(self.stack.consumed(flow, count, self.now))

    def add_reader(self, fileobj: int, callback: Callable[[], None]) -> None:
        self._watch(fileobj, selectors.EVENT_READ, callback)

    def remove_reader(self, fileobj: int) -> None:
        self._unwatch(fileobj, selectors.EVENT_READ)

    def add_writer(self, fileobj: int, callback: Callable[[], None]) -> None:
        self._watch(fileobj, selectors.EVENT_WRITE, callback)

    def remove_writer(self, fileobj: int) -> None:
        self._unwatch(fileobj, selectors.EVENT_WRITE)

    def stop(self) -> None:
        """Make :meth:`run` return (safe from a signal handler or another thread)."""
        self._stopping = True
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass

    # -- running ------------------------------------------------------------------------

    def dispatch(self, out: Output[bytearray]) -> None:
        """Transmit an Output's packets, then hand its events to the handler."""
        if out.packets:
            now = self.clock()
            transmit = self.transmit
            for packet in out.packets:
                transmit(packet, now)
        for event in out.events:
            self.handler.on_event(self, event)

    # -- the packet path: subclasses may put a layer between device and stack here -------

    def receive(self, packet: bytes | memoryview, trusted: bool, now: float) -> None:
        """Give one packet read from a device to the stack (``trusted``: its checksums
        need no verification)."""
        if self.recorder is not None:
            self.recorder.record(packet, False, now)
        self.dispatch(self.stack.l3_rx(packet, now, trusted))

    def transmit(self, packet: bytearray, now: float) -> None:
        """Write one packet of the stack's to the device that last had input."""
        if self.recorder is not None:
            # A capture shows the checksum the device will complete.
            self.recorder.record(completed(packet) if self._partial and is_tcp(packet) else packet, True, now)
        device = self._out
        if device.vnet_hdr:
            header = transmit_header(packet, self._mtu, self.stack.tso_segment_size, self._partial)
            written = device.write(packet, header)
        else:
            written = device.write(packet)
        if not written:
            self.tx_dropped += 1

    def next_wakeup(self) -> float | None:
        """When :meth:`wakeup` must run next: the stack's next deadline."""
        return self.stack.next_deadline()

    def wakeup(self, now: float) -> None:
        """Run what is due at ``now``: the stack's timers."""
        self.dispatch(self.stack.l4_poll(now))

    def run(self, *, graceful_timeout: float | None = None, handle_signals: bool = False) -> None:
        """Serve until :meth:`stop` (or SIGINT/SIGTERM with ``handle_signals``).

        On the way out every flow is closed gracefully within ``graceful_timeout``
        seconds, or aborted (``None``), so peers are not left hanging.
        """
        previous: dict[signal.Signals, signal.Handlers | Callable[[int, FrameType | None], object] | int | None] = {}
        if handle_signals:
            for number in (signal.SIGINT, signal.SIGTERM):
                previous[number] = signal.signal(number, self._on_signal)
        try:
            self._serve(lambda: self._stopping)
            self._shutdown(graceful_timeout)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def run_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Serve until ``condition()`` holds or ``timeout`` seconds pass (for tests and
        scripted clients); returns whether the condition came true."""
        limit = self.clock() + timeout
        self._serve(lambda: condition() or self.clock() >= limit, limit)
        return condition()

    def close_devices(self) -> None:
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        for device in self.devices:
            device.close()

    def _serve(self, done: Callable[[], bool], limit: float | None = None) -> None:
        clock = self.clock
        while not done():
            deadline = self.next_wakeup()
            if limit is not None:
                deadline = limit if deadline is None else min(deadline, limit)
            timeout = None if deadline is None else max(0.0, deadline - clock())
            for key, mask in self._selector.select(timeout):
                target = key.data
                if isinstance(target, TunDevice):
                    self._read(target)
                elif target is None:
                    self._drain_wakeups()
                else:
                    for flag in (selectors.EVENT_READ, selectors.EVENT_WRITE):
                        callback = self._callbacks.get((key.fd, flag))
                        if mask & flag and callback is not None:
                            callback()
            deadline = self.next_wakeup()
            if deadline is not None:
                now = clock()
                if now >= deadline:
                    self.wakeup(now)

    def _read(self, device: TunDevice) -> None:
        """Read up to a batch of packets, until the device has no more."""
        self._out = device
        vnet = device.vnet_hdr
        receive = self.receive
        for _ in range(self.batch):
            raw = device.read()
            if raw is None:
                return
            if vnet:
                receive(memoryview(raw)[VNET_HEADER:], checksum_trusted(raw), self.clock())
            else:
                receive(raw, False, self.clock())

    def _shutdown(self, graceful_timeout: float | None) -> None:
        flows = self.stack.flows()
        if graceful_timeout is None:
            for flow in flows:
                self.abort(flow)
            return
        for flow in flows:
            self.close(flow)
        self.run_until(lambda: not self.stack.flows(), graceful_timeout)
        for flow in self.stack.flows():
            self.abort(flow)

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        self.stop()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 64):
                pass
        except BlockingIOError:
            pass

    def _watch(self, fileobj: int, flag: int, callback: Callable[[], None]) -> None:
        self._callbacks[(fileobj, flag)] = callback
        try:
            key = self._selector.get_key(fileobj)
        except KeyError:
            self._selector.register(fileobj, flag, "user")
            return
        self._selector.modify(fileobj, key.events | flag, "user")

    def _unwatch(self, fileobj: int, flag: int) -> None:
        self._callbacks.pop((fileobj, flag), None)
        try:
            key = self._selector.get_key(fileobj)
        except KeyError:
            return
        remaining = key.events & ~flag
        if remaining:
            self._selector.modify(fileobj, remaining, "user")
        else:
            self._selector.unregister(fileobj)


def default_stack(devices: Sequence[TunDevice]) -> Stack[bytearray]:
    """A stack with the default :class:`~l3l4.Config`, which, when every device
    offloads, sends 64 KiB TCP packets for the kernel to segment and leaves their
    checksums for it to complete."""
    return Stack(offloading(Config(), all(device.vnet_hdr for device in devices)))


def serve(
    devices: Sequence[TunDevice],
    handler: Handler,
    stack: Stack[bytearray] | None = None,
    *,
    recorder: Recorder | None = None,
    graceful_timeout: float | None = None,
) -> None:
    """Serve ``devices`` with ``handler`` until SIGINT or SIGTERM, then release them.

    Without a ``stack``, :func:`default_stack` makes one. The devices are closed however
    it ends (also when the loop refuses the stack's configuration).
    """
    if stack is None:
        stack = default_stack(devices)
    try:
        loop = Loop(stack, devices, handler, recorder=recorder)
    except BaseException:
        for device in devices:
            device.close()
        raise
    try:
        loop.run(graceful_timeout=graceful_timeout, handle_signals=True)
    finally:
        loop.close_devices()


