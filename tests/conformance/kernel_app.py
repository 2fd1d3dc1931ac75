"""The application side of the kernel under test, run inside its namespace.

One line per command on stdin, one JSON line per answer on stdout. Connections are
keyed by the bench's port (the peer's port for accepted connections, the remote port
for connections made here), which the bench makes fresh for every probe.

    listen PORT                           listening sockets on 0.0.0.0 and [::]
    connect LOCAL_ADDR REMOTE_ADDR PORT   non-blocking connect from LOCAL_ADDR:PORT
    accept PORT TIMEOUT                   wait for the connection from PORT
    send PORT SIZE                        write SIZE zero bytes (all must be taken)
    shutdown PORT                         shutdown(SHUT_WR): the application's close
    read PORT                             what arrived since the last read
    abort PORT                            close with SO_LINGER 0 (RST), forget it

Sockets inline urgent data (``SO_OOBINLINE``), as RFC 6093 §5 asks of applications,
and send with CUBIC (RFC 9438, with proportional rate reduction in recovery, RFC 6937),
as l3l4 does by default, whatever the host's default (BBR paces and sets its own
window; a namespace may not choose a default the host does not allow, a socket may).
"""

from __future__ import annotations

import errno
import json
import socket
import struct
import sys
import time

IP_FREEBIND = 15
CONGESTION_CONTROL = b"cubic"
ENDS = {errno.ECONNRESET: "reset", errno.EPIPE: "reset", errno.ECONNREFUSED: "refused"}
"""How a pending socket error ends the stream, as the bench names it."""


class App:
    """The sockets the bench drives."""

    def __init__(self) -> None:
        self.listeners: list[socket.socket] = []
        self.connections: dict[int, socket.socket] = {}
        self.ended: set[int] = set()

    def listen(self, port: int) -> object:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CONGESTION_CONTROL)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind((host, port))
            listener.listen(4096)
            listener.setblocking(False)
            self.listeners.append(listener)
        return "ok"

    def connect(self, local: str, remote: str, port: int) -> object:
        family = socket.AF_INET6 if ":" in local else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, CONGESTION_CONTROL)
        sock.bind((local, port))
        sock.setblocking(False)
        sock.connect_ex((remote, port))
        self.connections[port] = sock
        return "ok"

    def _accept_pending(self) -> None:
        for listener in self.listeners:
            while True:
                try:
                    sock, peer = listener.accept()
                except BlockingIOError:
                    break
                sock.setblocking(False)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
                self.connections[peer[1]] = sock

    def accept(self, port: int, timeout: float) -> object:
        deadline = time.monotonic() + timeout
        while True:
            self._accept_pending()
            if port in self.connections:
                return "ok"
            if time.monotonic() > deadline:
                return "timeout"
            time.sleep(0.002)

    def send(self, port: int, size: int) -> object:
        sent = self.connections[port].send(bytes(size))
        return "ok" if sent == size else f"error: {sent} of {size} bytes taken"

    def shutdown(self, port: int) -> object:
        self.connections[port].shutdown(socket.SHUT_WR)
        return "ok"

    def read(self, port: int) -> object:
        """``[hex data, "" | "eof" | "reset" | "refused"]``: what arrived since the last read."""
        self._accept_pending()
        sock = self.connections.get(port)
        if sock is None:
            return ["", ""]
        data = bytearray()
        end = ""
        while True:
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                break
            except (ConnectionResetError, BrokenPipeError):
                end = "reset"
            except ConnectionRefusedError:
                end = "refused"
            except OSError as error:
                end = f"error {error.errno}"
            if end:
                self.ended.add(port)
                break
            if not chunk:
                if port not in self.ended:
                    end = "eof"
                    self.ended.add(port)
                break
            data += chunk
        if not end:
            # A reset after the end of the stream shows only as the socket's error.
            pending = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if pending:
                end = ENDS.get(pending, f"error {pending}")
                self.ended.add(port)
        return [data.hex(), end]

    def abort(self, port: int) -> object:
        sock = self.connections.pop(port, None)
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        return "ok"


def main() -> None:
    app = App()
    for line in sys.stdin:
        command, *args = line.split()
        try:
            if command == "listen":
                answer = app.listen(int(args[0]))
            elif command == "connect":
                answer = app.connect(args[0], args[1], int(args[2]))
            elif command == "accept":
                answer = app.accept(int(args[0]), float(args[1]))
            elif command == "send":
                answer = app.send(int(args[0]), int(args[1]))
            elif command == "shutdown":
                answer = app.shutdown(int(args[0]))
            elif command == "read":
                answer = app.read(int(args[0]))
            elif command == "abort":
                answer = app.abort(int(args[0]))
            else:
                answer = f"unknown command {command}"
        except OSError as error:
            answer = f"error {error!r}"
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
