"""HTTP over a TUN device, served by l3l4 under trio with h11, for every address.

    sudo python examples/http_demo.py               # set up, fetch with curl, report, clean up
    sudo python examples/http_demo.py --serve       # keep serving until Ctrl-C
    sudo python examples/http_demo.py --no-offload  # raw IP packets, no kernel offloads

It makes a network namespace whose default routes (IPv4 and IPv6) lead into a TUN
device, serves a small web site on every address and port routed there, and has the
kernel's curl fetch pages from addresses that exist nowhere else: documentation
prefixes (203.0.113.0/24, 198.18.0.0/15, 2001:db8::/32). Each answer says which
address it was served as. Nothing outside the namespace is touched, and it is deleted
on exit.

The device offloads checksums and TCP segmentation (a virtio-net header on every
packet, ``TunLink(fd, offload=True)``): the kernel hands the stack 64 KiB super-packets
and splits the 64 KiB packets the stack sends. ``--no-offload`` moves MTU-sized raw IP
packets instead, for comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import h11
import trio

import l3l4_trio
from l3l4 import Config
from l3l4_tun import TunError
from l3l4_tun.testing import Namespace, require_root, tun_namespace

MAX_BODY = 1 << 20
"""Largest request body the site takes (POST /echo); more is refused with 413."""
MAX_UPLOAD = 1 << 30
"""Largest body POST /sha256 reads (it keeps none of it)."""
MAX_DOWNLOAD = 1 << 30
CHUNK = 1 << 16


def pattern(size: int) -> bytes:
    """The bytes ``/bytes/<size>`` serves: repeatable, so a client can check them."""
    return hashlib.shake_256(b"l3l4 http demo").digest(size)


class Site:
    """The web site: ``GET /`` (the flow you reached), ``GET /bytes/<n>`` and
    ``GET /stream/<n>`` (downloads with a length or chunked), ``POST /echo`` (the body
    back) and ``POST /sha256`` (the body's digest, for uploads of any size)."""

    async def serve(self, stream: l3l4_trio.TcpStream) -> None:
        """One HTTP/1.1 connection, with keep-alive, until either side closes it."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        while True:
            try:
                event = await self._next_event(stream, conn)
                if isinstance(event, h11.ConnectionClosed):
                    return
                assert isinstance(event, h11.Request)
                await self._respond(stream, conn, event)
            except h11.RemoteProtocolError as error:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(stream, conn, error.error_status_hint, b"bad request\n", close=True)
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # one side asked to close, or a request body was left unread
            conn.start_next_cycle()

    async def _next_event(self, stream: l3l4_trio.TcpStream, conn: h11.Connection) -> h11.Event:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(CHUNK))
            elif isinstance(event, h11.Event):
                return event
            else:  # PAUSED: we always finish a response before reading on
                raise h11.RemoteProtocolError("request while paused", error_status_hint=400)

    async def _continue(self, stream: l3l4_trio.TcpStream, conn: h11.Connection) -> None:
        """Answer ``Expect: 100-continue`` (RFC 9110 §10.1.1) before reading a body: curl
        sends one for a large upload and otherwise waits a second before the body."""
        if conn.they_are_waiting_for_100_continue:
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")

    async def _read_body(self, stream: l3l4_trio.TcpStream, conn: h11.Connection, wanted: bool) -> bytes | None:
        """The request's body, or None if it is larger than ``MAX_BODY``. A body the
        route does not use, behind ``Expect: 100-continue``, is not asked for: RFC 9110
        §10.1.1 wants the final answer at once (the connection closes after it, the
        body unread)."""
        if not wanted and conn.they_are_waiting_for_100_continue:
            return b""
        await self._continue(stream, conn)
        body = bytearray()
        while True:
            event = await self._next_event(stream, conn)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise h11.RemoteProtocolError("the request ended early", error_status_hint=400)

    async def _digest_body(self, stream: l3l4_trio.TcpStream, conn: h11.Connection) -> None:
        """Answer with the SHA-256 and length of the request body, read as it streams."""
        await self._continue(stream, conn)
        digest = hashlib.sha256()
        size = 0
        while not isinstance(event := await self._next_event(stream, conn), h11.EndOfMessage):
            if not isinstance(event, h11.Data):
                raise h11.RemoteProtocolError("the request ended early", error_status_hint=400)
            digest.update(event.data)
            size += len(event.data)
            if size > MAX_UPLOAD:
                await self._send(stream, conn, 413, b"too large\n", close=True)
                return
        await self._send(stream, conn, 200, f"{digest.hexdigest()} {size}\n".encode())

    async def _respond(self, stream: l3l4_trio.TcpStream, conn: h11.Connection, request: h11.Request) -> None:
        target = request.target.decode("ascii", "replace")
        flow = stream.flow
        limit = MAX_UPLOAD if target == "/sha256" else MAX_BODY
        too_large = request.method == b"POST" and target in ("/sha256", "/echo") and _declared_length(request) > limit
        if too_large and conn.they_are_waiting_for_100_continue:
            # RFC 9110 §10.1.1: the header fields decide the answer; it goes at once,
            # before the client sends a body nobody would read.
            await self._send(stream, conn, 413, b"too large\n", close=True)
            return
        if request.method == b"POST" and target == "/sha256":
            await self._digest_body(stream, conn)
            return
        body = await self._read_body(stream, conn, wanted=request.method == b"POST" and target == "/echo")
        if body is None:
            await self._send(stream, conn, 413, b"too large\n", close=True)
        elif request.method == b"POST" and target == "/echo":
            await self._send(stream, conn, 200, body, "application/octet-stream")
        elif request.method in (b"GET", b"HEAD") and target == "/":
            page = (
                f"Hello from {flow.local_ip}:{flow.local_port}, served by l3l4 in Python.\n"
                f"You are {flow.remote_ip}:{flow.remote_port}. Every address routed here answers.\n"
            )
            await self._send(stream, conn, 200, page.encode())
        elif request.method == b"GET" and target.startswith(("/bytes/", "/stream/")) and target[1:].partition("/")[2].isdigit():
            size = int(target[1:].partition("/")[2])
            if size > MAX_DOWNLOAD:
                await self._send(stream, conn, 413, b"too large\n")
            else:
                await self._download(stream, conn, size, chunked=target.startswith("/stream/"))
        else:
            await self._send(stream, conn, 404, b"not found\n")

    async def _download(self, stream: l3l4_trio.TcpStream, conn: h11.Connection, size: int, chunked: bool) -> None:
        """``size`` bytes of :func:`pattern`, with a length or in chunked encoding."""
        headers = [("Content-Type", "application/octet-stream")]
        headers.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(size)))
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
        body = pattern(size)
        for start in range(0, size, CHUNK):
            await stream.send_all(conn.send(h11.Data(data=body[start : start + CHUNK])) or b"")
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")

    async def _send(
        self,
        stream: l3l4_trio.TcpStream,
        conn: h11.Connection,
        status: int,
        body: bytes,
        kind: str = "text/plain",
        close: bool = False,
    ) -> None:
        headers = [("Content-Type", kind), ("Content-Length", str(len(body)))]
        if close:
            headers.append(("Connection", "close"))
        data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
        data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)


SIXTEEN_MIB = 16 << 20


@dataclass
class Fetch:
    """One curl run inside the namespace and what it must bring back: text the body
    starts with, or (``digest``) the hex SHA-256 of the whole body."""

    what: str
    argv: list[str]
    expect: bytes
    digest: bool = False


CURL = ["curl", "-sS", "--fail", "--max-time", "60", "-w", "\\n%{json}"]


def fetches(upload: str) -> list[Fetch]:
    """What curl fetches; ``upload`` is a file of ``pattern(SIXTEEN_MIB)``."""
    expected = hashlib.sha256(pattern(SIXTEEN_MIB)).hexdigest().encode()
    return [
        Fetch("GET / (IPv4)", ["http://203.0.113.7/"], b"Hello from 203.0.113.7:80"),
        Fetch("GET / (IPv6)", ["http://[2001:db8:cafe::1]:8080/"], b"Hello from 2001:db8:cafe::1:8080"),
        Fetch("GET / (another prefix)", ["http://198.18.44.2:3000/"], b"Hello from 198.18.44.2:3000"),
        Fetch(
            "POST /echo",
            ["--data-binary", "posted through a userspace TCP stack", "http://203.0.113.9/echo"],
            b"posted through a userspace TCP stack",
        ),
        Fetch("GET 16 MiB (length)", [f"http://203.0.113.10/bytes/{SIXTEEN_MIB}"], expected, digest=True),
        Fetch("GET 16 MiB (chunked, IPv6)", [f"http://[2001:db8::10]/stream/{SIXTEEN_MIB}"], expected, digest=True),
        Fetch("POST 16 MiB (length)", ["--data-binary", f"@{upload}", "http://198.18.0.20/sha256"], expected),
        Fetch(
            "POST 16 MiB (chunked)",
            ["-H", "Transfer-Encoding: chunked", "--data-binary", f"@{upload}", "http://[2001:db8:5::20]/sha256"],
            expected,
        ),
        Fetch(
            "keep-alive, 2 requests",
            ["http://203.0.113.11/", "http://203.0.113.11/bytes/1000"],
            b"Hello from 203.0.113.11:80",
        ),
    ]


async def run_fetch(namespace: Namespace, fetch: Fetch) -> tuple[bool, str]:
    """Run one curl; return whether it brought what it should, and a report line."""
    started = time.perf_counter()
    result = await trio.run_process(
        namespace.command(*CURL, *fetch.argv), capture_stdout=True, capture_stderr=True, check=False
    )
    elapsed = time.perf_counter() - started
    body, _, meta = result.stdout.rpartition(b"\n")
    info = json.loads(meta) if meta.startswith(b"{") else {}
    if fetch.digest:
        good = hashlib.sha256(body).hexdigest().encode() == fetch.expect
    else:
        good = body.startswith(fetch.expect)
    good = good and result.returncode == 0
    size = max(int(info.get("size_download", len(body))), int(info.get("size_upload", 0)))
    speed = f"{size / elapsed / 1e6:7.1f} MB/s" if size > 1 << 20 else ""
    status = "ok  " if good else "FAIL"
    detail = "sha-256 verified" if fetch.digest else body[:80].decode(errors="replace").split("\n")[0]
    error = result.stderr.decode().strip()
    line = f"{status} {fetch.what:26} HTTP {info.get('http_code', '---')} {size:>9} B {elapsed:6.2f} s {speed:>12}  {detail}"
    return good, line + (f"\n     {error}" if error else "")


async def fetch_all(namespace: Namespace, net: l3l4_trio.Network) -> bool:
    """Fetch every page of :func:`fetches` at once with curl; print a report."""
    results: dict[int, tuple[bool, str]] = {}

    async def one(index: int, fetch: Fetch) -> None:
        results[index] = await run_fetch(namespace, fetch)

    with tempfile.TemporaryDirectory(prefix="l3l4-demo-") as scratch:
        upload = Path(scratch) / "upload.bin"
        upload.write_bytes(pattern(SIXTEEN_MIB))
        async with trio.open_nursery() as clients:
            for index, fetch in enumerate(fetches(str(upload))):
                clients.start_soon(one, index, fetch)
    for index in sorted(results):
        print(results[index][1])
    stats = net.stack.stats
    print(
        f"stack: {stats.tcp_established} connections, {stats.rx_packets} packets in, "
        f"{stats.tx_packets} out, {stats.tcp_retransmits} retransmitted, {stats.dropped} dropped"
    )
    return all(good for good, _ in results.values())


async def until_signalled(namespace: Namespace) -> bool:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        print(f"try: sudo ip netns exec {namespace.name} curl http://203.0.113.1/   (Ctrl-C stops)", flush=True)
        async for _ in signals:
            break
    return True


def _declared_length(request: h11.Request) -> int:
    """The request's ``Content-Length`` (0 without one; chunked bodies declare none)."""
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)
    return 0


