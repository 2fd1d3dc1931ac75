"""Kernel-side clients and servers run inside a test namespace, as Python scripts."""

from __future__ import annotations

import socket
import subprocess
import textwrap

from l3l4_tun.testing import Namespace

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TCP_CLIENTS = textwrap.dedent(
    """
    import hashlib, socket, sys, threading
    host, port, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    failures = []

    def one(index):
        data = hashlib.shake_256(str(index).encode()).digest(size) if size else b""
        try:
            with socket.create_connection((host, port), timeout=60) as s:
                sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
                sender.start()
                got = hashlib.sha256()
                length = 0
                while chunk := s.recv(1 << 18):
                    got.update(chunk)
                    length += len(chunk)
                sender.join()
        except OSError as error:
            failures.append((index, repr(error)))
            return
        if got.digest() != hashlib.sha256(data).digest():
            failures.append((index, length))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads: t.start()
    for t in threads: t.join()
    print("failures", failures)
    sys.exit(1 if failures else 0)
    """
)


def python_tcp_clients(namespace: Namespace, host: str, port: int, size: int, count: int) -> subprocess.Popen[bytes]:
    """``count`` concurrent connections to ``host:port``, each sending ``size`` bytes
    and checking by hash that the same bytes come back; exits 1 on any difference."""
    return namespace.popen(
        "python3", "-c", TCP_CLIENTS, host, str(port), str(size), str(count),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


UDP_CLIENT = textwrap.dedent(
    """
    import socket, sys
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    for size in map(int, sys.argv[3:]):
        data = bytes((i * 7) % 256 for i in range(size))
        s.sendto(data, (sys.argv[1], int(sys.argv[2])))
        got, _ = s.recvfrom(65535)
        assert got == data, (size, len(got))
    print("ok")
    """
)


def udp_client(namespace: Namespace, host: str, port: int, sizes: list[int]) -> subprocess.Popen[bytes]:
    """Sends one datagram of each size and expects it back unchanged; prints ok."""
    return namespace.popen(
        "python3", "-c", UDP_CLIENT, host, str(port), *map(str, sizes),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


HASH_SERVER = textwrap.dedent(
    """
    import hashlib, socket, sys, time
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    reply_size, count, slow = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "slow"
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if slow:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        server.bind((sys.argv[1], int(sys.argv[2])))
        server.listen(64)
        print("ready", flush=True)
        for _ in range(count):
            conn, peer = server.accept()
            with conn:
                digest = hashlib.sha256()
                while chunk := conn.recv(16384 if slow else 1 << 18):
                    digest.update(chunk)
                    if slow:
                        time.sleep(0.002)
                conn.sendall(digest.digest() + hashlib.shake_256(b"reply").digest(reply_size))
            print(peer[0], flush=True)
    """
)


def hash_server(
    namespace: Namespace | None, host: str, port: int, reply_size: int, count: int = 1, slow: bool = False
) -> subprocess.Popen[bytes]:
    """A kernel TCP server (in ``namespace``, or in the test's own with ``None``): for
    each of ``count`` connections it reads to EOF, then answers with the SHA-256 of what
    it read and ``reply_size`` known bytes (``shake_256(b"reply")``). ``slow``: it reads
    in small bites with pauses, through a small socket buffer. Returns once listening."""
    argv = ["python3", "-c", HASH_SERVER, host, str(port), str(reply_size), str(count), "slow" if slow else "fast"]
    server = subprocess.Popen(
        namespace.command(*argv) if namespace is not None else argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert server.stdout is not None
    assert server.stdout.readline() == b"ready\n", server.stderr.read() if server.stderr else b""
    return server


HALF_CLOSE_CLIENT = textwrap.dedent(
    """
    import hashlib, socket, sys
    host, port, size, reply_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data = hashlib.shake_256(b"upload").digest(size)
    with socket.create_connection((host, port), timeout=60) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := s.recv(1 << 18):
            got += chunk
    expected = hashlib.sha256(data).digest() + hashlib.shake_256(b"reply").digest(reply_size)
    print("ok" if got == expected else f"mismatch {len(got)}")
    """
)


def half_close_client(namespace: Namespace, host: str, port: int, size: int, reply_size: int) -> subprocess.Popen[bytes]:
    """Uploads ``size`` bytes, half-closes, then expects what :func:`hash_server`
    answers; prints ok."""
    return namespace.popen(
        "python3", "-c", HALF_CLOSE_CLIENT, host, str(port), str(size), str(reply_size),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
