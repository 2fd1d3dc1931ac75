"""l3l4 as the client: it connects out through the TUN to a kernel server, from
addresses the kernel routes back into the device."""

from __future__ import annotations

import hashlib
from ipaddress import ip_address

import pytest
from l3l4 import CloseReason, Config, Flow, FlowClosed, Proto, Stack
from l3l4_tun import Loop
from l3l4_tun.testing import KERNEL_V4, KERNEL_V6, serve_until_exit, tun_namespace
from support.apps import Sender
from support.clients import hash_server


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
@pytest.mark.parametrize(("server", "local"), [(KERNEL_V4, "203.0.113.50"), (KERNEL_V6, "2001:db8:77::50")])
def test_connect_out_to_a_kernel_server(server: str, local: str, offload: bool) -> None:
    payload = hashlib.shake_256(b"upload").digest(5 << 20)
    reply = 3 << 20
    with tun_namespace(offload=offload) as (namespace, devices):
        process = hash_server(namespace, server, 8080, reply, count=3)
        sender = Sender(payload)
        loop = Loop(Stack(Config(secret=b"client-secret-00", tcp_tso_packet=65535 if offload else 0, tcp_checksum_offload=offload)), devices, sender)
        flows = [Flow(Proto.TCP, ip_address(local), 40000 + i, ip_address(server), 8080) for i in range(3)]
        for flow in flows:
            loop.connect(flow)
        serve_until_exit(loop, [process], 60.0)
        assert loop.run_until(lambda: len(sender.closed) == 3, 10.0)
        expected = hashlib.sha256(payload).digest() + hashlib.shake_256(b"reply").digest(reply)
        for flow in flows:
            assert bytes(sender.received[flow]) == expected
            assert sender.closed[flow] == FlowClosed(flow, CloseReason.CLOSED)
        out, _ = process.communicate()
        assert out.split() == [local.encode()] * 3


def test_connect_to_a_closed_port_is_refused() -> None:
    with tun_namespace() as (namespace, devices):
        sender = Sender(b"x")
        loop = Loop(Stack(Config(secret=b"client-secret-00")), devices, sender)
        flow = Flow(Proto.TCP, ip_address("203.0.113.51"), 40100, ip_address(KERNEL_V4), 9)
        loop.connect(flow)
        assert loop.run_until(lambda: flow in sender.closed, 10.0)
        assert sender.closed[flow] == FlowClosed(flow, CloseReason.REFUSED)