async def demo(serve_forever: bool, offload: bool) -> bool:
    with tun_namespace(offload=offload) as (namespace, devices):
        # With offload, open_stack turns on Config.tcp_tso_packet and tcp_checksum_offload:
        # the kernel segments 64 KiB packets and completes their checksums.
        link = l3l4_trio.TunLink(devices[0].fd, mtu=1500, offload=offload)
        config = Config(tcp_send_buffer=1 << 20, tcp_receive_buffer=1 << 20)
        async with l3l4_trio.open_stack(link, config) as net, trio.open_nursery() as nursery:
            await nursery.start(net.serve_tcp, Site().serve)
            print(
                f"serving HTTP for every address routed into {devices[0].name} in namespace {namespace.name}"
                f" ({'with' if offload else 'without'} offloads)"
            )
            ok = await (until_signalled(namespace) if serve_forever else fetch_all(namespace, net))
            nursery.cancel_scope.cancel()
        await link.aclose()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C instead of fetching")
    parser.add_argument(
        "--no-offload", action="store_true", help="no checksum or segmentation offload: raw IP packets of MTU size"
    )
    args = parser.parse_args()
    try:
        require_root()
        sys.exit(0 if trio.run(demo, args.serve, not args.no_offload) else 1)
    except (RuntimeError, TunError) as error:
        sys.exit(
            "the demo creates a network namespace and a TUN device: run it as root, or with "
            f"CAP_NET_ADMIN and CAP_SYS_ADMIN (sudo ./scripts/demo)\n({error})"
        )


if __name__ == "__main__":
    main()
