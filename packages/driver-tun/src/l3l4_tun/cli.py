"""``l3l4-tun``: serve echo, a transparent proxy or HTTP for every address routed into a
TUN device, optionally recording every packet.

    sudo l3l4-tun echo --tun l3l4echo --route 203.0.113.0/24 --route 2001:db8:e::/48
    sudo l3l4-tun proxy --tun l3l4proxy --route 198.18.0.0/15 --upstream 127.0.0.1:8080
    sudo l3l4-tun http --tun l3l4web --route 203.0.113.0/24 --pcap web.pcapng

It prints a stats line to stderr every ``--stats-every`` seconds and a summary (flows,
bytes, drops) when it stops: on Ctrl-C, SIGTERM or after ``--duration``. Also here:
the device options every TUN program repeats (:func:`add_device_arguments`,
:func:`open_device`, :func:`stack_config`), for programs of your own.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from l3l4 import Config, Stack
from l3l4.apps import Echo
from l3l4.config import IPV4_MIN_MTU
from l3l4.wire.vnet import offloading

from .device import TunDevice
from .hello import HttpHello
from .loop import Handler
from .proxy import Proxy, parse_upstream
from .report import ReportingLoop, summary

if TYPE_CHECKING:
    from l3l4_pcap import Recorder as PcapRecorder

__all__ = ["add_device_arguments", "build_parser", "main", "open_device", "stack_config"]

PROG = "l3l4-tun"


def _mtu(text: str) -> int:
    """An MTU for argparse: an integer the stack accepts, 576..65535."""
    try:
        mtu = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not IPV4_MIN_MTU <= mtu <= 65535:
        raise argparse.ArgumentTypeError(f"{mtu} is outside {IPV4_MIN_MTU}..65535")
    return mtu


def _seconds(text: str) -> float:
    """A finite, non-negative number of seconds, for argparse."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(f"expected 0 or more seconds, got {text!r}")
    return seconds


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tun``, ``--address``, ``--route``, ``--mtu`` and ``--no-offload``."""
    parser.add_argument("--tun", default="", help="TUN device name (created if missing; default: kernel-chosen)")
    parser.add_argument(
        "--address", action="append", default=[], help="the kernel's own address on the device, e.g. 192.0.2.1/24"
    )
    parser.add_argument("--route", action="append", default=[], help="prefix to route into the device (repeatable)")
    parser.add_argument(
        "--mtu", type=_mtu, default=1500, help=f"the device's MTU, {IPV4_MIN_MTU}..65535 (default 1500)"
    )
    parser.add_argument("--no-offload", action="store_true", help="open the device without virtio-net offloads")


def open_device(args: argparse.Namespace) -> TunDevice:
    """Open the device the options name, give it its MTU and addresses, bring it up and
    route the prefixes into it. If any step fails, the device is closed (the kernel
    deletes it, with its addresses and routes) before the error propagates."""
    device = TunDevice(args.tun, offload=not args.no_offload)
    try:
        device.set_mtu(args.mtu)
        for address in args.address:
            device.add_address(address)
        device.set_up()
        device.add_routes(args.route)
    except BaseException:
        device.close()
        raise
    return device


def stack_config(args: argparse.Namespace, base: Config | None = None) -> Config:
    """``base`` (default: the default :class:`~l3l4.Config`) with what the device
    options decide: the MTU, and TSO and TCP checksum offload when offloads are on."""
    return offloading(replace(base or Config(), mtu=args.mtu), not args.no_offload)


@dataclass(frozen=True)
class _Command:
    help: str
    description: str
    verb: str
    """What the ready line says it does: "echoing", "proxying"..."""


_COMMANDS = {
    "echo": _Command(
        "echo every TCP connection and UDP datagram back",
        "Serve a TCP and UDP echo, with backpressure, for every address and port routed into the device.",
        "echoing",
    ),
    "proxy": _Command(
        "relay every flow to the address it asked for, or --upstream",
        "A transparent TCP and UDP proxy: each flow is carried over an OS socket to the address "
        "its client asked for, or to --upstream for all of them. A client's SYN is answered once "
        "the upstream connection is made, and with a reset if the upstream refuses. Without "
        "--upstream, run the clients in another namespace or host and make the destinations "
        "reachable another way: flows to the --route prefixes are refused, as their upstream "
        "connection would come back into the device.",
        "proxying",
    ),
    "http": _Command(
        "answer HTTP on every address and port",
        "A small HTTP/1.1 responder: GET / on any address and port says which address it was "
        "served as. One request per connection; no HTTP library, no async framework.",
        "serving HTTP",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``l3l4-tun`` parser: a subcommand per application, each with the device
    options and ``--pcap``, ``--stats-every`` and ``--duration``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve every address routed into a Linux TUN device with the l3l4 stack. Needs root "
        "(or CAP_NET_ADMIN). Prints a stats line while it serves and a summary when it stops.",
        epilog="Example: sudo l3l4-tun echo --tun l3l4echo --route 203.0.113.0/24, then "
        "nc 203.0.113.7 7 from the same host.",
    )
    parser.add_argument(
        "--version", action="version", version=f"{PROG} {version('l3l4-tun')} (l3l4 {version('l3l4')})"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in _COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.description)
        add_device_arguments(sub)
        if name == "proxy":
            sub.add_argument(
                "--upstream", type=parse_upstream, metavar="HOST:PORT", help="send every flow here instead"
            )
        sub.add_argument(
            "--pcap", type=Path, metavar="FILE", help="record every packet to FILE (.pcapng or .pcap; needs l3l4-tun[pcap])"
        )
        sub.add_argument(
            "--stats-every", type=_seconds, default=10.0, metavar="SECONDS",
            help="print a stats line to stderr this often (default 10; 0: never)",
        )
        sub.add_argument(
            "--duration", type=_seconds, metavar="SECONDS", help="stop after this long (default: at Ctrl-C)"
        )
        sub.add_argument(
            "--connections", action="store_true",
            help="print each TCP connection's figures (bytes, RTT, retransmissions, as TCP_INFO) to stderr as it closes",
        )
    return parser


def _pcap_recorder() -> type[PcapRecorder] | None:
    """``l3l4_pcap.Recorder``, or ``None`` without the ``pcap`` extra."""
    try:
        from l3l4_pcap import Recorder
    except ImportError:
        return None
    return Recorder


def _application(args: argparse.Namespace) -> tuple[Handler, Config]:
    """The handler the subcommand names and its stack's base configuration."""
    if args.command == "proxy":
        return Proxy(args.upstream, routed=args.route), Proxy.config()
    if args.command == "http":
        return HttpHello(), Config()
    return Echo(), Echo.config()


