"""ECN (RFC 3168) with the Linux kernel through a TUN device: negotiated both ways,
Congestion Experienced marks (set by nftables, as an AQM router would) echoed and
acted on by both sides, every byte intact and nothing resent for them."""

from __future__ import annotations

import hashlib
from ipaddress import ip_address

import pytest
from l3l4 import Config, Flow, Proto, Stack
from l3l4.apps import Echo
from l3l4_tun import Loop
from l3l4_tun.testing import KERNEL_V4, Namespace, serve_until_exit, tun_namespace
from support.apps import Sender, upload_to_hash_server
from support.clients import hash_server, python_tcp_clients


def mark_ce(namespace: Namespace, device: str, every: int) -> None:
    """Mark every ``every``-th ECN-capable TCP packet crossing ``device`` each way
    Congestion Experienced (nftables ``ip ecn set ce``; counted, not drawn at random,
    so that every run sees marks)."""
    namespace.check("nft", "add", "table", "inet", "aqm")
    for chain, hook, match in (("out", "output", "oifname"), ("in", "input", "iifname")):
        namespace.check("nft", "add", "chain", "inet", "aqm", chain, f"{{ type filter hook {hook} priority 0; }}")
        namespace.check(
            "nft", "add", "rule", "inet", "aqm", chain, match, device, "meta", "l4proto", "tcp",
            "ip", "ecn", "ect0", "numgen", "inc", "mod", str(every), "0", "ip", "ecn", "set", "ce",
            "counter",
        )


def marked(namespace: Namespace) -> int:
    listing = namespace.run("nft", "list", "table", "inet", "aqm").stdout.decode()
    return sum(int(part.split()[0]) for part in listing.split("counter packets ")[1:])


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
def test_a_kernel_client_negotiates_ecn_and_both_sides_answer_ce_marks(offload: bool) -> None:
    """The kernel asks for ECN (``net.ipv4.tcp_ecn=1``); l3l4 agrees (``"passive"``,
    the default). every 20th ECT packet each way is marked CE: l3l4 echoes the marks
    on the kernel's data and reduces its window for the kernel's echoes, resending
    nothing; the echoed megabytes come back intact."""
    with tun_namespace(offload=offload) as (namespace, devices):
        namespace.check("sysctl", "-qw", "net.ipv4.tcp_ecn=1")
        mark_ce(namespace, devices[0].name, 20)
        stack = Stack(Config(secret=b"ecn-echo-secret0", tcp_tso_packet=65535 if offload else 0,
                             tcp_checksum_offload=offload))
        loop = Loop(stack, devices, Echo())
        client = python_tcp_clients(namespace, "203.0.113.41", 7, 4 << 20, 2)
        serve_until_exit(loop, [client], 120.0)
        out, err = client.communicate()
        assert client.returncode == 0, (out, err)
        assert marked(namespace) > 0
    stats = stack.stats
    assert stats.tcp_ecn_negotiated == 2
    assert stats.tcp_ecn_ce_received > 0 and stats.tcp_ecn_reductions > 0, stats.as_dict()
    assert stats.tcp_timeouts == 0


def test_l3l4_asks_for_ecn_and_a_linux_server_agrees() -> None:
    """``Config(tcp_ecn="on")``: l3l4's SYN asks for ECN and the kernel's server (its
    default, ``tcp_ecn=2``, agrees when asked) agrees; CE marks on l3l4's data make the
    kernel echo, and l3l4 reduces its window once per round trip for them."""
    payload = hashlib.shake_256(b"ecn upload").digest(4 << 20)
    local = "203.0.113.42"
    with tun_namespace(offload=False) as (namespace, devices):
        mark_ce(namespace, devices[0].name, 20)
        receiver = hash_server(namespace, KERNEL_V4, 8083, 16)
        sender = Sender(payload)
        stack = Stack(Config(secret=b"ecn-active-secrt", tcp_ecn="on"))
        loop = Loop(stack, devices, sender)
        flow = Flow(Proto.TCP, ip_address(local), 41001, ip_address(KERNEL_V4), 8083)
        upload_to_hash_server(loop, sender, receiver, flow, payload)
    stats = stack.stats
    assert stats.tcp_ecn_negotiated == 1 and stats.tcp_ecn_reductions > 0, stats.as_dict()
    assert stats.tcp_retransmits == 0
