"""``TunLink(fd, offload=True)`` over a real TUN device opened with ``IFF_VNET_HDR`` and
checksum and TCP segmentation offload, with the Linux kernel as the peer.

A Python socket client in the namespace (``l3l4_tun.testing``) sends 8 MiB on each of
two connections to an echo served by l3l4 under trio, and checks by hash that the same
bytes come back. The kernel hands the stack super-packets with partial checksums it
vouches for (``NEEDS_CSUM``), and segments the 64 KiB packets the stack writes: both
must really happen, and no checksum may be found bad. Real time; needs root, as the
other TUN tests do.
"""

from __future__ import annotations

import pytest
import trio
from support.clients import python_tcp_clients
from support.offloading import RecordingOffloadLink

from l3l4 import Config, DropReason
from l3l4_trio import TcpStream, open_stack
from l3l4_tun.testing import tun_namespace

SIZE = 8 << 20


async def echo(stream: TcpStream) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data)


@pytest.mark.parametrize("server", ["203.0.113.80", "2001:db8:1::80"], ids=["ipv4", "ipv6"])
def test_megabytes_both_ways_intact_with_offloads(server: str) -> None:
    async def main() -> None:
        async with RecordingOffloadLink(devices[0].fd) as link:
            async with open_stack(link, Config(secret=b"tun-offload-test")) as net, trio.open_nursery() as nursery:
                # open_stack turned TSO and checksum offload on
                assert net.config.tcp_tso_packet == 65535 and net.config.tcp_checksum_offload
                await nursery.start(net.serve_tcp, echo)
                with trio.fail_after(120):
                    out, err = await trio.to_thread.run_sync(clients.communicate, abandon_on_cancel=True)
                assert clients.returncode == 0, (out, err)
                assert out.strip() == b"failures []"
                nursery.cancel_scope.cancel()
            stats = net.stack.stats
        assert link.largest_in > 1500 and link.largest_out > 1500  # GRO in, TSO out
        assert True in link.verdicts  # the kernel vouched for checksums
        assert stats.drops[DropReason.BAD_L4_CHECKSUM] == 0 and stats.drops[DropReason.BAD_IP_CHECKSUM] == 0
        assert link.write_drops == 0

    with tun_namespace(offload=True) as (namespace, devices):
        clients = python_tcp_clients(namespace, server, 9000, SIZE, 2)
        try:
            trio.run(main)
        finally:
            if clients.poll() is None:
                clients.kill()
                clients.wait()
