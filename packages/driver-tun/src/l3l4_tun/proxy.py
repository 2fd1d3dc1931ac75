"""A transparent TCP and UDP proxy for every address routed into a TUN device.

Each TCP connection and UDP flow is carried over an ordinary OS socket to the address
its client asked for, or to one upstream for all of them. A TCP client's SYN is
answered only once the upstream connection is made, and with a reset if the upstream
refuses (manual accept). Bytes wait in bounded buffers both ways: a slow upstream
closes the client's TCP window, a slow client stops reads from the upstream. A FIN in
either direction is passed on as a half-close. ``l3l4-tun proxy`` serves it.
"""

from __future__ import annotations

import argparse
import errno
import socket
import struct
from dataclasses import dataclass, field

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowClosed,
    FlowOpened,
    FlowRequested,
    Proto,
    Writable,
)

from .loop import Loop

__all__ = ["Proxy", "Relay", "parse_upstream"]

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
_ABORTIVE = (CloseReason.RESET, CloseReason.ABORTED, CloseReason.TIMED_OUT, CloseReason.IDLE, CloseReason.EVICTED)


@dataclass
class Relay:
    """One flow and the upstream socket that carries it."""

    flow: Flow
    sock: socket.socket
    to_upstream: bytearray = field(default_factory=bytearray)
    """From the client, not yet written to the upstream socket."""
    to_client: bytearray = field(default_factory=bytearray)
    """From the upstream, not yet taken by the stack."""
    client_done: bool = False
    """The client sent its FIN: shut the upstream's write side once ``to_upstream`` is out."""
    upstream_done: bool = False
    """The upstream sent its FIN: close toward the client once ``to_client`` is out."""
    reading: bool = False
    writing: bool = False


