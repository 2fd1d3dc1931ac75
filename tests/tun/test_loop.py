"""The examples as a user runs them (in a namespace, as root), the loop's shutdown on
SIGTERM, and the packet capture hook."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from l3l4 import Config, Stack
from l3l4.apps import Echo
from l3l4_tun import Loop
from l3l4_tun.testing import new_namespace, serve_until_exit, tun_namespace
from support.clients import python_tcp_clients, udp_client

EXAMPLES = Path(__file__).parents[2] / "examples"

IDLE_CLIENT = textwrap.dedent(
    """
    import socket, sys
    with socket.create_connection((sys.argv[1], 7), timeout=20) as s:
        s.sendall(b"hello")
        assert s.recv(100) == b"hello"
        print("echoed", flush=True)
        print("eof" if s.recv(100) == b"" else "data", flush=True)
    """
)


@pytest.mark.parametrize("example", ["echo.py", "proxy.py"])
def test_examples_explain_themselves(example: str) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / example), "--help"], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert b"--tun" in result.stdout and b"--route" in result.stdout


@pytest.mark.parametrize("host", ["203.0.113.5", "2001:db8:e::5"])
def test_echo_example_closes_gracefully_on_sigterm(host: str) -> None:
    with new_namespace() as namespace:
        server = namespace.popen(
            sys.executable, str(EXAMPLES / "echo.py"), "--tun", "l3l4ex0",
            "--address", "192.0.2.1/24", "--address", "2001:db8::1/64",
            "--route", "203.0.113.0/24", "--route", "2001:db8:e::/48",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert server.stdout is not None
        assert server.stdout.readline().startswith(b"echoing on l3l4ex0"), server.stderr
        client = namespace.popen(sys.executable, "-c", IDLE_CLIENT, host, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert client.stdout is not None
        assert client.stdout.readline() == b"echoed\n", client.communicate()
        server.send_signal(signal.SIGTERM)
        assert client.stdout.readline() == b"eof\n"  # our FIN, not a reset: a graceful close
        client.communicate(timeout=10)
        _, err = server.communicate(timeout=10)
        assert server.returncode == 0, err
        # the device went with the process
        assert namespace.run("ip", "link", "show", "l3l4ex0").returncode != 0


class Capture:
    def __init__(self) -> None:
        self.packets: list[tuple[bytes, bool, float]] = []

    def record(self, packet: bytes | bytearray | memoryview, outbound: bool, now: float) -> None:
        self.packets.append((bytes(packet), outbound, now))


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "plain"])
def test_the_recorder_sees_every_packet_both_ways(offload: bool) -> None:
    capture = Capture()
    with tun_namespace(offload=offload) as (namespace, devices):
        stack = Stack(Config(secret=b"record-secret-00", tcp_tso_packet=65535 if offload else 0, tcp_checksum_offload=offload))
        loop = Loop(stack, devices, Echo(), recorder=capture)
        clients = [
            python_tcp_clients(namespace, "203.0.113.30", 7, 300_000, 3),
            udp_client(namespace, "2001:db8:30::30", 53, [10, 3000]),
        ]
        serve_until_exit(loop, clients, 30.0)
        for client in clients:
            out, err = client.communicate()
            assert client.returncode == 0, (out, err)
    inbound = [p for p, out, _ in capture.packets if not out]
    outbound = [p for p, out, _ in capture.packets if out]
    assert len(inbound) == stack.stats.rx_packets and len(outbound) == stack.stats.tx_packets
    assert sum(map(len, inbound)) == stack.stats.rx_bytes
    assert all(p[0] >> 4 in (4, 6) for p in inbound + outbound)  # IP, no virtio-net header
    times = [t for _, _, t in capture.packets]
    assert times == sorted(times)


def test_partial_checksums_need_devices_with_offloads() -> None:
    """Without a virtio-net header nothing would complete a partial checksum: the loop
    refuses the configuration instead of sending packets the kernel drops."""
    with tun_namespace(offload=False) as (_, devices):
        with pytest.raises(ValueError, match="tcp_checksum_offload"):
            Loop(Stack(Config(tcp_checksum_offload=True)), devices, Echo())
