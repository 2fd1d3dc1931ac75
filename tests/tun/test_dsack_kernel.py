"""D-SACK (RFC 2883) with the Linux kernel through a TUN device, on a path that
duplicates and reorders packets (seeded, both ways): each side reports what arrived
twice, the other understands it, and every byte arrives intact."""

from __future__ import annotations

import hashlib
from ipaddress import ip_address

from l3l4 import Config, Flow, Proto, Stack
from l3l4.apps import Echo
from l3l4_tun.testing import KERNEL_V4, Namespace, serve_until_exit, tun_namespace
from support.apps import Sender, upload_to_hash_server
from support.clients import hash_server, python_tcp_clients
from support.impair import ImpairedLoop
from support.link import Impairment

DOUBLING = Impairment(delay=0.001, duplicate=0.02, reorder=0.05)


def kernel_counter(namespace: Namespace, name: str) -> int:
    lines = namespace.run("nstat", "-asz", name).stdout.decode().splitlines()
    return sum(int(line.split()[1]) for line in lines[1:])


def test_linux_understands_the_duplicates_l3l4_reports() -> None:
    """The kernel uploads (and reads back) 2 MiB through l3l4's echo; the copies the
    path makes of its segments come back as D-SACK blocks, which the kernel counts as
    such (``TcpExtTCPDSACKRecv``), not as ordinary SACKs."""
    with tun_namespace(offload=False) as (namespace, devices):
        stack = Stack(Config(secret=b"dsack-echo-secr0"))
        loop = ImpairedLoop(stack, devices, Echo(), DOUBLING, seed=7)
        client = python_tcp_clients(namespace, "203.0.113.43", 7, 2 << 20, 1)
        serve_until_exit(loop, [client], 120.0)
        out, err = client.communicate()
        assert client.returncode == 0, (out, err)
        received = kernel_counter(namespace, "TcpExtTCPDSACKRecv")
    assert loop.duplicated > 0 and stack.stats.tcp_dsacks_sent > 0
    assert received > 0, stack.stats.as_dict()


def test_l3l4_reads_linuxs_duplicate_reports_and_sees_the_reordering() -> None:
    """l3l4 uploads 4 MiB to a kernel server over the same path: the kernel's D-SACK
    blocks reach l3l4's counters, the connection's last figures (``FlowClosed.info``)
    say reordering was seen, and no retransmission timeout was needed."""
    payload = hashlib.shake_256(b"dsack upload").digest(4 << 20)
    with tun_namespace(offload=False) as (namespace, devices):
        receiver = hash_server(namespace, KERNEL_V4, 8084, 16)
        sender = Sender(payload)
        stack = Stack(Config(secret=b"dsack-upload-sec"))
        loop = ImpairedLoop(stack, devices, sender, DOUBLING, seed=8)
        flow = Flow(Proto.TCP, ip_address("203.0.113.44"), 41002, ip_address(KERNEL_V4), 8084)
        upload_to_hash_server(loop, sender, receiver, flow, payload)
    info = sender.closed[flow].info
    stats = stack.stats
    assert info is not None and info.reordering_seen
    assert stats.tcp_dsacks_received > 0 and info.dsacks_received == stats.tcp_dsacks_received
    assert stats.tcp_timeouts == 0, stats.as_dict()