def _application_rows(handler: Handler) -> list[tuple[str, int]]:
    """What the handler did, for the summary."""
    if isinstance(handler, Echo):
        return [("bytes echoed", handler.bytes_echoed)]
    if isinstance(handler, Proxy):
        return [
            ("flows refused (upstream unreachable)", handler.refused),
            ("flows refused (destination routed into the device)", handler.looped),
        ]
    if isinstance(handler, HttpHello):
        return [("HTTP requests answered", handler.requests)]
    return []


def _set_up(
    args: argparse.Namespace, recorder_class: type[PcapRecorder] | None
) -> tuple[ReportingLoop, PcapRecorder | None]:
    """The loop the subcommand runs, on its device, and its recorder. Raises
    ``OSError`` or ``ValueError`` if any of it cannot be set up; nothing is left open."""
    handler, base = _application(args)
    config = stack_config(args, base)
    device = open_device(args)
    recorder = None
    try:
        recorder = None if recorder_class is None else recorder_class(args.pcap)
        loop = ReportingLoop(
            Stack(config),
            [device],
            handler,
            recorder=recorder,
            stream=sys.stderr,
            every=args.stats_every or None,
            duration=args.duration,
            connections=args.connections,
        )
    except BaseException:
        if recorder is not None:
            recorder.close()
        device.close()
        raise
    return loop, recorder


def serve_command(args: argparse.Namespace) -> int:
    """Run one subcommand until it is stopped and print the summary; returns the exit
    status (see :func:`main`)."""
    recorder_class = _pcap_recorder() if args.pcap is not None else None
    if args.pcap is not None and recorder_class is None:
        print(f"{PROG}: --pcap needs l3l4-pcap: pip install 'l3l4-tun[pcap]'", file=sys.stderr)
        return 2
    try:
        loop, recorder = _set_up(args, recorder_class)
    except (OSError, ValueError) as error:  # TunError included: no device, no privileges, bad route
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return 1
    routes = ", ".join(args.route) or "whatever is routed to it"
    verb = _COMMANDS[args.command].verb
    device = loop.devices[0].name
    print(f"{PROG} {args.command}: {verb} on {device} for {routes}; Ctrl-C stops", file=sys.stderr, flush=True)
    failure: OSError | None = None
    try:
        try:
            loop.run(graceful_timeout=2.0, handle_signals=True)
        finally:
            loop.close_devices()
            if recorder is not None:
                recorder.close()
    except OSError as error:  # the device went away, the disk filled...
        failure = error
    rows = _application_rows(loop.handler)
    if recorder is not None:
        statistics = recorder.statistics()
        rows += [("packets recorded", statistics.written), ("packets the recorder dropped", statistics.dropped)]
    print(summary(loop, loop.elapsed(), rows), flush=True)
    if recorder is not None:
        print(f"wrote {', '.join(map(str, statistics.files))}", flush=True)
    if failure is not None:
        print(f"{PROG} {args.command}: stopped by an error while serving: {failure}", file=sys.stderr)
        return 3
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``l3l4-tun`` command; returns its exit status: 0 once stopped; 1 if the
    device, the stack or the capture file could not be set up (one line on stderr);
    2 for bad usage or a missing extra; 3 if an OS error stopped it while serving (the
    summary is printed first, then one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return serve_command(args)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
