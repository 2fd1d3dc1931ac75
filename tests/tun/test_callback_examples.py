"""The two l3l4kit-style examples (``examples/callbacks_echo.py`` and
``examples/callbacks_proxy.py``) against the Linux kernel through a TUN device: socat,
nc and curl in a namespace, IPv4 and IPv6, 0 B to 16 MiB, half-close both ways,
resets both ways, an upstream that refuses. Each ends with nothing left behind: no
flow in the stack, no socket or file descriptor in the process, every packet buffer
back in the pool."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from callbacks_echo import EchoServer
from callbacks_proxy import ProxyServer
from l3l4_tun.testing import Namespace, new_namespace, tun_namespace
from support.clients import free_port, hash_server, udp_client
from tun_callbacks import TunCallbackApp

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
SIZES = [0, 1, 100_000, 16 << 20]


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def serve(app: TunCallbackApp, processes: list[subprocess.Popen[bytes]], timeout: float = 60.0) -> None:
    """Run ``app`` until every process has exited; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    app.run(until=lambda: all(p.poll() is not None for p in processes) or time.monotonic() > end)
    if not all(p.poll() is not None for p in processes):
        for process in processes:
            process.kill()
        stack = app.net.stack
        flows = [stack.flow_info(flow) for flow in stack.flows() if flow.proto.name == "TCP"]
        raise AssertionError(f"clients did not finish within {timeout} s: {flows}")