class Proxy:
    """The handler: a relay per flow. Run its stack with ``Config(accept="manual",
    rx_manual_consume=True)`` (see :meth:`config`)."""

    def __init__(self, upstream: tuple[str, int] | None = None, buffer_limit: int = 256 * 1024) -> None:
        self.upstream = upstream
        self.buffer_limit = buffer_limit
        self.relays: dict[Flow, Relay] = {}
        self.refused = 0
        self.peak_to_client = 0
        """The most bytes a relay held toward its client: never above ``buffer_limit``,
        whatever the transfer size, because a full buffer stops reads upstream."""
        self.peak_to_upstream = 0
        """The most bytes a relay held toward its upstream: never above the stack's
        receive window, which only reopens by what the upstream took."""

    @staticmethod
    def config(**overrides: object) -> Config:
        """A stack configuration the proxy needs: manual accept and manual consume."""
        return Config(accept="manual", rx_manual_consume=True, **overrides)  # type: ignore[arg-type]

    def target(self, flow: Flow) -> tuple[str, int]:
        """Where ``flow`` goes: the address its client asked for, or the override."""
        return self.upstream if self.upstream is not None else (str(flow.local_ip), flow.local_port)

    def on_event(self, loop: Loop, event: Event) -> None:
        flow = event.flow
        if isinstance(event, FlowRequested):
            self._connect_upstream(loop, flow)
        elif isinstance(event, FlowOpened):
            if flow.proto is Proto.UDP:
                self._open_udp(loop, flow)
            else:
                self._read_upstream(loop, self.relays[flow], True)
        elif isinstance(event, DataReceived):
            relay = self.relays.get(flow)
            if relay is None:
                return
            if flow.proto is Proto.UDP:
                try:
                    relay.sock.send(event.data)
                except OSError:
                    pass  # UDP: a datagram the upstream path refused is lost, as on any network
                return
            relay.to_upstream += event.data
            self.peak_to_upstream = max(self.peak_to_upstream, len(relay.to_upstream))
            self._flush_upstream(loop, relay)
        elif isinstance(event, EndOfStream):
            relay = self.relays.get(flow)
            if relay is not None:
                relay.client_done = True
                self._flush_upstream(loop, relay)
        elif isinstance(event, Writable):
            relay = self.relays.get(flow)
            if relay is not None:
                self._flush_client(loop, relay)
        elif isinstance(event, FlowClosed):
            relay = self.relays.pop(flow, None)
            if relay is not None:
                self._drop(loop, relay, abortive=event.reason in _ABORTIVE)

    # -- TCP ------------------------------------------------------------------------------

    def _connect_upstream(self, loop: Loop, flow: Flow) -> None:
        host, port = self.target(flow)
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
        except OSError:
            self.refused += 1
            loop.reject(flow)
            return
        sock.setblocking(False)
        code = sock.connect_ex(info[4])
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.refused += 1
            loop.reject(flow)
            return
        relay = self.relays[flow] = Relay(flow, sock, writing=True)
        loop.add_writer(sock.fileno(), lambda: self._on_connected(loop, relay))

    def _on_connected(self, loop: Loop, relay: Relay) -> None:
        loop.remove_writer(relay.sock.fileno())
        relay.writing = False
        if relay.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            # The upstream refused or is unreachable: refuse the client just as honestly.
            del self.relays[relay.flow]
            relay.sock.close()
            self.refused += 1
            loop.reject(relay.flow)
            return
        loop.accept(relay.flow)

    def _flush_upstream(self, loop: Loop, relay: Relay) -> None:
        """Write what the client sent; the client's window reopens only by what the
        upstream took (``consumed``), so a slow upstream slows the client."""
        if relay.to_upstream:
            try:
                sent = relay.sock.send(relay.to_upstream)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._fail(loop, relay)
                return
            del relay.to_upstream[:sent]
            if sent:
                loop.consumed(relay.flow, sent)
        if relay.to_upstream:
            if not relay.writing:
                relay.writing = True
                loop.add_writer(relay.sock.fileno(), lambda: self._flush_upstream(loop, relay))
            return
        if relay.writing:
            relay.writing = False
            loop.remove_writer(relay.sock.fileno())
        if relay.client_done:
            relay.client_done = False
            try:
                relay.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._fail(loop, relay)

    def _read_upstream(self, loop: Loop, relay: Relay, on: bool) -> None:
        if on and not relay.reading:
            loop.add_reader(relay.sock.fileno(), lambda: self._on_upstream_readable(loop, relay))
        elif not on and relay.reading:
            loop.remove_reader(relay.sock.fileno())
        relay.reading = on

    def _on_upstream_readable(self, loop: Loop, relay: Relay) -> None:
        try:
            data = relay.sock.recv(max(self.buffer_limit - len(relay.to_client), 1))
        except BlockingIOError:
            return
        except OSError:
            self._fail(loop, relay)
            return
        if not data:
            relay.upstream_done = True
            self._read_upstream(loop, relay, False)
        relay.to_client += data
        self.peak_to_client = max(self.peak_to_client, len(relay.to_client))
        self._flush_client(loop, relay)

    def _flush_client(self, loop: Loop, relay: Relay) -> None:
        """Give the stack what the upstream sent; stop reading the upstream while the
        stack's send buffer is full (it says ``Writable`` when it has room again)."""
        if relay.to_client:
            taken = loop.send(relay.flow, relay.to_client)
            del relay.to_client[:taken]
        if relay.upstream_done:
            if not relay.to_client:
                relay.upstream_done = False
                loop.close(relay.flow)
            return
        self._read_upstream(loop, relay, len(relay.to_client) < self.buffer_limit)

    def _fail(self, loop: Loop, relay: Relay) -> None:
        """The upstream connection broke: reset the client's."""
        self.relays.pop(relay.flow, None)
        self._drop(loop, relay, abortive=True)
        loop.abort(relay.flow)

    def _drop(self, loop: Loop, relay: Relay, abortive: bool) -> None:
        self._read_upstream(loop, relay, False)
        if relay.writing:
            loop.remove_writer(relay.sock.fileno())
            relay.writing = False
        if abortive and relay.flow.proto is Proto.TCP:
            relay.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        relay.sock.close()

    # -- UDP ------------------------------------------------------------------------------

    def _open_udp(self, loop: Loop, flow: Flow) -> None:
        host, port = self.target(flow)
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(info[4])
        except OSError:
            self.refused += 1
            return
        relay = self.relays[flow] = Relay(flow, sock)
        relay.reading = True
        loop.add_reader(sock.fileno(), lambda: self._on_datagrams(loop, relay))

    def _on_datagrams(self, loop: Loop, relay: Relay) -> None:
        while True:
            try:
                datagram = relay.sock.recv(65535)
            except BlockingIOError:
                return
            except OSError:
                continue  # an ICMP error for an earlier datagram: the next may pass
            loop.send(relay.flow, datagram)


def parse_upstream(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPV6]:PORT`` too) as a ``(host, port)`` pair, for argparse."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)

