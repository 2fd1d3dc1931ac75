"""A network namespace whose default routes lead into a TUN device served by l3l4:
the Linux kernel as the peer. Needs root; everything is deleted on exit."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from l3l4_tun import TunDevice
from l3l4_tun.device import run_ip

_counter = itertools.count()

# The kernel's own addresses on the TUN; everything else routed into it is served.
KERNEL_V4 = "192.0.2.1"
KERNEL_V6 = "2001:db8::1"


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, timeout: float = 60.0, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.command(*argv), capture_output=True, timeout=timeout, input=input, check=False)

    def check(self, *argv: str) -> None:
        result = self.run(*argv)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.decode().strip()}")

    def popen(self, *argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(*argv), **kwargs)  # type: ignore[call-overload, no-any-return]


def require_root() -> None:
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        raise RuntimeError("the TUN tests need root and /dev/net/tun (CI runs them as root)")


@contextmanager
def tun_namespace(
    mtu: int = 1500, *, vnet_hdr: bool = False, offload: bool = False, multi_queue: bool = False
) -> Iterator[tuple[Namespace, TunDevice]]:
    """A fresh namespace, a TUN device inside it with the kernel's addresses, default
    routes (IPv4 and IPv6) into the device, and its fd open here."""
    require_root()
    tag = f"{os.getpid() % 100000}x{next(_counter)}"
    namespace = Namespace(f"l3l4-{tag}")
    run_ip("netns", "add", namespace.name)
    device: TunDevice | None = None
    try:
        namespace.check("ip", "link", "set", "lo", "up")
        namespace.check("sysctl", "-qw", "net.ipv6.conf.default.router_solicitations=0")
        namespace.check("sysctl", "-qw", "net.ipv6.conf.default.accept_ra=0")
        namespace.check("sysctl", "-qw", "net.ipv4.tcp_invalid_ratelimit=0")
        device = TunDevice(f"l3l4t{tag}", vnet_hdr=vnet_hdr, offload=offload, multi_queue=multi_queue)
        run_ip("link", "set", device.name, "netns", namespace.name)
        inside = ("ip", "-n", namespace.name)
        run_ip(*inside[1:], "link", "set", device.name, "addrgenmode", "none")
        run_ip(*inside[1:], "link", "set", device.name, "mtu", str(mtu))
        run_ip(*inside[1:], "addr", "add", f"{KERNEL_V4}/24", "dev", device.name)
        run_ip(*inside[1:], "addr", "add", f"{KERNEL_V6}/64", "dev", device.name, "nodad")
        run_ip(*inside[1:], "link", "set", device.name, "up")
        run_ip(*inside[1:], "route", "add", "default", "dev", device.name)
        run_ip(*inside[1:], "-6", "route", "add", "default", "dev", device.name)
        yield namespace, device
    finally:
        if device is not None:
            device.close()
        subprocess.run(["ip", "netns", "del", namespace.name], check=False, capture_output=True)
