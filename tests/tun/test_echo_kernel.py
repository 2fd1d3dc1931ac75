"""The echo example on a TUN device, with the Linux kernel's sockets as clients:
Python sockets, socat and nc; TCP and UDP; IPv4 and IPv6; offloads on and off."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from l3l4 import Config, Stack
from l3l4.apps import Echo
from l3l4_tun import Loop
from l3l4_tun.testing import serve_until_exit, tun_namespace
from support.clients import python_tcp_clients, udp_client

SECRET = b"tun-echo-secret0"


def echo_stack(offload: bool) -> Stack[bytearray]:
    return Stack(Config(secret=SECRET, tcp_tso_packet=65535 if offload else 0, tcp_checksum_offload=offload))


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
@pytest.mark.parametrize(
    ("host", "size"),
    [
        ("203.0.113.7", 1),
        ("203.0.113.7", 100_000),
        ("2001:db8:ffff::7", 1 << 20),
        ("198.18.5.5", 64 << 20),
        ("2001:db8:5::5", 64 << 20),
    ],
)
def test_tcp_echo_python_client(host: str, size: int, offload: bool) -> None:
    with tun_namespace(offload=offload) as (namespace, devices):
        loop = Loop(echo_stack(offload), devices, Echo())
        client = python_tcp_clients(namespace, host, 7, size, 1)
        serve_until_exit(loop, [client], 120.0)
        out, err = client.communicate()
        assert client.returncode == 0, (out, err)
        assert loop.stack.flows() == [] or loop.stack.tcp_states() == {"TIME_WAIT": 1}


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
def test_two_hundred_concurrent_connections(offload: bool) -> None:
    with tun_namespace(offload=offload) as (namespace, devices):
        loop = Loop(echo_stack(offload), devices, Echo())
        clients = [python_tcp_clients(namespace, f"203.0.113.{9 + i}", 9000 + i, 20_000, 60) for i in range(2)]
        clients += [python_tcp_clients(namespace, f"2001:db8:c::{i}", 80, 20_000, 60) for i in range(2)]
        serve_until_exit(loop, clients, 120.0)
        for client in clients:
            out, err = client.communicate()
            assert client.returncode == 0, (out, err)
        assert loop.stack.stats.tcp_established == 240


def test_socat_and_nc_clients(tmp_path: Path) -> None:
    payload = hashlib.shake_256(b"socat").digest(3_000_000)
    sent = tmp_path / "sent"
    sent.write_bytes(payload)
    with tun_namespace() as (namespace, devices):
        loop = Loop(echo_stack(True), devices, Echo())
        with sent.open("rb") as stdin, (tmp_path / "socat").open("wb") as stdout:
            socat = namespace.popen("socat", "-t", "5", "-", "TCP4:198.51.100.80:4000", stdin=stdin, stdout=stdout)
            serve_until_exit(loop, [socat], 60.0)
        assert socat.returncode == 0
        assert (tmp_path / "socat").read_bytes() == payload
        with sent.open("rb") as stdin, (tmp_path / "nc").open("wb") as stdout:
            nc = namespace.popen("nc", "-N", "-w", "5", "2001:db8:ffff::44", "5000", stdin=stdin, stdout=stdout)
            serve_until_exit(loop, [nc], 60.0)
        assert (tmp_path / "nc").read_bytes() == payload


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
@pytest.mark.parametrize("host", ["203.0.113.53", "2001:db8:ffff::53"])
def test_udp_echo_with_fragments(host: str, offload: bool) -> None:
    with tun_namespace(offload=offload) as (namespace, devices):
        loop = Loop(echo_stack(offload), devices, Echo())
        client = udp_client(namespace, host, 53, [1, 1000, 1472, 4000, 30000, 65000])
        serve_until_exit(loop, [client], 60.0)
        out, err = client.communicate()
        assert client.returncode == 0 and out.strip() == b"ok", err
        assert loop.stack.stats.fragments_reassembled > 0 and loop.stack.stats.fragments_sent > 0
