"""Transparent TCP and UDP proxy for every address routed into a TUN device.

    sudo python examples/proxy.py --tun l3l4proxy --route 2001:db8:f::/48 --upstream 127.0.0.1:8080
    sudo python examples/proxy.py --tun l3l4proxy --route 203.0.113.0/24

Each TCP connection and UDP flow is carried over an ordinary OS socket to the address
its client asked for, or to ``--upstream`` for all of them (``l3l4_tun.proxy.Proxy``:
manual accept, bounded buffers both ways, half-close passed on). ``l3l4-tun proxy`` is
the same server with a stats line, a summary and ``--pcap``.

Without ``--upstream``, flows to the ``--route`` prefixes are refused: their upstream
connection would be routed back into the device. Transparent mode is for clients in
another namespace or on another host whose traffic reaches the device (by policy
routing, say), toward destinations this host reaches some other way.
"""

from __future__ import annotations

import argparse

from l3l4 import Stack
from l3l4_tun import serve
from l3l4_tun.cli import add_device_arguments, open_device, stack_config
from l3l4_tun.proxy import Proxy, parse_upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_device_arguments(parser)
    parser.add_argument("--upstream", type=parse_upstream, help="send every flow to HOST:PORT instead")
    args = parser.parse_args()
    proxy = Proxy(args.upstream, routed=args.route)  # resolves --upstream once, before the device
    device = open_device(args)
    print(f"proxying on {device.name} for {', '.join(args.route) or 'whatever is routed to it'}; Ctrl-C stops")
    serve([device], proxy, Stack(stack_config(args, Proxy.config())), graceful_timeout=2.0)


if __name__ == "__main__":
    main()
