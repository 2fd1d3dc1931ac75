"""A small blocking HTTP/1.1 responder for every address: ``l3l4-tun http``.

Every TCP connection, to any address and port, gets one answer and is closed:
``GET /`` (or ``HEAD /``) says which address and port it was served as and who asked;
any other path is ``404``, any other method ``405``, a malformed request ``400`` and a
request head over :data:`MAX_HEAD` bytes ``431``. Request bodies are not read. It needs
no HTTP library and no async framework: the handler runs on :class:`~l3l4_tun.Loop`.
(For a full site with keep-alive, uploads and downloads, see ``examples/http_demo.py``,
served under trio with h11.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

from l3l4 import DataReceived, EndOfStream, Event, Flow, FlowClosed, Proto, Writable

from .loop import Loop

__all__ = ["MAX_HEAD", "HttpHello", "page"]

MAX_HEAD = 16 * 1024
"""Largest request head (request line and headers) read before answering ``431``."""


def page(flow: Flow) -> bytes:
    """The body of ``GET /`` on ``flow``: the address it was served as, and the client's."""
    return (
        f"Hello from {flow.local_ip}:{flow.local_port}, served by l3l4 in Python.\n"
        f"You are {flow.remote_ip}:{flow.remote_port}. Every address routed here answers.\n"
    ).encode()


def response(status: HTTPStatus, body: bytes, head_only: bool = False, headers: str = "") -> bytes:
    """A complete ``HTTP/1.1`` response that closes the connection; ``headers``: more
    header lines, each ending in CRLF."""
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        f"{headers}"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "Server: l3l4-tun\r\n\r\n"
    ).encode()
    return head if head_only else head + body


def answer(request: bytes, flow: Flow) -> bytes:
    """The response to one request head (without its final blank line)."""
    line = request.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return response(HTTPStatus.BAD_REQUEST, b"bad request\n")
    method, target, _ = parts
    if method not in ("GET", "HEAD"):
        # RFC 9110 §15.5.6: a 405 response must carry Allow, the methods the target supports.
        return response(HTTPStatus.METHOD_NOT_ALLOWED, b"GET or HEAD only\n", headers="Allow: GET, HEAD\r\n")
    if target.split("?", 1)[0] != "/":
        return response(HTTPStatus.NOT_FOUND, b"not found\n", method == "HEAD")
    return response(HTTPStatus.OK, page(flow), method == "HEAD")


@dataclass
class _Connection:
    head: bytearray = field(default_factory=bytearray)
    """The request head so far, until it is complete."""
    reply: bytearray | None = None
    """The response not yet taken by the stack, once the head is complete."""
    closed: bool = False
    """The whole response is out and our FIN queued; later bytes are ignored."""


@dataclass
class HttpHello:
    """The handler: reads each connection's request head, answers it, closes.

    UDP datagrams are ignored. Responses wait for ``Writable`` when the stack's send
    buffer is full, like any other bytes.
    """

    connections: dict[Flow, _Connection] = field(default_factory=dict)
    requests: int = 0
    """Requests answered (any status)."""

    def on_event(self, loop: Loop, event: Event) -> None:
        """Serve one event of the stack."""
        flow = event.flow
        if flow.proto is not Proto.TCP:
            return
        connection = self.connections.get(flow)
        if isinstance(event, DataReceived):
            if connection is None:
                connection = self.connections[flow] = _Connection()
            if connection.reply is None:
                connection.head += event.data
                self._parse(connection, flow)
            self._flush(loop, flow, connection)
        elif isinstance(event, Writable):
            if connection is not None:
                self._flush(loop, flow, connection)
        elif isinstance(event, EndOfStream):
            if connection is None or connection.reply is None:
                self.connections.pop(flow, None)
                loop.close(flow)  # the client gave up before a whole request
        elif isinstance(event, FlowClosed):
            self.connections.pop(flow, None)

    def _parse(self, connection: _Connection, flow: Flow) -> None:
        end = connection.head.find(b"\r\n\r\n")
        if end >= 0:
            connection.reply = bytearray(answer(bytes(connection.head[:end]), flow))
        elif len(connection.head) > MAX_HEAD:
            connection.reply = bytearray(response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, b"too large\n"))
        else:
            return
        connection.head.clear()
        self.requests += 1

    def _flush(self, loop: Loop, flow: Flow, connection: _Connection) -> None:
        if connection.reply is None or connection.closed:
            return
        del connection.reply[: loop.send(flow, connection.reply)]
        if not connection.reply:
            connection.closed = True
            loop.close(flow)
