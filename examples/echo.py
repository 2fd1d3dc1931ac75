"""Echo server for TCP and UDP on every address routed into a TUN device: a whole
l3l4 program in a dozen lines.

    sudo python examples/echo.py --tun l3l4echo --route 203.0.113.0/24 --route 2001:db8:e::/48

Every TCP connection and UDP datagram to any address in those prefixes is echoed back,
with backpressure (``l3l4.apps.Echo`` on a stack with ``Echo.config()``: a client that
does not read finds the window closed). ``l3l4-tun echo`` is the same server with a
stats line, a summary and ``--pcap``.
"""

from __future__ import annotations

import argparse

from l3l4 import Stack
from l3l4.apps import Echo
from l3l4_tun import serve
from l3l4_tun.cli import add_device_arguments, open_device, stack_config


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_device_arguments(parser)
    args = parser.parse_args()
    device = open_device(args)
    print(f"echoing on {device.name} for {', '.join(args.route) or 'whatever is routed to it'}; Ctrl-C stops")
    serve([device], Echo(), Stack(stack_config(args, Echo.config())), graceful_timeout=2.0)


if __name__ == "__main__":
    main()
