"""``TcpStream`` over real TUN devices with the Linux kernel routing between them.

Two TUN devices live in a fresh network namespace whose kernel forwards IP packets
between them: 198.51.100.0/24 and 2001:db8:1::/48 are routed into device A,
203.0.113.0/24 and 2001:db8:2::/48 into device B. One l3l4 stack serves each device
from this process (over ``TunLink``); a connection from A's side to B's side crosses the
kernel's forwarding path both ways (TTL decremented, rp_filter off, no shortcuts).

On that path trio's own ``check_half_closeable_stream`` must pass, for IPv4 and IPv6,
and 8 MiB each way must arrive intact. Real time (the kernel is in the middle, so no
mock clock); needs root, as the other TUN tests do.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import pytest
import trio
from l3l4 import Config, DropReason
from l3l4_trio import Network, TcpStream, TunLink, open_stack
from l3l4_tun import TunDevice
from l3l4_tun.device import run_ip
from l3l4_tun.testing import Namespace, new_namespace
from support.trio_pair import read_to_eof, send_then_eof
from trio.testing import check_half_closeable_stream

SECRET_A = b"tun-conformance-a"
SECRET_B = b"tun-conformance-b"
# Small buffers, so that clogging a connection takes little data (and little time).
SMALL = 16384


@dataclass(frozen=True)
class Family:
    """The addresses of one IP version on the routed path."""

    kernel_a: str
    """The kernel's own address on device A (with its prefix length)."""
    kernel_b: str
    routes_a: str
    """The prefix routed into device A: stack A's addresses."""
    routes_b: str
    client: str
    """An address of stack A (in ``routes_a``)."""
    server: str
    """An address of stack B (in ``routes_b``)."""


IPV4 = Family(
    kernel_a="192.0.2.1/30",
    kernel_b="192.0.2.5/30",
    routes_a="198.51.100.0/24",
    routes_b="203.0.113.0/24",
    client="198.51.100.7",
    server="203.0.113.80",
)
IPV6 = Family(
    kernel_a="2001:db8:a::1/64",
    kernel_b="2001:db8:b::1/64",
    routes_a="2001:db8:1::/48",
    routes_b="2001:db8:2::/48",
    client="2001:db8:1::7",
    server="2001:db8:2::80",
)
FAMILIES = [pytest.param(IPV4, id="ipv4"), pytest.param(IPV6, id="ipv6")]


@dataclass(frozen=True)
class Router:
    """A namespace whose kernel forwards between two TUN devices whose fds are ours."""

    namespace: Namespace
    a: TunDevice
    b: TunDevice

    @property
    def offload_a(self) -> bool:
        """Whether device A has the virtio-net offloads (device B never has)."""
        return self.a.vnet_hdr

    def counters(self, device: TunDevice) -> dict[str, int]:
        """The kernel's packet and byte counters of a device (``ip -s link``)."""
        result = self.namespace.run("ip", "-j", "-s", "link", "show", device.name)
        assert result.returncode == 0, result.stderr
        stats = json.loads(result.stdout)[0]["stats64"]
        return {f"{way}_{key}": int(stats[way][key]) for way in ("rx", "tx") for key in ("packets", "bytes", "dropped")}