def settle(app: TunCallbackApp, done: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    app.run(until=lambda: done() or time.monotonic() > end)
    assert done(), app.net.stack.flows()


@contextmanager
def echo_server() -> Iterator[tuple[Namespace, EchoServer]]:
    before = open_fds()
    with tun_namespace(offload=False) as (namespace, devices):
        server = EchoServer(devices[0], EchoServer.config(udp_idle_timeout=1.0), pool_size=64)
        try:
            yield namespace, server
            # UDP flows end by their idle timeout, TCP ones by their close.
            settle(server, lambda: not server.net.stack.flows())
            assert server.pending == {} and server.closing == set()
            assert len(server.pool) == server.pool_size
        finally:
            server.close()
    assert open_fds() == before


def random_file(path: Path, size: int) -> Path:
    path.write_bytes(hashlib.shake_256(str(size).encode()).digest(size) if size else b"")
    return path


def shell(namespace: Namespace, command: str) -> subprocess.Popen[bytes]:
    return namespace.popen("sh", "-c", f"exec {command}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finished(process: subprocess.Popen[bytes]) -> bytes:
    out, err = process.communicate()
    assert process.returncode == 0, (out, err)
    return out


# -- echo ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["203.0.113.7", "[2001:db8:e::7]"], ids=["ipv4", "ipv6"])
def test_echo_with_socat_from_0_bytes_to_16_mib(host: str, tmp_path: Path) -> None:
    """socat sends a file, half-closes, and waits for the echo's EOF: each comes back whole."""
    with echo_server() as (namespace, server):
        clients, files = [], []
        for size in SIZES:
            sent, got = random_file(tmp_path / f"in{size}", size), tmp_path / f"out{size}"
            files.append((sent, got))
            clients.append(shell(namespace, f"socat -t 60 - TCP:{host}:7 < {sent} > {got}"))
        serve(server, clients)
        for client in clients:
            finished(client)
        for sent, got in files:
            assert got.read_bytes() == sent.read_bytes(), sent.name
        assert server.net.stack.stats.tcp_established == len(SIZES)


@pytest.mark.parametrize("host", ["203.0.113.8", "2001:db8:e::8"], ids=["ipv4", "ipv6"])
def test_echo_with_nc_and_udp(host: str, tmp_path: Path) -> None:
    sent = random_file(tmp_path / "in", 3 << 20)
    with echo_server() as (namespace, server):
        nc = shell(namespace, f"nc -N {host} 7 < {sent} > {tmp_path / 'out'}")
        # Datagrams up to 3000 bytes: fragmented both ways at MTU 1500.
        udp = udp_client(namespace, host, 53, [1, 512, 1472, 3000])
        serve(server, [nc, udp])
        finished(nc)
        assert finished(udp).strip() == b"ok"
        assert (tmp_path / "out").read_bytes() == sent.read_bytes()
        assert server.net.stack.stats.fragments_reassembled >= 1


RESETTING_CLIENT = textwrap.dedent(
    """
    import socket, struct, sys, time
    with socket.create_connection((sys.argv[1], 7), timeout=20) as s:
        s.sendall(b"x" * 100000)
        time.sleep(0.2)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    print("reset sent")
    """
)


@pytest.mark.parametrize("host", ["203.0.113.9", "2001:db8:e::9"], ids=["ipv4", "ipv6"])
def test_a_client_reset_ends_the_echo_flow(host: str) -> None:
    with echo_server() as (namespace, server):
        client = namespace.popen(sys.executable, "-c", RESETTING_CLIENT, host, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        serve(server, [client])
        assert finished(client).strip() == b"reset sent"
        settle(server, lambda: not server.net.stack.flows())


def documented(example: str) -> list[str]:
    """The command line docs/core.md prints for ``example``, less ``sudo`` and the
    interpreter (the test's own runs it, from the checkout's root)."""
    prefix = f"sudo .venv/bin/python examples/{example}"
    [line] = [line for line in (ROOT / "docs" / "core.md").read_text().splitlines() if line.startswith(prefix)]
    return line.split()[2:]


def run_as_printed(namespace: Namespace, example: str) -> subprocess.Popen[bytes]:
    """Start the example as the docs print it; return once it says it is serving."""
    server = namespace.popen(
        sys.executable, *documented(example), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert server.stdout is not None
    assert server.stdout.readline().startswith((b"echoing on", b"proxying on")), server.communicate()
    return server


def stopped_by_sigterm(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=10)
    assert server.returncode == 0, err


def test_the_echo_example_runs_as_printed_and_closes_on_sigterm(tmp_path: Path) -> None:
    sent = random_file(tmp_path / "in", 200_000)
    with new_namespace() as namespace:
        server = run_as_printed(namespace, "callbacks_echo.py")
        for host in ("203.0.113.7", "[2001:db8:e::1]"):
            finished(shell(namespace, f"socat -t 20 - TCP:{host}:7 < {sent} > {tmp_path / 'out'}"))
            assert (tmp_path / "out").read_bytes() == sent.read_bytes()
        stopped_by_sigterm(server)


def test_the_proxy_example_runs_as_printed_and_closes_on_sigterm(tmp_path: Path) -> None:
    sent = random_file(tmp_path / "page", 300_000)
    with new_namespace() as namespace:
        # The upstream the docs name, on the namespace's own loopback.
        web = namespace.popen(
            sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path), "8080",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            namespace.check("timeout", "10", "sh", "-c", "until ss -ltn | grep -q 127.0.0.1:8080; do sleep 0.05; done")
            server = run_as_printed(namespace, "callbacks_proxy.py")
            finished(shell(namespace, f"curl -sS --fail -o {tmp_path / 'got'} http://198.18.0.1/page"))
            assert (tmp_path / "got").read_bytes() == sent.read_bytes()
            stopped_by_sigterm(server)
        finally:
            web.kill()
            web.communicate()


@pytest.mark.parametrize("example", ["callbacks_echo.py", "callbacks_proxy.py"])
def test_the_callback_examples_explain_themselves(example: str) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / example), "--help"], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
    assert b"--tun" in result.stdout and b"--route" in result.stdout and b"--pool" in result.stdout


# -- proxy -----------------------------------------------------------------------------


UPSTREAM = textwrap.dedent(
    """
    import hashlib, socket, struct, sys
    port, mode = int(sys.argv[1]), sys.argv[2]
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen()
        conn, _ = srv.accept()
    if mode == "echo":
        while data := conn.recv(65536):
            conn.sendall(data)
    elif mode == "speaks-first":  # then closes its side, and reads to the client's EOF
        conn.sendall(b"greeting" * 100000)
        conn.shutdown(socket.SHUT_WR)
        digest = hashlib.sha256()
        while chunk := conn.recv(65536):
            digest.update(chunk)
        print(digest.hexdigest())
    elif mode == "resets":
        assert conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        print("reset sent")
    else:  # watches: how does the client's side end?
        try:
            while conn.recv(65536):
                pass
            print("eof")
        except ConnectionResetError:
            print("reset seen")
    conn.close()
    """
)
"""One connection on 127.0.0.1:PORT, served in one of four ways (MODE)."""


def upstream(*argv: str) -> subprocess.Popen[bytes]:
    """A kernel server in the test's own namespace (see :func:`wait_listening`), in a
    session of its own: :func:`stop` ends it with whatever it forked."""
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


def wait_listening(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if f":{port:04X} " in Path("/proc/net/tcp").read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on port {port}")


@contextmanager
def proxy_server(port: int) -> Iterator[tuple[Namespace, ProxyServer]]:
    before = open_fds()
    with tun_namespace(offload=False) as (namespace, devices):
        server = ProxyServer(devices[0], ("127.0.0.1", port), pool_size=64)
        try:
            yield namespace, server
            settle(server, lambda: not server.net.stack.flows() and not server.relays)
            assert len(server.pool) == server.pool_size
        finally:
            server.close()
    assert open_fds() == before, "a socket or descriptor was left open"


@pytest.fixture
def http_upstream(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """``python3 -m http.server`` on loopback, serving a directory."""
    port = free_port()
    server = upstream(sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tmp_path), str(port))
    try:
        wait_listening(port)
        yield tmp_path, port
    finally:
        stop(server)


@pytest.mark.parametrize("host", ["198.18.0.80", "[2001:db8:80::80]"], ids=["ipv4", "ipv6"])
def test_curl_through_the_proxy_from_0_bytes_to_16_mib(http_upstream: tuple[Path, int], host: str, tmp_path: Path) -> None:
    root, port = http_upstream
    with proxy_server(port) as (namespace, server):
        curls = [
            shell(namespace, f"curl -sS --fail -o {tmp_path / f'got{size}'} http://{host}/in{size}")
            for size in SIZES
            if random_file(root / f"in{size}", size)
        ]
        serve(server, curls)
        for curl in curls:
            finished(curl)
        for size in SIZES:
            assert (tmp_path / f"got{size}").read_bytes() == (root / f"in{size}").read_bytes()


@pytest.mark.parametrize("host", ["198.18.0.81", "[2001:db8:80::81]"], ids=["ipv4", "ipv6"])
def test_socat_through_the_proxy_half_closing_from_the_client(host: str, tmp_path: Path) -> None:
    """16 MiB up to an echo and back; socat's FIN reaches the upstream as a shutdown,
    whose echo ends with the upstream's FIN back to socat. (The upstream is Python:
    socat's own ``PIPE`` echo stalls under load, a blocking write into its full pipe.)"""
    port = free_port()
    echo = upstream(sys.executable, "-c", UPSTREAM, str(port), "echo")
    try:
        wait_listening(port)
        sent = random_file(tmp_path / "in", 16 << 20)
        with proxy_server(port) as (namespace, server):
            client = shell(namespace, f"socat -t 60 - TCP:{host}:7 < {sent} > {tmp_path / 'out'}")
            serve(server, [client])
            finished(client)
            assert (tmp_path / "out").read_bytes() == sent.read_bytes()
    finally:
        stop(echo)


def test_the_upstream_half_closing_first(tmp_path: Path) -> None:
    """The upstream speaks, closes its side, and still reads all the client sends."""
    port = free_port()
    server_first = upstream(sys.executable, "-c", UPSTREAM, str(port), "speaks-first")
    try:
        wait_listening(port)
        with proxy_server(port) as (namespace, server):
            client = namespace.popen(
                sys.executable, "-c", LISTENS_FIRST, "2001:db8:80::82", stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            serve(server, [client])
            assert finished(client).strip() == b"greeting ok"
        out, err = server_first.communicate(timeout=10)
        assert out.split() == [hashlib.sha256(b"y" * 2_000_000).hexdigest().encode()], err
    finally:
        stop(server_first)


def test_the_client_half_closing_first_through_the_proxy() -> None:
    """hash_server reads to the client's EOF, then answers and closes."""
    port = free_port()
    hashes = hash_server(None, "127.0.0.1", port, reply_size=1 << 20)
    try:
        with proxy_server(port) as (namespace, server):
            client = namespace.popen(
                sys.executable, "-c", HALF_CLOSER, "198.18.0.83", stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            serve(server, [client])
            assert finished(client).strip() == b"ok"
        hashes.communicate(timeout=10)
    finally:
        hashes.kill()


LISTENS_FIRST = textwrap.dedent(
    """
    import socket, sys
    with socket.create_connection((sys.argv[1], 80), timeout=30) as s:
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
        s.sendall(b"y" * 2_000_000)  # after the upstream's FIN: half-closed, still open this way
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""
    print("greeting", "ok" if got == b"greeting" * 100000 else len(got))
    """
)

HALF_CLOSER = textwrap.dedent(
    """
    import hashlib, socket, sys
    data = b"z" * 3_000_000
    with socket.create_connection((sys.argv[1], 80), timeout=30) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(65536):
            got += chunk
    expected = hashlib.sha256(data).digest() + hashlib.shake_256(b"reply").digest(1 << 20)
    print("ok" if got == expected else f"mismatch {len(got)}")
    """
)

RESET_CLIENT = textwrap.dedent(
    """
    import socket, struct, sys, time
    mode = sys.argv[2]
    with socket.create_connection((sys.argv[1], 80), timeout=30) as s:
        s.sendall(b"request")
        if mode == "resets":
            time.sleep(0.3)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            print("reset sent")
        else:
            try:
                print("eof" if s.recv(100) == b"" else "data")
            except ConnectionResetError:
                print("reset seen")
    """
)


@pytest.mark.parametrize(
    ("resetting", "host"),
    [("client", "198.18.0.84"), ("client", "2001:db8:80::84"), ("upstream", "198.18.0.85"), ("upstream", "2001:db8:80::85")],
)
def test_a_reset_on_either_side_is_a_reset_on_the_other(resetting: str, host: str) -> None:
    port = free_port()
    far = upstream(sys.executable, "-c", UPSTREAM, str(port), "resets" if resetting == "upstream" else "watches")
    try:
        wait_listening(port)
        with proxy_server(port) as (namespace, server):
            client = namespace.popen(
                sys.executable, "-c", RESET_CLIENT, host, "resets" if resetting == "client" else "watches",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            serve(server, [client])
            assert finished(client).strip() == (b"reset sent" if resetting == "client" else b"reset seen")
        out, err = far.communicate(timeout=10)
        assert out.strip() == (b"reset seen" if resetting == "client" else b"reset sent"), err
    finally:
        stop(far)


@pytest.mark.parametrize("host", ["198.18.0.86", "[2001:db8:80::86]"], ids=["ipv4", "ipv6"])
def test_an_upstream_that_refuses_means_a_reset_for_the_client(host: str) -> None:
    with proxy_server(free_port()) as (namespace, server):
        curl = shell(namespace, f"curl -sS --max-time 20 http://{host}/")
        serve(server, [curl])
        _, err = curl.communicate()
        # The reset follows the SYN-ACK at once: curl fails to connect (7) or to read (56).
        assert curl.returncode in (7, 56) and b"onnect" in err or b"reset" in err, err
        assert server.refused == 1
