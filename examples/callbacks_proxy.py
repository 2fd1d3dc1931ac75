"""Every TCP connection routed into a TUN device relayed to one upstream over an ordinary
socket, on the l3l4kit callback API (l3l4kit's ``examples/proxy_server.rs``, ported
to :class:`l3l4.CallbackStack`).

    sudo .venv/bin/python examples/callbacks_proxy.py --tun cbproxy0 --address 192.0.2.1/24 --route 198.18.0.0/15 --upstream 127.0.0.1:8080

Then ``curl http://198.18.0.1/`` reaches whatever listens on 127.0.0.1:8080. Each
flow gets its own upstream connection, opened when the flow opens; bytes go both ways
as they come, half-close passes through (a client's FIN becomes ``shutdown(SHUT_WR)``
upstream, the upstream's EOF a FIN to the client), and a reset either way becomes a
reset on the other side. An upstream that refuses means a reset for the client.

Both directions are bounded: bytes from the client count as consumed only once the
upstream socket took them (the client's window closes behind a slow upstream), and
the upstream is read only while fewer than ``--buffer`` bytes wait for the client.
Those wait in a queue per flow, in order, retried when the stack says there is room
(``l4_writable``) and after every packet of that flow (the seed's pattern). UDP is
not relayed.
"""

from __future__ import annotations

import argparse
import select
import socket
import struct

from l3l4 import CloseReason, Config, Flow, Proto
from l3l4_tun import TunDevice
from l3l4_tun.cli import add_device_arguments
from l3l4_tun.proxy import parse_upstream
from tun_callbacks import TunCallbackApp, open_plain_device

_LINGER_RESET = struct.pack("ii", 1, 0)  # close() sends a reset


class Relay:
    """One client flow and its upstream socket."""

    __slots__ = ("sock", "connected", "to_upstream", "to_client", "client_done", "upstream_done", "shut", "fin_sent")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connected = False
        self.to_upstream = bytearray()
        """From the client, not yet taken by the upstream socket."""
        self.to_client = bytearray()
        """From the upstream, not yet taken by ``l4_tx``: the per-flow pending queue."""
        self.client_done = False
        self.upstream_done = False
        self.shut = False
        self.fin_sent = False


class ProxyServer(TunCallbackApp):
    """proxy_server.rs: each TCP flow relayed to ``upstream``."""

    @staticmethod
    def config(mtu: int = 1500, **overrides: object) -> Config:
        """Bytes count as consumed once the upstream took them: backpressure."""
        return Config(mtu=mtu, rx_manual_consume=True, **overrides)  # type: ignore[arg-type]

    def __init__(
        self,
        device: TunDevice,
        upstream: tuple[str, int],
        config: Config | None = None,
        pool_size: int = 256,
        buffer: int = 256 * 1024,
    ) -> None:
        # Resolved once, before any flow needs it.
        family, _, _, _, address = socket.getaddrinfo(*upstream, type=socket.SOCK_STREAM)[0]
        self.family, self.address = family, address
        self.buffer = buffer
        self.relays: dict[Flow, Relay] = {}
        self.refused = 0
        super().__init__(device, config or self.config(), pool_size)

    # -- the stack's callbacks ---------------------------------------------------------

    def l4_opened(self, flow: Flow) -> None:
        if flow.proto is not Proto.TCP:
            return
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(self.address)  # EINPROGRESS: writable once connected (or refused)
        self.relays[flow] = Relay(sock)
        self.watch(sock.fileno(), select.EPOLLOUT, lambda mask: self._on_upstream(flow, mask))

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        relay = self.relays.get(flow)
        if relay is None:
            return
        if data is None:
            relay.client_done = True
        else:
            relay.to_upstream += data
        self._to_upstream(flow, relay)

    def l4_writable(self, flow: Flow) -> None:
        relay = self.relays.get(flow)
        if relay is not None:
            self._to_client(flow, relay)

    def l4_closed(self, flow: Flow, reason: CloseReason) -> None:
        relay = self.relays.pop(flow, None)
        if relay is None:
            return
        self.unwatch(relay.sock.fileno())
        if reason is not CloseReason.CLOSED:
            relay.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        relay.sock.close()

    def after_rx(self, flow: Flow) -> None:
        relay = self.relays.get(flow)
        if relay is not None and relay.to_client:
            self._to_client(flow, relay)

    # -- the upstream side -------------------------------------------------------------

    def _on_upstream(self, flow: Flow, mask: int) -> None:
        relay = self.relays[flow]
        if not relay.connected:
            if not mask & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                return
            if relay.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.refused += 1
                self.net.abort(flow, self.now)  # l4_closed closes the socket
                return
            relay.connected = True
        if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and not relay.upstream_done:
            try:
                data = relay.sock.recv(65536)
            except BlockingIOError:
                data = None
            except OSError:  # reset: pass it on
                self.net.abort(flow, self.now)
                return
            if data is not None:
                if data:
                    relay.to_client += data
                else:
                    relay.upstream_done = True
                self._to_client(flow, relay)
        if flow in self.relays:
            self._to_upstream(flow, relay)

    def _to_upstream(self, flow: Flow, relay: Relay) -> None:
        if not relay.connected:
            return
        if relay.to_upstream:
            try:
                sent = relay.sock.send(relay.to_upstream)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.net.abort(flow, self.now)
                return
            if sent:
                del relay.to_upstream[:sent]
                self.net.consumed(flow, sent, self.now)
        if relay.client_done and not relay.to_upstream and not relay.shut:
            relay.shut = True
            try:
                relay.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the upstream is gone: its reset comes as a read error
        self._interest(flow, relay)

    def _to_client(self, flow: Flow, relay: Relay) -> None:
        if relay.to_client:
            taken = self.net.l4_tx(flow, relay.to_client, self.now)
            del relay.to_client[:taken]
        if relay.upstream_done and not relay.to_client and not relay.fin_sent:
            relay.fin_sent = True
            self.net.close(flow, self.now)
        if flow in self.relays:
            self._interest(flow, relay)

    def _interest(self, flow: Flow, relay: Relay) -> None:
        """Read the upstream while the client's queue has room; write while bytes wait."""
        events = 0
        if not relay.connected or relay.to_upstream:
            events |= select.EPOLLOUT
        if relay.connected and not relay.upstream_done and len(relay.to_client) < self.buffer:
            events |= select.EPOLLIN
        if events:
            self.watch(relay.sock.fileno(), events, lambda mask: self._on_upstream(flow, mask))
        else:  # nothing to wait for (epoll would report a hang-up over and over)
            self.unwatch(relay.sock.fileno())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_device_arguments(parser)
    parser.add_argument("--upstream", type=parse_upstream, required=True, help="relay every flow to HOST:PORT")
    parser.add_argument("--pool", type=int, default=256, help="packet buffers in the pool (default 256)")
    parser.add_argument("--buffer", type=int, default=256 * 1024, help="bytes held per flow for the client")
    args = parser.parse_args()
    device = open_plain_device(args)
    server = ProxyServer(device, args.upstream, ProxyServer.config(args.mtu), args.pool, args.buffer)
    server.serve_until_signalled(f"proxying on {device.name} to {args.upstream[0]}:{args.upstream[1]}")


if __name__ == "__main__":
    main()