@contextmanager
def kernel_router(offload_a: bool = False) -> Iterator[Router]:
    """Build the routed path (device A with offloads if ``offload_a``); the devices
    (closing their fds deletes them) and the namespace are removed on exit, whatever
    happened inside."""
    with new_namespace() as namespace:
        suffix = namespace.name[5:]
        with TunDevice(f"l3a{suffix}", offload=offload_a) as a, TunDevice(f"l3b{suffix}", offload=False) as b:
            namespace.check(
                "sysctl", "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            )
            inside = ("-n", namespace.name)
            sides = (
                (a, IPV4.kernel_a, IPV6.kernel_a, IPV4.routes_a, IPV6.routes_a),
                (b, IPV4.kernel_b, IPV6.kernel_b, IPV4.routes_b, IPV6.routes_b),
            )
            for device, kernel_v4, kernel_v6, routes_v4, routes_v6 in sides:
                # As l3l4_tun.testing.tun_namespace does: made here, moved inside.
                run_ip("link", "set", device.name, "netns", namespace.name)
                run_ip(*inside, "link", "set", device.name, "addrgenmode", "none")
                run_ip(*inside, "link", "set", device.name, "mtu", "1500")
                run_ip(*inside, "addr", "add", kernel_v4, "dev", device.name)
                run_ip(*inside, "addr", "add", kernel_v6, "dev", device.name, "nodad")
                run_ip(*inside, "link", "set", device.name, "up")
                run_ip(*inside, "route", "add", routes_v4, "dev", device.name)
                run_ip(*inside, "-6", "route", "add", routes_v6, "dev", device.name)
                namespace.check("sysctl", "-qw", f"net.ipv4.conf.{device.name}.rp_filter=0")
            yield Router(namespace, a, b)


@dataclass
class Ends:
    """The two running networks: ``a`` on device A, ``b`` on device B."""

    a: Network
    b: Network


@asynccontextmanager
async def stacks_on(router: Router, config_a: Config, config_b: Config) -> AsyncIterator[Ends]:
    link_a = TunLink(router.a.fd, mtu=1500, offload=router.offload_a)
    async with link_a, TunLink(router.b.fd, mtu=1500) as link_b:
        async with open_stack(link_a, config_a) as a, open_stack(link_b, config_b) as b:
            yield Ends(a, b)


async def stream_pair(ends: Ends, family: Family, port: int = 80) -> tuple[TcpStream, TcpStream]:
    """A connection from stack A (an ephemeral port) to stack B, through the kernel."""
    client = await ends.a.connect((family.client, 0), (family.server, port))
    server = await ends.b.accept()
    assert server.flow == client.flow.reversed()
    return client, server


async def clog(sender: TcpStream, receiver: TcpStream) -> None:
    """Fill the receiver's window and the sender's buffer, and return once that has
    settled: the window is shut, the sender knows it, and its buffer takes nothing.

    While the window is open, only as much as it has room for is queued, so the last
    segment empties the queue and leaves at once (with more queued, sender SWS
    avoidance would hold a short segment back until the override timeout)."""
    fill = b"x" * 65536
    while True:
        await trio.sleep(0.005)  # let what is in flight arrive
        info = sender.info()
        room = info.snd_wnd - info.bytes_queued
        if room > 0:
            sender.send_nowait(fill[:room])
        elif info.snd_wnd == 0 and receiver.info().rcv_wnd == 0 and sender.send_nowait(fill) == 0:
            return


@pytest.mark.parametrize("family", FAMILIES)
def test_check_half_closeable_stream_through_the_kernel(family: Family) -> None:
    config_a = Config(secret=SECRET_A, tcp_send_buffer=SMALL, tcp_receive_buffer=SMALL)
    config_b = Config(secret=SECRET_B, tcp_send_buffer=SMALL, tcp_receive_buffer=SMALL)

    async def main() -> None:
        with trio.fail_after(60):
            async with stacks_on(router, config_a, config_b) as ends:

                async def maker() -> tuple[TcpStream, TcpStream]:
                    return await stream_pair(ends, family)

                async def clogged_maker() -> tuple[TcpStream, TcpStream]:
                    client, server = await stream_pair(ends, family)
                    await clog(client, server)
                    await clog(server, client)
                    return client, server

                await check_half_closeable_stream(maker, clogged_maker)
                stats = ends.b.statistics()
                assert stats.pending_accepts == 0 and stats.backlog_overflows == 0

    with kernel_router() as router:
        before = router.counters(router.b)
        trio.run(main)
        after = router.counters(router.b)
    # The kernel really forwarded: B's device sent it (the kernel's tx is our read)
    # at least the megabyte of the duplex part of the check.
    assert after["tx_bytes"] - before["tx_bytes"] > 1 << 20


SIZE = 8 * 1024 * 1024


@pytest.mark.parametrize("offload_a", [False, True], ids=["plain", "offload-a"])
@pytest.mark.parametrize("family", FAMILIES)
def test_eight_mib_each_way_through_the_kernel(family: Family, offload_a: bool) -> None:
    """With ``offload_a``, stack A leaves its TCP checksums partial and sends 64 KiB
    packets; the kernel forwards them to device B, which has no offloads, so the kernel
    completes and segments them in software, and stack B verifies every checksum: a
    wrong partial checksum would be dropped there (a kernel delivering locally would
    trust it unchecked)."""
    up = random.Random(21).randbytes(SIZE)
    down = random.Random(22).randbytes(SIZE)
    got_up: list[bytes] = []
    got_down: list[bytes] = []

    async def main() -> None:
        with trio.fail_after(120):
            async with stacks_on(router, Config(secret=SECRET_A), Config(secret=SECRET_B)) as ends:
                client, server = await stream_pair(ends, family, port=9000)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_then_eof, client, up, 10)
                    nursery.start_soon(send_then_eof, server, down, 11)
                    nursery.start_soon(read_to_eof, server, got_up, 12)
                    nursery.start_soon(read_to_eof, client, got_down, 13)
                await client.aclose()
                await server.aclose()
                with trio.fail_after(5):
                    while ends.a.stack.flows() or ends.b.stack.flows():
                        await trio.sleep(0.01)
                # Both FINs went through: what is left waits in TIME_WAIT (on one side,
                # or on both if the FINs crossed).
                states = [ends.a.stack.tcp_states(), ends.b.stack.tcp_states()]
                assert set().union(*states) == {"TIME_WAIT"}
                assert ends.a.config.tcp_checksum_offload is offload_a
                assert ends.b.stack.stats.drops[DropReason.BAD_L4_CHECKSUM] == 0

    with kernel_router(offload_a) as router:
        before_a, before_b = router.counters(router.a), router.counters(router.b)
        trio.run(main)
        after_a, after_b = router.counters(router.a), router.counters(router.b)
    assert hashlib.sha256(b"".join(got_up)).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(b"".join(got_down)).digest() == hashlib.sha256(down).digest()
    # Every byte went into the kernel on one device and out of it on the other.
    for into, out_of in ((before_a, after_a), (before_b, after_b)):
        assert out_of["rx_bytes"] - into["rx_bytes"] > SIZE  # we wrote it: the kernel received
        assert out_of["tx_bytes"] - into["tx_bytes"] > SIZE  # the kernel forwarded: we read
