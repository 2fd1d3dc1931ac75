"""The ``l3l4-tun`` command as a user runs it: help, versions, clear errors without a
traceback, and real runs in a namespace with the kernel as the client, recording to a
pcap file that reads back."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from ipaddress import ip_address
from pathlib import Path

import pytest
from l3l4 import Flow, Proto
from l3l4_pcap import Direction, read_packets
from l3l4_tun.hello import answer
from l3l4_tun.testing import KERNEL_V4, KERNEL_V6, Namespace, new_namespace, require_root

COMMAND = str(Path(sys.executable).parent / "l3l4-tun")
DEVICE = ["--tun", "l3l4cli0", "--address", f"{KERNEL_V4}/24", "--address", f"{KERNEL_V6}/64"]
ROUTES = ["--route", "203.0.113.0/24", "--route", "2001:db8:c11::/48"]

CLIENT = textwrap.dedent(
    """
    import socket, sys
    for host in sys.argv[1:]:
        with socket.create_connection((host, 7), timeout=20) as s:
            s.sendall(b"x" * 300_000)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
            assert got == b"x" * 300_000, len(got)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            u.sendto(b"ping", (host, 53))
            assert u.recv(100) == b"ping"
    print("ok", flush=True)
    """
)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COMMAND, *argv], capture_output=True, text=True, timeout=30, check=False)


def test_help_names_every_command_and_option() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for name in ("echo", "proxy", "http", "--version"):
        assert name in result.stdout
    for command in ("echo", "proxy", "http"):
        result = run(command, "--help")
        assert result.returncode == 0, result.stderr
        for option in ("--tun", "--route", "--address", "--pcap", "--stats-every", "--duration"):
            assert option in result.stdout, (command, option)
    assert "--upstream" in run("proxy", "--help").stdout


def test_version_names_the_core_too() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("l3l4-tun ") and "(l3l4 " in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["serve"],
        ["proxy", "--upstream", "no-port"],
        ["proxy", "--upstream", "127.0.0.1:0"],
        ["proxy", "--upstream", "[::1]:65536"],
        ["echo", "--mtu", "big"],
        ["echo", "--mtu", "200"],
        ["echo", "--mtu", "65536"],
        ["echo", "--stats-every", "-1"],
        ["echo", "--stats-every", "nan"],
        ["http", "--duration", "-5"],
    ],
)
def test_bad_usage_exits_2_with_usage(argv: list[str]) -> None:
    # As root too: refused before any device is made.
    result = run(*argv)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: l3l4-tun")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("upstream", "message"),
    [
        ("203.0.113.5:80", "upstream 203.0.113.5 is routed into the device: every flow would loop"),
        ("no-such-host.invalid:80", "cannot resolve upstream no-such-host.invalid: "),  # RFC 6761 §6.4
    ],
)
def test_a_bad_upstream_is_a_setup_error_before_any_device(upstream: str, message: str) -> None:
    result = run("proxy", "--tun", "l3l4cli9", "--route", "203.0.113.0/24", "--upstream", upstream)
    assert result.returncode == 1
    assert result.stderr.startswith(f"l3l4-tun proxy: {message}") and result.stderr.count("\n") == 1
    assert not Path("/sys/class/net/l3l4cli9").exists()


def test_without_privileges_the_error_says_so_without_a_traceback() -> None:
    require_root()
    # root without CAP_NET_ADMIN, as an unprivileged user would be
    argv = ["setpriv", "--bounding-set=-net_admin", COMMAND, "echo", "--route", "203.0.113.0/24"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("l3l4-tun echo: ") and "CAP_NET_ADMIN" in result.stderr
    assert "Traceback" not in result.stderr


def test_pcap_without_the_extra_says_how_to_get_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['l3l4_pcap'] = None\n"  # as if l3l4-pcap were not installed
        "from l3l4_tun.cli import main\n"
        f"sys.exit(main(['echo', '--pcap', {str(tmp_path / 'x.pcapng')!r}]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "pip install 'l3l4-tun[pcap]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.pcapng").exists()


@contextmanager
def serving(namespace: Namespace, *argv: str) -> Iterator[subprocess.Popen[str]]:
    """``l3l4-tun ARGV`` inside the namespace, once it says it is serving."""
    server = subprocess.Popen(
        namespace.command(COMMAND, *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        ready = server.stderr.readline()
        assert f"l3l4-tun {argv[0]}: " in ready and " on l3l4cli0 for " in ready, ready + server.stderr.read()
        yield server
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_echo_serves_the_kernel_and_records_a_readable_pcap(tmp_path: Path) -> None:
    capture = tmp_path / "echo.pcapng"
    with new_namespace() as namespace:
        with serving(namespace, "echo", *DEVICE, *ROUTES, "--pcap", str(capture), "--stats-every", "0.2") as server:
            client = namespace.run(sys.executable, "-c", CLIENT, "203.0.113.7", "2001:db8:c11::7", timeout=60)
            assert client.returncode == 0 and client.stdout == b"ok\n", client.stderr
            assert server.stderr is not None
            stats = server.stderr.readline()  # the periodic stats line, within 0.2 s
            assert "] flows " in stats and " open, " in stats and " drops " in stats, stats
            server.send_signal(signal.SIGTERM)
            out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert "Traceback" not in err
    lines = out.splitlines()
    assert lines[0].startswith("served for ") and lines[-1] == f"wrote {capture}"
    summary = {name.strip(): int(count) for name, count in (line.rsplit(None, 1) for line in lines[1:-1])}
    assert summary["bytes echoed"] == 600_008  # 2 x 300000 over TCP, 2 x 4 over UDP
    assert summary["flows opened (TCP established + UDP)"] == 4
    assert summary["packets the recorder dropped"] == 0
    packets = list(read_packets(capture))
    assert len(packets) == summary["packets recorded"] > 20
    inbound = [p for p in packets if p.direction is Direction.INBOUND]
    destinations = {ip_address(bytes(p.data[16:20])) for p in inbound if p.data[0] >> 4 == 4}
    assert ip_address("203.0.113.7") in destinations
    assert any(p.data[0] >> 4 == 6 for p in inbound)


def test_http_answers_curl_on_any_address_and_stops_after_its_duration() -> None:
    with new_namespace() as namespace:
        with serving(namespace, "http", *DEVICE, *ROUTES, "--duration", "3", "--stats-every", "0") as server:
            page = namespace.run("curl", "-sS", "--max-time", "10", "http://203.0.113.80:8080/")
            assert page.returncode == 0, page.stderr
            assert page.stdout.startswith(b"Hello from 203.0.113.80:8080, served by l3l4"), page.stdout
            missing = namespace.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://[2001:db8:c11::1]/x")
            assert missing.stdout == b"404", missing
            out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert "] flows " not in err  # --stats-every 0: no stats lines
    assert "HTTP requests answered" in out


def test_a_vanished_device_is_a_runtime_error_after_the_summary() -> None:
    with new_namespace() as namespace:
        with serving(namespace, "echo", *DEVICE, *ROUTES, "--stats-every", "0") as server:
            namespace.check("ip", "link", "del", "l3l4cli0")
            out, err = server.communicate(timeout=20)
    assert server.returncode == 3, err
    assert out.startswith("served for ") and "bytes echoed" in out
    assert err.splitlines()[-1].startswith("l3l4-tun echo: stopped by an error while serving: ")
    assert "Traceback" not in err


def test_transparent_proxy_refuses_destinations_it_routes_instead_of_looping() -> None:
    """Without --upstream, a flow to a routed address would be proxied to that address,
    back into the device, as a new flow, and so on. Each is refused at once instead."""
    udp = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'q', ('203.0.113.53', 53))"
    with new_namespace() as namespace:
        with serving(namespace, "proxy", *DEVICE, *ROUTES, "--duration", "3", "--stats-every", "0") as server:
            started = time.monotonic()
            curl = namespace.run("curl", "-sS", "--max-time", "10", "http://203.0.113.80/", timeout=20)
            assert curl.returncode == 7, curl  # refused, not timed out (28)
            assert time.monotonic() - started < 2.0
            assert namespace.run(sys.executable, "-c", udp).returncode == 0
            out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert err.count("proxy: refusing flows to 203.0.113.80 ") == 1, err  # warned once
    summary = {name.strip(): int(count) for name, count in (line.rsplit(None, 1) for line in out.splitlines()[1:])}
    assert summary["flows refused (destination routed into the device)"] == 2  # the TCP and the UDP flow
    assert summary["flows opened (TCP established + UDP)"] == 1  # the UDP flow alone: no storm
    assert summary["flows closed (TCP and UDP, refused too)"] <= 2
    assert summary["flows refused (upstream unreachable)"] == 0


def test_proxy_relays_to_its_upstream() -> None:
    upstream = textwrap.dedent(
        """
        import socket
        with socket.create_server(("127.0.0.1", 9000)) as server:
            print("listening", flush=True)
            conn, _ = server.accept()
            with conn:
                conn.sendall(conn.recv(100).upper())
        """
    )
    with new_namespace() as namespace:
        listener = namespace.popen(sys.executable, "-c", upstream, stdout=subprocess.PIPE)
        assert listener.stdout is not None and listener.stdout.readline() == b"listening\n"
        with serving(namespace, "proxy", *DEVICE, *ROUTES, "--upstream", "127.0.0.1:9000", "--duration", "3") as server:
            client = namespace.run("sh", "-c", "printf hello | nc -w 5 203.0.113.99 443")
            assert client.stdout == b"HELLO", client
            out, err = server.communicate(timeout=20)
        listener.communicate(timeout=10)
    assert server.returncode == 0, err
    assert "flows refused (upstream unreachable)" in out


FLOW = Flow(Proto.TCP, ip_address("203.0.113.5"), 80, ip_address("192.0.2.1"), 40000)


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x", HTTPStatus.OK),
        (b"GET /?q=1 HTTP/1.0", HTTPStatus.OK),
        (b"HEAD / HTTP/1.1", HTTPStatus.OK),
        (b"GET /other HTTP/1.1", HTTPStatus.NOT_FOUND),
        (b"POST / HTTP/1.1\r\nContent-Length: 3", HTTPStatus.METHOD_NOT_ALLOWED),
        (b"GET /", HTTPStatus.BAD_REQUEST),
        (b"\x16\x03\x01 TLS", HTTPStatus.BAD_REQUEST),
    ],
)
def test_http_answers(request_head: bytes, status: HTTPStatus) -> None:
    reply = answer(request_head, FLOW)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status.value} ".encode())
    # RFC 9110 §15.5.6: a 405 names the methods allowed.
    assert (b"\r\nAllow: GET, HEAD\r\n" in head) == (status is HTTPStatus.METHOD_NOT_ALLOWED)
    assert b"Connection: close" in head and b"Content-Length: " in head
    if request_head.startswith(b"HEAD"):
        assert body == b""
    elif status is HTTPStatus.OK:
        assert body.startswith(b"Hello from 203.0.113.5:80,") and b"You are 192.0.2.1:40000." in body


def test_connections_prints_each_tcp_connections_figures_as_it_closes() -> None:
    """``--connections``: one line per TCP connection as it closes, with what TCP_INFO
    would say of it (here: 300,000 bytes each way, nothing retransmitted)."""
    with new_namespace() as namespace:
        with serving(namespace, "echo", *DEVICE, *ROUTES, "--stats-every", "0", "--connections") as server:
            client = namespace.run(sys.executable, "-c", CLIENT, "203.0.113.7", "2001:db8:c11::7", timeout=60)
            assert client.returncode == 0 and client.stdout == b"ok\n", client.stderr
            server.send_signal(signal.SIGTERM)
            _, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    lines = [line for line in err.splitlines() if "] TCP " in line]
    assert len(lines) == 2, err
    assert any(" -> 203.0.113.7:7 " in line for line in lines) and any(" -> [2001:db8:c11::7]:7 " in line for line in lines)
    for line in lines:
        assert "closed in " in line and "sent 300000 B acked, received 300000 B" in line, line
        assert "retransmitted 0 segments" in line and "srtt " in line and "ECN " in line, line
