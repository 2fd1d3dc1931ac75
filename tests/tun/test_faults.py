"""Transfers with the kernel through a faulty path: random loss from nftables on the TUN
(both ways), and reordering, duplication and delay from a seeded impairment layer
between the device and the stack. Every byte must still arrive intact."""

from __future__ import annotations

import hashlib
from ipaddress import ip_address

import pytest
from l3l4 import CloseReason, Config, Flow, FlowClosed, Proto, Stack
from l3l4.apps import Echo
from l3l4_tun import Loop
from l3l4_tun.testing import (
    KERNEL_V4,
    drop_randomly,
    dropped_count,
    serve_until_exit,
    tun_namespace,
)
from support.apps import Sender
from support.clients import hash_server, python_tcp_clients
from support.impair import ImpairedLoop
from support.link import Impairment

SECRET = b"tun-fault-secret"


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
@pytest.mark.parametrize(("percent", "size"), [(1, 8 << 20), (10, 1 << 20)])
def test_echo_through_random_loss(percent: int, size: int, offload: bool) -> None:
    with tun_namespace(offload=offload) as (namespace, devices):
        drop_randomly(namespace, devices[0].name, percent)
        loop = Loop(Stack(Config(secret=SECRET, tcp_tso_packet=65535 if offload else 0, tcp_checksum_offload=offload)), devices, Echo())
        clients = [
            python_tcp_clients(namespace, "203.0.113.70", 7, size, 4),
            python_tcp_clients(namespace, "2001:db8:70::7", 7, size, 4),
        ]
        serve_until_exit(loop, clients, 240.0)
        for client in clients:
            out, err = client.communicate()
            assert client.returncode == 0, (out, err)
        assert dropped_count(namespace) > 0
        assert loop.stack.stats.tcp_retransmits > 0


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
def test_echo_through_reordering_duplication_and_delay(offload: bool) -> None:
    impairment = Impairment(delay=0.002, reorder=0.05, reorder_delay=0.004, duplicate=0.02)
    with tun_namespace(offload=offload) as (namespace, devices):
        stack = Stack(Config(secret=SECRET, tcp_tso_packet=65535 if offload else 0, tcp_checksum_offload=offload))
        loop = ImpairedLoop(stack, devices, Echo(), impairment, seed=7)
        clients = [
            python_tcp_clients(namespace, "198.51.100.70", 7, 4 << 20, 4),
            python_tcp_clients(namespace, "2001:db8:71::7", 7, 4 << 20, 4),
        ]
        serve_until_exit(loop, clients, 240.0)
        for client in clients:
            out, err = client.communicate()
            assert client.returncode == 0, (out, err)
        assert loop.reordered > 0 and loop.duplicated > 0


def test_connect_out_through_loss_and_reordering() -> None:
    payload = hashlib.shake_256(b"lossy upload").digest(2 << 20)
    impairment = Impairment(delay=0.001, reorder=0.05, reorder_delay=0.003, duplicate=0.02)
    with tun_namespace() as (namespace, devices):
        drop_randomly(namespace, devices[0].name, 5)
        process = hash_server(namespace, KERNEL_V4, 8081, 1 << 20)
        sender = Sender(payload)
        stack = Stack(Config(secret=SECRET, tcp_tso_packet=65535))
        loop = ImpairedLoop(stack, devices, sender, impairment, seed=11)
        flow = Flow(Proto.TCP, ip_address("203.0.113.71"), 41000, ip_address(KERNEL_V4), 8081)
        loop.connect(flow)
        serve_until_exit(loop, [process], 120.0)
        out, err = process.communicate()
        assert process.returncode == 0, err
        assert loop.run_until(lambda: flow in sender.closed, 30.0)
        assert bytes(sender.received[flow]) == hashlib.sha256(payload).digest() + hashlib.shake_256(b"reply").digest(1 << 20)
        assert sender.closed[flow] == FlowClosed(flow, CloseReason.CLOSED)
