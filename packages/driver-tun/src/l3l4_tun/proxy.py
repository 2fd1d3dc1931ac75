"""A transparent TCP and UDP proxy for every address routed into a TUN device.

Each TCP connection and UDP flow is carried over an ordinary OS socket to the address
its client asked for, or to one upstream for all of them. A TCP client's SYN is
answered only once the upstream connection is made, and with a reset if the upstream
refuses (manual accept). Bytes wait in bounded buffers both ways: a slow upstream
closes the client's TCP window, a slow client stops reads from the upstream. A FIN in
either direction is passed on as a half-close. ``l3l4-tun proxy`` serves it.

Transparent mode (no upstream) connects to each flow's own destination through the
host's routing table. Where the prefixes routed into the device apply, that
connection would go back into the device and become a new flow, and so on without
end; so flows to the proxy's ``routed`` prefixes are refused. Transparent mode needs
its clients in another namespace or on another host, and the destinations reachable
from the proxy some other way.
"""

from __future__ import annotations

import argparse
import errno
import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

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


Address = tuple[socket.AddressFamily, tuple[Any, ...]]
"""A socket family and a socket address in it, ready for ``connect``."""


@dataclass(eq=False)
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
    orphaned: bool = False
    """The client's flow closed gracefully with ``to_upstream`` not yet written: the
    socket stays open (in :attr:`Proxy.draining`) until it is, then closes."""


class Proxy:
    """The handler: a relay per flow. Run its stack with ``Config(accept="manual",
    rx_manual_consume=True)`` (see :meth:`config`)."""

    def __init__(
        self,
        upstream: tuple[str, int] | None = None,
        buffer_limit: int = 256 * 1024,
        routed: Iterable[str | IPv4Network | IPv6Network] = (),
        max_draining: int = 64,
    ) -> None:
        """``upstream`` is resolved here, once (``OSError`` if it cannot be), so no
        flow waits on a DNS lookup. ``routed``: the prefixes routed into the device;
        without ``upstream``, flows to them are refused (see the module's notes), and an
        ``upstream`` inside them is a ``ValueError``: every flow would loop.
        ``max_draining`` bounds the relays still writing to an upstream after their
        client left (each holds a socket and up to a window of bytes): past it, the
        oldest is reset."""
        if max_draining < 1:
            raise ValueError("max_draining must be at least 1")
        self.upstream = upstream
        self.routed = [ip_network(prefix, strict=False) for prefix in routed]
        self._upstream_address: Address | None = None
        if upstream is not None:
            try:
                family, _, _, _, address = socket.getaddrinfo(*upstream, type=socket.SOCK_STREAM)[0]
            except socket.gaierror as error:
                raise OSError(f"cannot resolve upstream {upstream[0]}: {error.strerror}") from error
            if any(ip_address(address[0]) in prefix for prefix in self.routed):
                raise ValueError(f"upstream {address[0]} is routed into the device: every flow would loop")
            self._upstream_address = family, address
        self.buffer_limit = buffer_limit
        self.relays: dict[Flow, Relay] = {}
        self.max_draining = max_draining
        self.draining: dict[Relay, None] = {}
        """Relays whose client has gone while bytes toward the upstream remain, oldest
        first."""
        self.drains_cut = 0
        """Draining relays reset to stay within ``max_draining``."""
        self.refused = 0
        """Flows refused because the upstream refused or was unreachable."""
        self.looped = 0
        """Flows refused because their destination is routed into the device."""
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

    def target(self, flow: Flow) -> Address:
        """Where ``flow`` goes: the address its client asked for, or the upstream."""
        if self._upstream_address is not None:
            return self._upstream_address
        if flow.local_ip.version == 4:
            return socket.AF_INET, (str(flow.local_ip), flow.local_port)
        return socket.AF_INET6, (str(flow.local_ip), flow.local_port, 0, 0)

    def _refused_as_loop(self, flow: Flow) -> bool:
        """Whether ``flow`` must be refused because its upstream connection would come
        back into the device: in transparent mode, when its destination lies in a
        ``routed`` prefix. Such a flow is counted in :attr:`looped`; the first one is
        reported on stderr."""
        if self.upstream is not None or not any(flow.local_ip in prefix for prefix in self.routed):
            return False
        if not self.looped:
            print(
                f"proxy: refusing flows to {flow.local_ip} and every other address routed into the device: "
                "connecting to them upstream would loop back in (clients must be in another namespace or "
                "host, destinations reachable another way; or give --upstream)",
                file=sys.stderr,
                flush=True,
            )
        self.looped += 1
        return True

    def on_event(self, loop: Loop, event: Event) -> None:
        flow = event.flow
        if isinstance(event, FlowRequested):
            if self._refused_as_loop(flow):
                loop.reject(flow)
            else:
                self._connect_upstream(loop, flow)
        elif isinstance(event, FlowOpened):
            if flow.proto is Proto.UDP:
                if not self._refused_as_loop(flow):
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
            if relay is None:
                return
            if relay.to_upstream and event.reason not in _ABORTIVE:
                # Closed gracefully, but the upstream has not taken everything the
                # client sent: write the rest, then shut down and close.
                relay.orphaned = True
                self.draining[relay] = None
                if len(self.draining) > self.max_draining:
                    oldest = next(iter(self.draining))
                    del self.draining[oldest]
                    self.drains_cut += 1
                    self._drop(loop, oldest, abortive=True)
                self._read_upstream(loop, relay, False)
                self._flush_upstream(loop, relay)
            else:
                self._drop(loop, relay, abortive=event.reason in _ABORTIVE)

    # -- TCP ------------------------------------------------------------------------------

    def _connect_upstream(self, loop: Loop, flow: Flow) -> None:
        family, address = self.target(flow)
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            self.refused += 1
            loop.reject(flow)
            return
        sock.setblocking(False)
        code = sock.connect_ex(address)
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
            if sent and not relay.orphaned:
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
                return
        if relay.orphaned:
            self.draining.pop(relay, None)
            self._drop(loop, relay, abortive=False)

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
        """The upstream connection broke: reset the client's (if it is still there)."""
        self._drop(loop, relay, abortive=True)
        self.draining.pop(relay, None)
        if self.relays.get(relay.flow) is relay:
            del self.relays[relay.flow]
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
        family, address = self.target(flow)
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(address)
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
    """``HOST:PORT`` (``[IPV6]:PORT`` too) as a ``(host, port)`` pair, for argparse;
    the port must be 1..65535."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    if not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"port {int(port)} is outside 1..65535")
    return host.strip("[]"), int(port)

