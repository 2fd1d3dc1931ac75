"""TCP and UDP echo for every address routed into a TUN device, on the l3l4kit callback
API (l3l4kit's ``examples/echo_server.rs``, ported to :class:`l3l4.CallbackStack`).

    sudo .venv/bin/python examples/callbacks_echo.py --tun cbecho0 --address 192.0.2.1/24 --address 2001:db8::1/64 --route 203.0.113.0/24 --route 2001:db8:e::/48

Then, from the same host: ``socat - TCP:203.0.113.7:7`` or ``nc -u 2001:db8:e::1 53``.
Every byte of a TCP connection comes back, in order; when the client closes its side,
the echo finishes sending and closes too. Every UDP datagram comes back as it was.

Data the stack does not take at once waits in a queue per flow, retried when the
stack says there is room (``l4_writable``) and after every packet of that flow (the
seed's pattern). Bytes count as consumed only once echoed, so a client that sends and
never reads finds the window closed: the echo holds at most a receive window per
connection. Packets leave through a bounded pool of buffers recycled in ``l3_tx``
(``tun_callbacks.py``).
"""

from __future__ import annotations

import argparse

from l3l4 import CloseReason, Config, Flow, Proto
from l3l4_tun import TunDevice
from l3l4_tun.cli import add_device_arguments
from tun_callbacks import TunCallbackApp, open_plain_device


class EchoServer(TunCallbackApp):
    """echo_server.rs: every flow to every address, echoed."""

    @staticmethod
    def config(mtu: int = 1500, **overrides: object) -> Config:
        """Bytes count as consumed once echoed: backpressure to a client that does not read."""
        return Config(mtu=mtu, rx_manual_consume=True, **overrides)  # type: ignore[arg-type]

    def __init__(self, device: TunDevice, config: Config | None = None, pool_size: int = 256) -> None:
        self.pending: dict[Flow, bytearray] = {}
        self.closing: set[Flow] = set()
        super().__init__(device, config or self.config(), pool_size)

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        if flow.proto is Proto.UDP:
            if data is not None:
                self.net.l4_tx(flow, data, self.now)  # the datagram back, or dropped if no buffer
            return
        if data is None:
            self.closing.add(flow)  # the client is done: close once all is echoed
        else:
            self.pending.setdefault(flow, bytearray()).extend(data)
        self.flush(flow)

    def l4_writable(self, flow: Flow) -> None:
        self.flush(flow)

    def l4_closed(self, flow: Flow, reason: CloseReason) -> None:
        self.pending.pop(flow, None)
        self.closing.discard(flow)

    def after_rx(self, flow: Flow) -> None:
        if self.pending.get(flow):
            self.flush(flow)

    def flush(self, flow: Flow) -> None:
        pending = self.pending.get(flow)
        if pending:
            taken = self.net.l4_tx(flow, pending, self.now)
            if taken:
                del pending[:taken]
                self.net.consumed(flow, taken, self.now)  # the window reopens by as much
        if flow in self.closing and not pending:
            self.closing.discard(flow)
            self.pending.pop(flow, None)
            self.net.close(flow, self.now)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_device_arguments(parser)
    parser.add_argument("--pool", type=int, default=256, help="packet buffers in the pool (default 256)")
    args = parser.parse_args()
    device = open_plain_device(args)
    server = EchoServer(device, EchoServer.config(args.mtu), args.pool)
    server.serve_until_signalled(f"echoing on {device.name} for {', '.join(args.route) or 'what is routed to it'}")


if __name__ == "__main__":
    main()
