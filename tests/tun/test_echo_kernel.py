"""The echo example on a TUN device, with the Linux kernel's sockets as clients."""

from __future__ import annotations

import hashlib
import subprocess
import textwrap

import pytest
from echo import Echo
from support.netns import Namespace, tun_namespace

from l3l4 import Config, Stack
from l3l4_tun import Loop

SECRET = b"tun-echo-secret0"


def serve_until_done(loop: Loop, clients: list[subprocess.Popen[bytes]], timeout: float) -> None:
    assert loop.run_until(lambda: all(c.poll() is not None for c in clients), timeout), "clients did not finish"


PY_CLIENT = textwrap.dedent(
    """
    import hashlib, socket, sys, threading
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    host, port, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    failures = []

    def one(index):
        data = hashlib.shake_256(str(index).encode()).digest(size) if size else b""
        with socket.create_connection((host, port), timeout=60) as s:
            sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
            sender.start()
            got = bytearray()
            while chunk := s.recv(1 << 16):
                got += chunk
            sender.join()
        if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
            failures.append((index, len(got)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads: t.start()
    for t in threads: t.join()
    print("failures", failures)
    sys.exit(1 if failures else 0)
    """
)


def python_clients(namespace: Namespace, host: str, port: int, size: int, count: int) -> subprocess.Popen[bytes]:
    return namespace.popen(
        "python3", "-c", PY_CLIENT, host, str(port), str(size), str(count),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize(
    ("host", "size"),
    [("203.0.113.7", 1), ("203.0.113.7", 100_000), ("198.18.5.5", 8 << 20), ("2001:db8:ffff::7", 1 << 20)],
)
def test_tcp_echo_python_client(host: str, size: int) -> None:
    with tun_namespace() as (namespace, device):
        loop = Loop(Stack(Config(secret=SECRET)), [device], Echo())
        client = python_clients(namespace, host, 7, size, 1)
        serve_until_done(loop, [client], 120.0)
        out, err = client.communicate()
        assert client.returncode == 0, (out, err)


def test_two_hundred_concurrent_connections() -> None:
    with tun_namespace() as (namespace, device):
        loop = Loop(Stack(Config(secret=SECRET)), [device], Echo())
        clients = [python_clients(namespace, "203.0.113.9", 9000 + i, 20_000, 50) for i in range(4)]
        serve_until_done(loop, clients, 120.0)
        for client in clients:
            out, err = client.communicate()
            assert client.returncode == 0, (out, err)
        assert loop.stack.stats.tcp_established == 200


def test_socat_and_nc_clients() -> None:
    payload = hashlib.shake_256(b"socat").digest(300_000)
    with tun_namespace() as (namespace, device):
        loop = Loop(Stack(Config(secret=SECRET)), [device], Echo())
        socat = namespace.popen(
            "socat", "-t", "5", "-", "TCP4:198.51.100.80:4000",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert socat.stdin is not None
        socat.stdin.write(payload)
        socat.stdin.close()
        serve_until_done(loop, [socat], 60.0)
        assert socat.stdout is not None and socat.stdout.read() == payload
        nc = namespace.popen(
            "nc", "-N", "-w", "5", "2001:db8:ffff::44", "5000",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert nc.stdin is not None
        nc.stdin.write(b"over IPv6 with nc\n")
        nc.stdin.close()
        serve_until_done(loop, [nc], 60.0)
        assert nc.stdout is not None and nc.stdout.read() == b"over IPv6 with nc\n"


UDP_CLIENT = textwrap.dedent(
    """
    import socket, sys
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    for size in (1, 1000, 1472, 4000, 30000):
        data = bytes((i * 7) % 256 for i in range(size))
        s.sendto(data, (sys.argv[1], 53))
        got, _ = s.recvfrom(65535)
        assert got == data, (size, len(got))
    print("ok")
    """
)


@pytest.mark.parametrize("host", ["203.0.113.53", "2001:db8:ffff::53"])
def test_udp_echo_with_fragments(host: str) -> None:
    with tun_namespace() as (namespace, device):
        loop = Loop(Stack(Config(secret=SECRET)), [device], Echo())
        client = namespace.popen("python3", "-c", UDP_CLIENT, host, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        serve_until_done(loop, [client], 60.0)
        out, err = client.communicate()
        assert client.returncode == 0 and out.strip() == b"ok", err
        assert loop.stack.stats.fragments_reassembled > 0 and loop.stack.stats.fragments_sent > 0
