"""Echo server for TCP and UDP on every address routed into a TUN device.

    sudo python examples/echo.py --tun l3l4echo --route 203.0.113.0/24 --route 2001:db8:e::/48

Every TCP connection and UDP datagram to any address in those prefixes is echoed back,
with backpressure: bytes the stack cannot take yet wait until it signals ``Writable``.
(The l3l4kit ``echo_server``, done with flow control.)
"""

from __future__ import annotations

import argparse

from l3l4 import (
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowClosed,
    Proto,
    Stack,
    Writable,
)
from l3l4_tun import Loop, serve
from l3l4_tun.cli import add_device_arguments, open_device, stack_config


class Echo:
    """Sends every byte back on the flow it came from; closes after the peer does."""

    def __init__(self) -> None:
        self.pending: dict[Flow, bytearray] = {}
        self.finishing: set[Flow] = set()
        self.bytes_echoed = 0

    def on_event(self, loop: Loop, event: Event) -> None:
        flow = event.flow
        if isinstance(event, DataReceived):
            if flow.proto is Proto.UDP:
                self.bytes_echoed += loop.send(flow, event.data)
                return
            self.pending.setdefault(flow, bytearray()).extend(event.data)
            self._flush(loop, flow)
        elif isinstance(event, Writable):
            self._flush(loop, flow)
        elif isinstance(event, EndOfStream):
            self.finishing.add(flow)
            self._flush(loop, flow)
        elif isinstance(event, FlowClosed):
            self.pending.pop(flow, None)
            self.finishing.discard(flow)

    def _flush(self, loop: Loop, flow: Flow) -> None:
        buffer = self.pending.get(flow)
        if buffer:
            taken = loop.send(flow, buffer)
            self.bytes_echoed += taken
            del buffer[:taken]
        if flow in self.finishing and not buffer:
            self.finishing.discard(flow)
            self.pending.pop(flow, None)
            loop.close(flow)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_device_arguments(parser)
    args = parser.parse_args()
    device = open_device(args)
    print(f"echoing on {device.name} for {', '.join(args.route) or 'whatever is routed to it'}; Ctrl-C stops")
    config = stack_config(args)
    serve([device], Echo(), Stack(config), graceful_timeout=2.0)


if __name__ == "__main__":
    main()
