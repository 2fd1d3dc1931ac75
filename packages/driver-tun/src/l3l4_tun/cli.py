"""Command-line pieces every TUN program repeats: the device options and their use."""

from __future__ import annotations

import argparse
from dataclasses import replace

from l3l4 import Config

from .device import TunDevice

__all__ = ["add_device_arguments", "open_device", "stack_config"]


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tun``, ``--address``, ``--route``, ``--mtu`` and ``--no-offload``."""
    parser.add_argument("--tun", default="", help="TUN device name (created if missing; default: kernel-chosen)")
    parser.add_argument(
        "--address", action="append", default=[], help="the kernel's own address on the device, e.g. 192.0.2.1/24"
    )
    parser.add_argument("--route", action="append", default=[], help="prefix to route into the device (repeatable)")
    parser.add_argument("--mtu", type=int, default=1500, help="the device's MTU (default 1500)")
    parser.add_argument("--no-offload", action="store_true", help="open the device without virtio-net offloads")


def open_device(args: argparse.Namespace) -> TunDevice:
    """Open the device the options name, give it its MTU and addresses, bring it up and
    route the prefixes into it."""
    device = TunDevice(args.tun, offload=not args.no_offload)
    device.set_mtu(args.mtu)
    for address in args.address:
        device.add_address(address)
    device.set_up()
    device.add_routes(args.route)
    return device


def stack_config(args: argparse.Namespace, base: Config | None = None) -> Config:
    """``base`` (default: the default :class:`~l3l4.Config`) with what the device
    options decide: the MTU, and TSO when offloads are on."""
    return replace(base or Config(), mtu=args.mtu, tcp_tso_packet=0 if args.no_offload else 65535)
