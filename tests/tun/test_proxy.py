"""The transparent proxy example between kernel clients in a namespace and real
servers in the test's own namespace: a real HTTP download with curl, a refusal passed
on as a reset, half-close both ways, backpressure both ways, UDP."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from l3l4 import CloseReason, Flow, FlowClosed, Proto, Stack
from l3l4_tun import Loop
from l3l4_tun.proxy import Proxy, Relay
from l3l4_tun.testing import serve_until_exit, tun_namespace
from support.clients import free_port, half_close_client, hash_server, udp_client


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """An HTTP server on loopback serving ``tmp_path``; yields (directory, port)."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield tmp_path, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def assert_all_relays_end(loop: Loop, proxy: Proxy) -> None:
    """Every relay ends by itself once its flow closes: no socket is left behind."""
    assert loop.run_until(lambda: not proxy.relays, 10.0), proxy.relays


def test_the_upstream_is_resolved_once_not_per_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = Proxy(("localhost", 8080))
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: pytest.fail("a lookup per flow"))
    flow = Flow(Proto.TCP, ip_address("203.0.113.80"), 80, ip_address("192.0.2.1"), 40000)
    family, address = proxy.target(flow)
    assert family in (socket.AF_INET, socket.AF_INET6) and address[1] == 8080


@pytest.mark.parametrize("url_host", ["203.0.113.80", "[2001:db8:80::80]"])
def test_curl_downloads_through_the_proxy(web_root: tuple[Path, int], url_host: str, tmp_path: Path) -> None:
    root, port = web_root
    body = hashlib.shake_256(b"http body").digest(20 << 20)
    (root / "big.bin").write_bytes(body)
    with tun_namespace() as (namespace, devices):
        proxy = Proxy(("127.0.0.1", port))
        loop = Loop(Stack(Proxy.config(tcp_tso_packet=65535, tcp_checksum_offload=True)), devices, proxy)
        out = tmp_path / "got.bin"
        curl = namespace.popen(
            "curl", "-sS", "--fail", "-o", str(out), f"http://{url_host}:8080/big.bin", stderr=subprocess.PIPE
        )
        serve_until_exit(loop, [curl], 60.0)
        _, err = curl.communicate()
        assert curl.returncode == 0, err
        assert out.read_bytes() == body
        assert_all_relays_end(loop, proxy)


def test_a_slow_client_is_not_buffered_for(web_root: tuple[Path, int], tmp_path: Path) -> None:
    root, port = web_root
    body = hashlib.shake_256(b"slow body").digest(6 << 20)
    (root / "slow.bin").write_bytes(body)
    with tun_namespace() as (namespace, devices):
        proxy = Proxy(("127.0.0.1", port), buffer_limit=64 * 1024)
        loop = Loop(Stack(Proxy.config(tcp_tso_packet=65535, tcp_checksum_offload=True)), devices, proxy)
        out = tmp_path / "got.bin"
        curl = namespace.popen(
            "curl", "-sS", "--fail", "--limit-rate", "4M", "-o", str(out), "http://203.0.113.81/slow.bin",
            stderr=subprocess.PIPE,
        )
        serve_until_exit(loop, [curl], 60.0)
        _, err = curl.communicate()
        assert curl.returncode == 0, err
        assert out.read_bytes() == body
        assert_all_relays_end(loop, proxy)
        assert proxy.peak_to_client <= 64 * 1024


def test_a_refusing_upstream_means_a_reset_for_the_client() -> None:
    port = free_port()  # nothing listens there
    with tun_namespace() as (namespace, devices):
        proxy = Proxy(("127.0.0.1", port))
        loop = Loop(Stack(Proxy.config()), devices, proxy)
        curl = namespace.popen("curl", "-sS", "http://203.0.113.82/", stderr=subprocess.PIPE)
        serve_until_exit(loop, [curl], 30.0)
        _, err = curl.communicate()
        assert curl.returncode == 7, err  # curl: "Failed to connect"
        python = namespace.popen(
            "python3", "-c", "import socket; socket.create_connection(('2001:db8:82::82', 80), timeout=20)",
            stderr=subprocess.PIPE,
        )
        serve_until_exit(loop, [python], 30.0)
        _, err = python.communicate()
        assert b"ConnectionRefusedError" in err
        assert proxy.refused == 2
        assert loop.stack.stats.tcp_established == 0


CLIENT_FACING = ip_address("198.51.100.90").packed


class WindowWatch(Loop):
    """The loop, noting the smallest TCP window l3l4 advertised to the proxy's client:
    read from every packet it sends from the served address, so that no zero window
    goes unseen, whatever the timing (sampling at events could miss it)."""

    smallest_window = 1 << 30

    def transmit(self, packet: bytearray, now: float) -> None:
        if packet[0] >> 4 == 4 and packet[9] == 6 and packet[12:16] == CLIENT_FACING:
            tcp = (packet[0] & 0x0F) * 4
            if not packet[tcp + 13] & 0x02:  # a SYN-ACK's window is never scaled, nor zero
                self.smallest_window = min(self.smallest_window, int.from_bytes(packet[tcp + 14 : tcp + 16], "big"))
        super().transmit(packet, now)


