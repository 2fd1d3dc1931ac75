"""The README's main job: HTTP over a TUN device with h11 and trio, fetched by curl;
and the demo's web site against bad and large requests over an in-memory link."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import h11
import pytest
import trio
import trio.testing
from http_demo import MAX_BODY, Site, pattern

from l3l4_trio import memory_link_pair, open_stack

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "examples" / "http_demo.py"


def test_the_demo_fetches_every_page_intact() -> None:
    """``./scripts/demo``, exactly the README's main command."""
    result = subprocess.run([str(ROOT / "scripts" / "demo")], capture_output=True, timeout=300, check=False)
    out = result.stdout.decode()
    assert result.returncode == 0, (out, result.stderr.decode())
    lines = [line for line in out.splitlines() if line.startswith(("ok", "FAIL"))]
    assert len(lines) == 9 and all(line.startswith("ok") for line in lines), out
    assert out.count("sha-256 verified") == 2 and "Hello from 2001:db8:cafe::1:8080" in out
    assert "(with offloads)" in out
    digest = hashlib.sha256(pattern(16 << 20)).hexdigest()
    assert out.count(f"{digest} {16 << 20}") == 2  # both uploads, by length and chunked


def test_without_offloads_the_demo_fetches_every_page_too() -> None:
    result = subprocess.run([sys.executable, str(DEMO), "--no-offload"], capture_output=True, timeout=300, check=False)
    out = result.stdout.decode()
    assert result.returncode == 0, (out, result.stderr.decode())
    assert "(without offloads)" in out and out.count("\nok ") == 9, out


def test_without_privileges_the_demo_says_what_it_needs() -> None:
    argv = ["setpriv", "--bounding-set=-net_admin,-sys_admin", sys.executable, str(DEMO)]
    result = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert result.returncode == 1
    assert b"run it as root, or with CAP_NET_ADMIN and CAP_SYS_ADMIN" in result.stderr
    assert b"Traceback" not in result.stderr


def test_the_demo_serves_until_interrupted() -> None:
    demo = subprocess.Popen([sys.executable, str(DEMO), "--serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert demo.stdout is not None
    try:
        demo.stdout.readline()
        hint = demo.stdout.readline().decode()
        namespace = hint.split("ip netns exec ")[1].split()[0]
        page = subprocess.run(
            ["ip", "netns", "exec", namespace, "curl", "-sS", "http://198.18.1.1:8000/"],
            capture_output=True, timeout=30, check=False,
        )
        assert page.stdout.startswith(b"Hello from 198.18.1.1:8000"), page
    finally:
        demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=30)
    assert demo.returncode == 0, err
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, check=True).stdout.decode()
    assert namespace not in listing


async def exchange(raw: bytes) -> bytes:
    """Send ``raw`` to the site on 203.0.113.80:80 over an in-memory link; return all
    it answers until it closes."""
    a_link, b_link = memory_link_pair(delay=0.001)
    async with open_stack(a_link) as client_net, open_stack(b_link) as server_net, trio.open_nursery() as nursery:
        await nursery.start(server_net.serve_tcp, Site().serve)
        stream = await client_net.connect(("198.51.100.3", 0), ("203.0.113.80", 80))
        await stream.send_all(raw)
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
        await stream.aclose()
        nursery.cancel_scope.cancel()
    return answer


def responses(raw: bytes) -> list[int]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    statuses = []
    while (event := conn.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
        if isinstance(event, h11.Response):
            statuses.append(event.status_code)
        if isinstance(event, h11.EndOfMessage) and conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
        if isinstance(event, h11.ConnectionClosed):
            break
    return statuses


def run(raw: bytes) -> bytes:
    return trio.run(exchange, raw, clock=trio.testing.MockClock(autojump_threshold=0))


def test_garbage_gets_400_and_a_close() -> None:
    assert run(b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_unknown_paths_get_404_and_keep_alive_works() -> None:
    raw = b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    answer = run(raw)
    assert answer.startswith(b"HTTP/1.1 404 ") and responses(answer) == [404, 200]
    assert b"Hello from 203.0.113.80:80" in answer


def test_a_body_over_the_limit_gets_413() -> None:
    body = bytes(MAX_BODY + 1)
    raw = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert run(raw).startswith(b"HTTP/1.1 413 ")


def test_an_upload_expecting_100_continue_gets_it_before_the_answer() -> None:
    raw = (
        b"POST /sha256 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\n\r\nhello"
    )
    answer = run(raw)
    assert answer.startswith(b"HTTP/1.1 100 ")
    assert hashlib.sha256(b"hello").hexdigest().encode() + b" 5\n" in answer


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /nowhere HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n", b"404"),
        (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n" % (MAX_BODY + 1), b"413"),
    ],
    ids=["not-found", "too-large"],
)
def test_an_answer_the_headers_decide_comes_at_once_without_100_continue(head: bytes, status: bytes) -> None:
    """RFC 9110 §10.1.1: no 100 (Continue) for content that would not be used."""
    answer = run(head + b"Expect: 100-continue\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")


def test_echo_returns_the_body() -> None:
    raw = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
    answer = run(raw)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nhello")
