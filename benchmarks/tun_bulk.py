"""Bulk TCP between the Linux kernel and l3l4 through a TUN device: offloads on and
off, one queue and two (worker processes), against the kernel talking to itself over
loopback with the same client, in the same run. Needs root.

    sudo .venv/bin/python benchmarks/tun_bulk.py [MiB] [runs]

Each figure is the median of ``runs`` runs of ``MiB`` MiB per connection; the client is
a Python socket program in the namespace that times its own transfer.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from l3l4 import (
    Config,
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowOpened,
    Stack,
    Writable,
)
from l3l4_tun import Handler, Loop, Workers
from l3l4_tun.testing import KERNEL_V4, Namespace, serve_until_exit, tun_namespace

CLIENT = textwrap.dedent(
    """
    import json, socket, sys, threading, time
    host, port, size, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    chunk = bytes(1 << 20)

    def one():
        with socket.create_connection((host, port), timeout=60) as s:
            if mode == "up":
                left = size
                while left:
                    left -= s.send(memoryview(chunk)[: min(left, len(chunk))])
                s.shutdown(socket.SHUT_WR)
                assert s.recv(1) == b""
            else:
                got = 0
                while data := s.recv(1 << 20):
                    got += len(data)
                assert got == size, got

    threads = [threading.Thread(target=one) for _ in range(count)]
    start = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(time.perf_counter() - start))
    """
)

KERNEL_SERVER = textwrap.dedent(
    """
    import socket, sys, threading
    size, mode = int(sys.argv[1]), sys.argv[2]
    server = socket.create_server(("127.0.0.1", 5201), backlog=64)
    print("ready", flush=True)
    chunk = bytes(1 << 20)

    def serve(conn):
        with conn:
            if mode == "up":
                while conn.recv(1 << 20):
                    pass
            else:
                left = size
                while left:
                    left -= conn.send(memoryview(chunk)[: min(left, len(chunk))])

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,)).start()
    """
)


class Sink:
    """Takes every byte and drops it; closes after the peer does."""

    def on_event(self, loop: Loop, event: Event) -> None:
        if isinstance(event, EndOfStream):
            loop.close(event.flow)


class Source:
    """Sends ``size`` zero bytes on every connection it accepts, then closes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.left: dict[Flow, int] = {}
        self.chunk = memoryview(bytes(1 << 20))

    def on_event(self, loop: Loop, event: Event) -> None:
        flow = event.flow
        if isinstance(event, FlowOpened):
            self.left[flow] = self.size
        elif not isinstance(event, Writable | DataReceived) or flow not in self.left:
            return
        left = self.left[flow]
        while left:
            taken = loop.send(flow, self.chunk[: min(left, len(self.chunk))])
            if not taken:
                break
            left -= taken
        self.left[flow] = left
        if not left:
            del self.left[flow]
            loop.close(flow)


@dataclass
class Case:
    name: str
    mode: str
    offload: bool
    queues: int
    connections: int


def client(namespace: Namespace, host: str, size: int, count: int, mode: str) -> subprocess.Popen[bytes]:
    return namespace.popen(
        "python3", "-c", CLIENT, host, "5201", str(size), str(count), mode, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def elapsed_of(process: subprocess.Popen[bytes]) -> float:
    out, err = process.communicate(timeout=300)
    if process.returncode != 0:
        raise RuntimeError(err.decode())
    return float(json.loads(out))


def run_l3l4(case: Case, size: int) -> float:
    def handler() -> Handler:
        return Source(size) if case.mode == "down" else Sink()

    def stack() -> Stack[bytearray]:
        return Stack(Config(tcp_tso_packet=65535 if case.offload else 0, tcp_send_buffer=1 << 20))

    with tun_namespace(offload=case.offload, queues=case.queues) as (namespace, devices):
        if case.queues == 1:
            loop = Loop(stack(), devices, handler())
            process = client(namespace, "203.0.113.9", size, case.connections, case.mode)
            serve_until_exit(loop, [process], 300.0)
            return elapsed_of(process)
        workers = Workers(devices, handler, stack)
        workers.start()
        try:
            return elapsed_of(client(namespace, "203.0.113.9", size, case.connections, case.mode))
        finally:
            workers.stop()


def run_kernel(case: Case, size: int) -> float:
    with tun_namespace() as (namespace, _):
        server = namespace.popen(
            "python3", "-c", KERNEL_SERVER, str(size), case.mode, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            assert server.stdout is not None and server.stdout.readline() == b"ready\n"
            return elapsed_of(client(namespace, "127.0.0.1", size, case.connections, case.mode))
        finally:
            server.kill()
            server.communicate()


def median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size = mib << 20
    cases = [
        Case("kernel → l3l4, offloads off", "up", False, 1, 1),
        Case("kernel → l3l4, offloads on", "up", True, 1, 1),
        Case("l3l4 → kernel, offloads off", "down", False, 1, 1),
        Case("l3l4 → kernel, offloads on", "down", True, 1, 1),
        Case("kernel → l3l4, 4 flows, 1 queue", "up", True, 1, 4),
        Case("kernel → l3l4, 4 flows, 2 queues", "up", True, 2, 4),
        Case("l3l4 → kernel, 4 flows, 1 queue", "down", True, 1, 4),
        Case("l3l4 → kernel, 4 flows, 2 queues", "down", True, 2, 4),
    ]
    print(f"# TUN bulk TCP, {mib} MiB per flow, median of {runs}")
    print(f"{platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
          f"Linux {platform.release()}, kernel addresses {KERNEL_V4}")
    print()
    print("| workload | l3l4 MB/s | kernel↔kernel MB/s | ratio |")
    print("|---|---|---|---|")
    kernel: dict[tuple[str, int], float] = {}
    for case in cases:
        total = size * case.connections / 1e6
        ours = total / median(runs, lambda: run_l3l4(case, size))
        key = (case.mode, case.connections)
        if key not in kernel:
            kernel[key] = total / median(runs, lambda: run_kernel(case, size))
        print(f"| {case.name} | {ours:.0f} | {kernel[key]:.0f} | {ours / kernel[key]:.3f} |", flush=True)


if __name__ == "__main__":
    main()
