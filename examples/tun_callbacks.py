"""The TUN side of the two l3l4kit-style examples, ``callbacks_echo.py`` and
``callbacks_proxy.py``: what an l3l4kit user writes around the stack.

- ``l3_tx_buffer`` lends a buffer from a bounded pool of ``bytearray``\\ s, each the
  device's MTU long (an mbuf: longer than most packets); ``l3_tx`` writes the packet to
  the TUN device and puts the buffer back in the pool at once. When the pool is empty
  the stack keeps its TCP segments and sends them at the next call.
- An epoll loop reads the device's packets into ``l3_rx``, calls ``l4_poll`` when it
  asks to be called, and runs handlers for other file descriptors (the proxy's
  upstream sockets).

The device is opened without offloads: every packet is a plain IPv4 or IPv6 packet
of at most the MTU.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import time
from collections.abc import Callable

from l3l4 import CallbackStack, Config, Flow
from l3l4_tun import TunDevice
from l3l4_tun.cli import open_device

__all__ = ["TunCallbackApp", "open_plain_device"]


def open_plain_device(args: argparse.Namespace) -> TunDevice:
    """The device ``l3l4_tun.cli.add_device_arguments`` options name, without offloads:
    ``l3_tx`` writes plain IP packets, no virtio-net header."""
    args.no_offload = True
    return open_device(args)


class TunCallbackApp:
    """Base of the examples: the pool, the transmit callbacks and the loop. Subclasses
    implement ``l4_rx`` (and the optional ``l4_opened``, ``l4_writable``,
    ``l4_closed``) and may override :meth:`after_rx`."""

    def __init__(self, device: TunDevice, config: Config, pool_size: int = 256) -> None:
        if device.vnet_hdr:
            raise ValueError("open the device without offloads: TunDevice(name, offload=False)")
        self.device = device
        self.buffer_size = config.mtu
        self.pool = [bytearray(config.mtu) for _ in range(pool_size)]
        self.pool_size = pool_size
        self.tx_dropped = 0
        """Packets the device's queue had no room for (lost, as on a wire)."""
        self.now = time.monotonic()
        self.stopping = False
        self._epoll = select.epoll()
        self._handlers: dict[int, Callable[[int], None]] = {}
        self.net: CallbackStack[bytearray] = CallbackStack(self, config)
        self.watch(device.fileno(), select.EPOLLIN, self._on_device)

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        raise NotImplementedError("the application's own")

    # -- the transmit callbacks --------------------------------------------------------

    def l3_tx_buffer(self, size: int) -> bytearray | None:
        if size > self.buffer_size or not self.pool:
            return None  # the stack keeps TCP segments for the next call
        return self.pool.pop()

    def l3_tx_buffer_mut(self, buffer: bytearray) -> memoryview:
        return memoryview(buffer)

    def l3_tx(self, packet: bytearray, length: int) -> None:
        try:
            os.write(self.device.fileno(), memoryview(packet)[:length])
        except BlockingIOError:
            self.tx_dropped += 1
        finally:
            self.pool.append(packet)  # recycled inline: the stack may ask for it next

    # -- the loop ----------------------------------------------------------------------

    def watch(self, fd: int, events: int, handler: Callable[[int], None]) -> None:
        """Call ``handler(mask)`` when ``fd`` is ready for ``events``; again to change them."""
        if fd in self._handlers:
            self._epoll.modify(fd, events)
        else:
            self._epoll.register(fd, events)
        self._handlers[fd] = handler

    def unwatch(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def after_rx(self, flow: Flow) -> None:
        """Called after each ``l3_rx`` that named ``flow``: the l3l4kit moment to retry
        data an ``l4_tx`` did not take."""

    def run(self, until: Callable[[], bool] | None = None, check_every: float = 0.05) -> None:
        """Serve until :meth:`stop` (or SIGINT/SIGTERM under :meth:`serve_forever`), or
        until ``until()`` is true (checked at least every ``check_every`` seconds)."""
        self.now = time.monotonic()
        deadline = self.net.l4_poll(self.now)
        while not self.stopping and not (until is not None and until()):
            timeout = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
            if until is not None:
                timeout = check_every if timeout < 0 else min(timeout, check_every)
            try:
                ready = self._epoll.poll(timeout)
            except InterruptedError:
                ready = []
            self.now = time.monotonic()
            for fd, mask in ready:
                handler = self._handlers.get(fd)
                if handler is not None:  # an earlier handler may have closed it
                    handler(mask)
            # Timers due, segments that waited for a buffer, and the next deadline.
            deadline = self.net.l4_poll(self.now)

    def stop(self) -> None:
        self.stopping = True

    def serve_forever(self, grace: float = 2.0) -> None:
        """Run until SIGINT or SIGTERM, then close every flow and give them ``grace``
        seconds to finish."""
        # A signal wakes the loop through a pipe (epoll itself retries on EINTR).
        wakeup, woken = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(woken)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stop())
        self.watch(wakeup, select.EPOLLIN, lambda mask: self._drain(wakeup))
        try:
            self.run()
        finally:
            self.unwatch(wakeup)
            signal.set_wakeup_fd(-1)
            os.close(wakeup)
            os.close(woken)
        self.stopping = False
        for flow in self.net.stack.flows():
            self.net.close(flow, self.now)
        end = time.monotonic() + grace
        self.run(until=lambda: not self.net.stack.flows() or time.monotonic() > end)

    @staticmethod
    def _drain(fd: int) -> None:
        os.read(fd, 64)

    def serve_until_signalled(self, banner: str) -> None:
        """The examples' ``main``: say what is served, serve until SIGINT or SIGTERM,
        then close the loop and the device."""
        print(banner, flush=True)
        try:
            self.serve_forever()
        finally:
            self.close()
            self.device.close()

    def close(self) -> None:
        self._epoll.close()

    def _on_device(self, mask: int) -> None:
        while (packet := self.device.read()) is not None:
            flow = self.net.l3_rx(packet, self.now)
            if flow is not None:
                self.after_rx(flow)
