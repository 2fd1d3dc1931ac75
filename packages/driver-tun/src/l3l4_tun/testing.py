"""The Linux kernel as a test peer: a network namespace whose default routes lead into
a TUN device that your stack serves. For your tests as for ours; needs root (or
CAP_NET_ADMIN and CAP_SYS_ADMIN). Everything is deleted on exit.

    with tun_namespace() as (namespace, devices):
        loop = Loop(Stack(), devices, MyHandler())
        client = namespace.popen("curl", "-sS", "http://203.0.113.7/")
        serve_until_exit(loop, [client], timeout=30)

Inside, the kernel owns ``192.0.2.1`` and ``2001:db8::1`` on the device; every other
address is routed into it. Use documentation prefixes only (RFC 5737, RFC 3849).
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .device import TunDevice, run_ip
from .loop import Loop

__all__ = [
    "KERNEL_V4",
    "KERNEL_V6",
    "Namespace",
    "dropped_count",
    "drop_randomly",
    "new_namespace",
    "require_root",
    "serve_until_exit",
    "tun_namespace",
]

_counter = itertools.count()

# The kernel's own addresses on the TUN; everything else routed into it is served.
KERNEL_V4 = "192.0.2.1"
KERNEL_V6 = "2001:db8::1"


class Namespace:
    """A network namespace, by name; commands run inside it with ``ip netns exec``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def command(self, *argv: str) -> list[str]:
        """``argv`` as a command line that runs inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, timeout: float = 60.0, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run a command inside and wait for it; its output is captured."""
        return subprocess.run(self.command(*argv), capture_output=True, timeout=timeout, input=input, check=False)

    def check(self, *argv: str) -> None:
        """Run a command inside; raise ``RuntimeError`` with its message if it fails."""
        result = self.run(*argv)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.decode().strip()}")

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a command inside; ``kwargs`` as for :class:`subprocess.Popen`."""
        process: subprocess.Popen[bytes] = subprocess.Popen(self.command(*argv), **kwargs)
        return process


def require_root() -> None:
    """Raise ``RuntimeError`` unless this process may create devices and namespaces."""
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        raise RuntimeError("the TUN tests need root and /dev/net/tun (CI runs them as root)")


@contextmanager
def new_namespace() -> Iterator[Namespace]:
    """A fresh network namespace with loopback up and IPv6 router solicitations off;
    deleted on exit."""
    require_root()
    namespace = Namespace(f"l3l4-{os.getpid() % 100000}x{next(_counter)}")
    run_ip("netns", "add", namespace.name)
    try:
        namespace.check("ip", "link", "set", "lo", "up")
        namespace.check("sysctl", "-qw", "net.ipv6.conf.default.router_solicitations=0")
        namespace.check("sysctl", "-qw", "net.ipv6.conf.default.accept_ra=0")
        namespace.check("sysctl", "-qw", "net.ipv4.tcp_invalid_ratelimit=0")
        yield namespace
    finally:
        subprocess.run(["ip", "netns", "del", namespace.name], check=False, capture_output=True)


@contextmanager
def tun_namespace(
    mtu: int = 1500, *, offload: bool = True, queues: int = 1
) -> Iterator[tuple[Namespace, list[TunDevice]]]:
    """A fresh namespace, a TUN device inside it with the kernel's addresses, default
    routes (IPv4 and IPv6) into the device, and its fd (``queues`` of them) open here."""
    devices: list[TunDevice] = []
    with new_namespace() as namespace:
        try:
            for _ in range(queues):
                devices.append(TunDevice(f"l3l4t{namespace.name[5:]}", offload=offload, multi_queue=queues > 1))
            device = devices[0]
            run_ip("link", "set", device.name, "netns", namespace.name)
            inside = ("-n", namespace.name)
            run_ip(*inside, "link", "set", device.name, "addrgenmode", "none")
            run_ip(*inside, "link", "set", device.name, "mtu", str(mtu))
            run_ip(*inside, "addr", "add", f"{KERNEL_V4}/24", "dev", device.name)
            run_ip(*inside, "addr", "add", f"{KERNEL_V6}/64", "dev", device.name, "nodad")
            run_ip(*inside, "link", "set", device.name, "up")
            run_ip(*inside, "route", "add", "default", "dev", device.name)
            run_ip(*inside, "-6", "route", "add", "default", "dev", device.name)
            yield namespace, devices
        finally:
            for device in devices:
                device.close()


def serve_until_exit(loop: Loop, processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    """Serve until every process has exited (a pidfd wakes the loop at each exit);
    fail if they take longer than ``timeout`` seconds."""
    pidfds = [os.pidfd_open(process.pid) for process in processes]
    for pidfd in pidfds:
        loop.add_reader(pidfd, lambda pidfd=pidfd: loop.remove_reader(pidfd))  # type: ignore[misc]
    try:
        finished = loop.run_until(lambda: all(p.poll() is not None for p in processes), timeout)
    finally:
        for pidfd in pidfds:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    if not finished:
        for process in processes:
            process.kill()
        raise AssertionError(f"clients did not finish within {timeout} s")


def drop_randomly(namespace: Namespace, device: str, percent: int) -> None:
    """Drop ``percent`` % of the TCP packets crossing ``device`` each way, at random
    (nftables ``numgen random``: this kernel has no netem)."""
    namespace.check("nft", "add", "table", "inet", "impair")
    for chain, hook, match in (("out", "output", "oifname"), ("in", "input", "iifname")):
        namespace.check("nft", "add", "chain", "inet", "impair", chain, f"{{ type filter hook {hook} priority 0; }}")
        namespace.check(
            "nft", "add", "rule", "inet", "impair", chain, match, device,
            "meta", "l4proto", "tcp", "numgen", "random", "mod", "100", "<", str(percent), "counter", "drop",
        )


def dropped_count(namespace: Namespace) -> int:
    """Packets the ``drop_randomly`` rules have dropped so far, both ways."""
    listing = namespace.run("nft", "list", "table", "inet", "impair").stdout.decode()
    return sum(int(part.split()[0]) for part in listing.split("counter packets ")[1:])