@pytest.mark.parametrize("slow", [False, True], ids=["fast-upstream", "slow-upstream"])
def test_half_close_and_upload_backpressure(slow: bool) -> None:
    port = free_port()
    server = hash_server(None, "127.0.0.1", port, 2 << 20, slow=slow)
    with tun_namespace() as (namespace, devices):
        proxy = Proxy(("127.0.0.1", port))
        stack = Stack(Proxy.config(tcp_tso_packet=65535, tcp_checksum_offload=True, tcp_receive_buffer=128 * 1024))
        loop = WindowWatch(stack, devices, proxy)
        client = half_close_client(namespace, "198.51.100.90", 443, 4 << 20, 2 << 20)
        serve_until_exit(loop, [client, server], 60.0)
        out, err = client.communicate()
        assert out.strip() == b"ok", err
        server.communicate()
        assert_all_relays_end(loop, proxy)
        assert proxy.peak_to_upstream <= 128 * 1024
        assert proxy.peak_to_client <= proxy.buffer_limit
        if slow:
            assert loop.smallest_window == 0  # the client was told to wait


def test_udp_through_the_proxy() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
        upstream.bind(("127.0.0.1", 0))
        port = upstream.getsockname()[1]

        def echo() -> None:
            while True:
                data, peer = upstream.recvfrom(65535)
                if data == b"stop":
                    return
                upstream.sendto(data, peer)

        thread = threading.Thread(target=echo)
        thread.start()
        try:
            with tun_namespace() as (namespace, devices):
                proxy = Proxy(("127.0.0.1", port))
                loop = Loop(Stack(Proxy.config()), devices, proxy)
                client = udp_client(namespace, "203.0.113.53", 53, [1, 512, 1400, 8000, 60000])
                serve_until_exit(loop, [client], 30.0)
                out, err = client.communicate()
                assert out.strip() == b"ok", err
                loop.run_until(lambda: False, 0.0)
                for flow in loop.stack.flows():
                    loop.close(flow)  # UDP: the application forgets the flow
                assert_all_relays_end(loop, proxy)
        finally:
            upstream.sendto(b"stop", ("127.0.0.1", port))
            thread.join()


LATE_READER = textwrap.dedent(
    """
    import hashlib, socket, sys, time
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # inherited: little is taken early
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        print(server.getsockname()[1], flush=True)
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"reply")
            conn.shutdown(socket.SHUT_WR)
            time.sleep(float(sys.argv[1]))  # the client's connection ends meanwhile
            digest, length = hashlib.sha256(), 0
            while chunk := conn.recv(1 << 16):
                digest.update(chunk)
                length += len(chunk)
    print(length, digest.hexdigest(), flush=True)
    """
)

UPLOAD_THEN_READ = textwrap.dedent(
    """
    import socket, sys
    with socket.create_connection(("203.0.113.84", 80), timeout=30) as s:
        s.sendall(bytes(int(sys.argv[1])))
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    print(got.decode(), flush=True)
    """
)


def test_an_upstream_reading_after_the_client_left_still_gets_everything() -> None:
    """The client uploads and half-closes; the upstream answers and half-closes at once
    but reads only later. The client's connection ends (both FINs through) while the
    proxy still holds most of the upload: it must write all of it before closing."""
    size = 4 << 20
    upstream = subprocess.Popen(["python3", "-c", LATE_READER, "2"], stdout=subprocess.PIPE)
    assert upstream.stdout is not None
    port = int(upstream.stdout.readline())
    with tun_namespace() as (namespace, devices):
        proxy = Proxy(("127.0.0.1", port))
        loop = Loop(Stack(Proxy.config(tcp_receive_buffer=8 << 20)), devices, proxy)
        client = namespace.popen("python3", "-c", UPLOAD_THEN_READ, str(size), stdout=subprocess.PIPE)
        # The case under test: the client's flow closed with bytes still for the upstream.
        assert loop.run_until(lambda: bool(proxy.draining), 30.0)
        serve_until_exit(loop, [client, upstream], 30.0)
        assert client.communicate()[0] == b"reply\n"
        assert_all_relays_end(loop, proxy)
        assert not proxy.draining
    out = upstream.communicate()[0].split()
    assert out == [str(size).encode(), hashlib.sha256(bytes(size)).hexdigest().encode()]


class LoopStub:
    """Just the calls a draining relay makes of its loop."""

    def __init__(self) -> None:
        self.writers: set[int] = set()

    def add_writer(self, fd: int, callback: object) -> None:
        self.writers.add(fd)

    def remove_writer(self, fd: int) -> None:
        self.writers.discard(fd)

    def remove_reader(self, fd: int) -> None:
        pass


def test_draining_relays_are_capped_oldest_reset_first() -> None:
    """Clients that leave bytes for an upstream that never reads cannot pile up sockets
    and buffers: past ``max_draining`` the oldest draining relay is reset."""
    proxy = Proxy(max_draining=2)
    loop = LoopStub()
    pairs = [socket.socketpair() for _ in range(3)]
    relays = []
    try:
        for index, (ours, _theirs) in enumerate(pairs):
            ours.setblocking(False)
            flow = Flow(Proto.TCP, ip_address("198.18.0.1"), 80, ip_address("198.51.100.9"), 40000 + index)
            relay = Relay(flow, ours, to_upstream=bytearray(8 << 20))  # more than the socket takes
            proxy.relays[flow] = relay
            relays.append(relay)
            proxy.on_event(loop, FlowClosed(flow, CloseReason.CLOSED))  # type: ignore[arg-type]
        assert list(proxy.draining) == relays[1:] and proxy.drains_cut == 1
        assert relays[0].sock.fileno() == -1  # reset and closed
        assert all(relay.sock.fileno() in loop.writers for relay in relays[1:])
    finally:
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
    with pytest.raises(ValueError):
        Proxy(max_draining=0)
