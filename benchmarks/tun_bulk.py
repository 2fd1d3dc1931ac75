"""Bulk TCP between the Linux kernel and l3l4 through a TUN device: offloads on and
off, one queue and two (worker processes), against the kernel talking to itself across
a veth pair with the same client, in the same run. Needs root.

    sudo .venv/bin/python benchmarks/tun_bulk.py [MiB] [runs]

Each figure is the median of ``runs`` runs of ``MiB`` MiB per connection; the client is
a Python socket program in the namespace that times its own transfer.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
from l3l4_tun.device import run_ip
from l3l4_tun.testing import KERNEL_V4, Namespace, new_namespace, serve_until_exit, tun_namespace

CLIENT = textwrap.dedent(
    """
    import json, os, socket, sys, threading, time
    host, port, size, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    chunk = bytes(1 << 20)
    congestion = os.environ.get(CC_VARIABLE, "cubic").encode()

    def one():
        with socket.create_connection((host, port), timeout=60) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, congestion)
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

"""A kernel client: the kernel sends with CUBIC, as l3l4 does (this host's default is
BBR, which does not take random loss for congestion), unless ``CC_VARIABLE`` says."""
CC_VARIABLE = "L3L4_BENCH_KERNEL_CC"
CLIENT = CLIENT.replace("CC_VARIABLE", repr(CC_VARIABLE))

KERNEL_SERVER = textwrap.dedent(
    """
    import socket, sys, threading
    size, mode = int(sys.argv[1]), sys.argv[2]
    server = socket.create_server(("0.0.0.0", 5201), backlog=64)
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


def output_of(process: subprocess.Popen[bytes]) -> Any:
    """What a client printed, as JSON; its error output raised if it failed."""
    out, err = process.communicate(timeout=300)
    if process.returncode != 0:
        raise RuntimeError(err.decode())
    return json.loads(out)


def elapsed_of(process: subprocess.Popen[bytes]) -> float:
    return float(output_of(process))


@dataclass
class Run:
    seconds: float
    """The client's own timing of its transfer."""
    cpu: float | None
    """CPU seconds the serving process spent (one queue only: the loop runs here)."""


def run_l3l4(case: Case, size: int) -> Run:
    def handler() -> Handler:
        return Source(size) if case.mode == "down" else Sink()

    def stack() -> Stack[bytearray]:
        return Stack(
            Config(tcp_tso_packet=65535 if case.offload else 0, tcp_checksum_offload=case.offload, tcp_send_buffer=1 << 20)
        )

    with tun_namespace(offload=case.offload, queues=case.queues) as (namespace, devices):
        if case.queues == 1:
            loop = Loop(stack(), devices, handler())
            cpu = time.process_time()
            process = client(namespace, "203.0.113.9", size, case.connections, case.mode)
            serve_until_exit(loop, [process], 300.0)
            return Run(elapsed_of(process), time.process_time() - cpu)
        workers = Workers(devices, handler, stack)
        workers.start()
        try:
            return Run(elapsed_of(client(namespace, "203.0.113.9", size, case.connections, case.mode)), None)
        finally:
            workers.stop()


@contextmanager
def kernel_server(namespace: Namespace, size: int, mode: str) -> Iterator[None]:
    """The kernel serving the client on port 5201 in ``namespace``: it takes what an
    uploading client sends, or sends ``size`` bytes to a downloading one; killed on exit."""
    server = namespace.popen(
        "python3", "-c", KERNEL_SERVER, str(size), mode, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        yield
    finally:
        server.kill()
        server.communicate()


def run_kernel(case: Case, size: int) -> float:
    """The same client against a kernel server in another namespace, over a veth pair:
    the ceiling, the kernel talking to itself across a virtual wire."""
    with new_namespace() as client_side, new_namespace() as server_side:
        veth = f"l3l4v{os.getpid() % 10000}"
        run_ip("link", "add", f"{veth}a", "netns", client_side.name, "type", "veth", "peer", f"{veth}b",
               "netns", server_side.name)
        client_side.check("ip", "addr", "add", "192.0.2.1/24", "dev", f"{veth}a")
        server_side.check("ip", "addr", "add", "192.0.2.2/24", "dev", f"{veth}b")
        client_side.check("ip", "link", "set", f"{veth}a", "up")
        server_side.check("ip", "link", "set", f"{veth}b", "up")
        with kernel_server(server_side, size, case.mode):
            return elapsed_of(client(client_side, "192.0.2.2", size, case.connections, case.mode))


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
    print("| workload | l3l4 MB/s | l3l4 Mbit/s | l3l4 CPU ns/byte | kernel↔kernel (veth) MB/s | ratio |")
    print("|---|---|---|---|---|---|")
    kernel: dict[tuple[str, int], float] = {}
    for case in cases:
        total = size * case.connections
        runs_l3l4 = [run_l3l4(case, size) for _ in range(runs)]
        seconds = statistics.median(run.seconds for run in runs_l3l4)
        cpus = [run.cpu for run in runs_l3l4 if run.cpu is not None]
        cpu = f"{statistics.median(cpus) / total * 1e9:.1f}" if cpus else "(workers)"
        key = (case.mode, case.connections)
        if key not in kernel:
            kernel[key] = total / 1e6 / median(runs, lambda: run_kernel(case, size))
        ours = total / 1e6 / seconds
        print(
            f"| {case.name} | {ours:.0f} | {ours * 8:.0f} | {cpu} | {kernel[key]:.0f} | {ours / kernel[key]:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
