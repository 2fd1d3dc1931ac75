"""l3l4 and the Linux kernel behind an emulated bottleneck: 50 Mbit/s, RTT 2, 20 or
80 ms, random loss 0 to 5 % or one tail loss per transfer, in one run. Needs root.

    sudo .venv/bin/python benchmarks/bottleneck_tun.py [--quick] [--plot docs/images/goodput_vs_loss.png]

Options: ``--json PATH`` writes the raw figures (every transfer, the relay's counters,
the client's kernel's and l3l4's TCP counters), ``--verbose`` prints those counters for
each measurement to stderr, ``--mib``, ``--seconds``, ``--runs``, ``--seed`` and
``--rate`` change the sizes, the time cap, the tail transfers per cell, the loss seed
and the bottleneck rate. The full grid takes about 3 minutes; ``--quick`` (RTT 20 ms;
2 % loss and tail loss; 1 MiB transfers) about 15 s.

This kernel has no netem, so the bottleneck is a relay: a Python process of its own
between the client's TUN device and the server side. Each way it has a drop-tail queue
of one bandwidth-delay product in bytes (8 full packets at least), a rate limiter (a
packet takes ``bytes * 8 / rate`` to leave), then a one-way delay of RTT / 2. It waits in
``select`` (microsecond timeouts; epoll's are whole milliseconds) and reads in batches.

The paths, one new set per measurement, torn down after it (Ctrl-C included):

- kernel → kernel: a Python client in namespace A uploads over TUN A, through the
  relay, into TUN B of namespace B, where the kernel owns the server's address and a
  Python server (``tun_bulk.kernel_server``) reads.
- kernel → l3l4: the same client and relay; instead of TUN B the relay writes into one
  end of an AF_UNIX datagram socket pair whose other end is the device of a
  ``l3l4_tun.Loop`` serving a ``Stack`` in its own process (``tun_bulk.Sink``).
- l3l4 → kernel: the same, the client downloading from ``tun_bulk.Source``.

The kernel sends with CUBIC (``--kernel-cc``), as l3l4 does: this host's default is BBR,
which does not take random loss as congestion, so it is not a like-for-like reference.

Offloads are off everywhere (TUN devices without virtio-net headers; l3l4 with
``Config(tcp_tso_packet=0, tcp_checksum_offload=False)``), so both stacks see wire-sized
packets. l3l4's send and receive buffers are 4 MiB, about the kernel's autotuning
ceiling, so that neither limits the 80 ms path (one BDP is 500 kB, plus as much queue).

Loss applies only to packets that carry TCP payload, which in these one-way transfers
are the data direction's: handshakes, pure ACKs and bare FINs are never dropped. A lost
packet is dropped before the queue. Random loss: ``random.Random(seed)``, one draw per
data packet, the same seed for every measurement, so each direction sees the same
sequence of decisions. Tail loss: the relay notes each connection's initial sequence
number from its SYN and drops the first copy of the segment that ends its 100 kB
(100,000 bytes); the retransmission goes through.

Loss cells: one transfer of ``--mib`` MiB per direction, cut at ``--seconds``; goodput
is the bytes delivered (received, for a download; acknowledged, from ``TCP_INFO``, for
an upload cut short) over the client's time from before connecting. Tail cells: the
median of ``--runs`` transfers of 100 kB (``tun_bulk.client``), time to complete. A
ratio is l3l4's speed over the kernel's (kernel → kernel): goodput over goodput, or
the kernel's time over l3l4's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from l3l4 import Config, Stack
from l3l4_tun import Handler, Loop, TunDevice
from l3l4_tun.device import run_ip
from l3l4_tun.testing import Namespace, new_namespace, tun_namespace
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from tun_bulk import CC_VARIABLE, Sink, Source, client, elapsed_of, kernel_server, output_of

SERVER = "203.0.113.9"
"""The server's address: the kernel's in namespace B, or served by l3l4."""
PORT = 5201
"""tun_bulk's port, for its client and kernel server."""
TAIL_BYTES = 100_000
STACK_BUFFER = 4 << 20
"""l3l4's send and receive buffers."""
LINK_BUFFER = 4 << 20
"""SO_SNDBUF of the socket pair's ends (the kernel caps it at net.core.wmem_max)."""
MIN_QUEUE = 8 * 1500
READ_BATCH = 64
FORK = multiprocessing.get_context("fork")
SYN = 0x02

Report = dict[str, Any]
"""What a worker process sends back when stopped: counters by name."""

CAPPED_CLIENT = textwrap.dedent(
    """
    import json, os, socket, struct, sys, time
    host, port, size, mode, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    chunk = memoryview(bytes(1 << 16))
    start = time.perf_counter()
    deadline = start + cap
    done = 0

    def left():
        return max(deadline - time.perf_counter(), 1e-6)

    s = socket.create_connection((host, port), timeout=cap)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, os.environ.get(CC_VARIABLE, "cubic").encode())
    try:
        if mode == "up":
            while done < size:
                s.settimeout(left())
                done += s.send(chunk[: min(size - done, len(chunk))])
            s.shutdown(socket.SHUT_WR)
            s.settimeout(left())
            assert s.recv(1) == b""
        else:
            while done < size:
                s.settimeout(left())
                data = s.recv(1 << 20)
                assert data, done
                done += len(data)
    except TimeoutError:
        if mode == "up":
            # tcpi_bytes_acked: what the server has, not what sits in our buffer.
            done = struct.unpack_from("Q", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 120)[0]
    print(json.dumps([done, time.perf_counter() - start]))
    """
)
"""Uploads or downloads ``size`` bytes but stops at ``cap`` seconds; prints the bytes
delivered and the seconds taken."""
CAPPED_CLIENT = CAPPED_CLIENT.replace("CC_VARIABLE", repr(CC_VARIABLE))


# -- the relay ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkSettings:
    """What the relay emulates."""

    rate: float
    """Bits per second, each way."""
    rtt: float
    loss: float
    """Probability that a data packet is dropped."""
    tail_bytes: int
    """Drop the first copy of the segment that ends this many bytes (0: never)."""
    seed: int

    @property
    def queue_limit(self) -> int:
        """One bandwidth-delay product, in bytes, and a few packets at least."""
        return max(int(self.rate / 8 * self.rtt), MIN_QUEUE)


def tcp_header_view(packet: bytes) -> tuple[bytes, int, int, int] | None:
    """An IPv4 TCP packet's (addresses and ports as one key, flags, sequence number,
    payload length); ``None`` for anything else."""
    if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
        return None
    ip_length = (packet[0] & 0x0F) * 4
    tcp_length = (packet[ip_length + 12] >> 4) * 4
    key = packet[12:20] + packet[ip_length : ip_length + 4]
    sequence = int.from_bytes(packet[ip_length + 4 : ip_length + 8], "big")
    payload = int.from_bytes(packet[2:4], "big") - ip_length - tcp_length
    return key, packet[ip_length + 13], sequence, payload


class Impairment:
    """The relay's loss rules, for packets that carry TCP payload."""

    def __init__(self, loss: float, tail_bytes: int, seed: int) -> None:
        self.loss = loss
        self.tail_bytes = tail_bytes
        self.random = random.Random(seed)
        self.initial_sequence: dict[bytes, int] = {}
        self.tail_dropped: set[bytes] = set()

    def drops(self, packet: bytes) -> bool:
        view = tcp_header_view(packet)
        if view is None:
            return False
        key, flags, sequence, payload = view
        if flags & SYN:
            self.initial_sequence[key] = sequence
            return False
        if not payload:
            return False
        if self.tail_bytes and self._ends_transfer(key, sequence + payload):
            return True
        return self.loss > 0 and self.random.random() < self.loss

    def _ends_transfer(self, key: bytes, end: int) -> bool:
        """Whether a segment ending at ``end`` is the first copy of its connection's tail."""
        initial = self.initial_sequence.get(key)
        if initial is None or key in self.tail_dropped or (end - initial - 1) % (1 << 32) != self.tail_bytes:
            return False
        self.tail_dropped.add(key)
        return True


class Bottleneck:
    """One way through the relay: a drop-tail queue drained at the link's rate, then the
    one-way delay, then out to a device."""

    def __init__(self, out: TunDevice, settings: LinkSettings) -> None:
        self.out = out
        self.bytes_per_second = settings.rate / 8
        self.delay = settings.rtt / 2
        self.limit = settings.queue_limit
        self.busy_until = 0.0
        """When the link will have sent every packet queued so far."""
        self.in_flight: deque[tuple[float, bytes]] = deque()
        """Packets queued or on their way, with the time each arrives."""
        self.counts = {"forwarded": 0, "dropped_queue": 0, "dropped_loss": 0, "dropped_link": 0}

    def offer(self, packet: bytes, now: float) -> None:
        """Queue a packet, unless the queue holds too many bytes to take it."""
        backlog = max(0.0, self.busy_until - now) * self.bytes_per_second
        if backlog + len(packet) > self.limit:
            self.counts["dropped_queue"] += 1
            return
        self.busy_until = max(now, self.busy_until) + len(packet) / self.bytes_per_second
        self.in_flight.append((self.busy_until + self.delay, packet))

    def next_arrival(self) -> float | None:
        return self.in_flight[0][0] if self.in_flight else None

    def deliver(self, now: float) -> None:
        """Write every packet whose time has come (a full device queue drops it)."""
        while self.in_flight and self.in_flight[0][0] <= now:
            if self.out.write(self.in_flight.popleft()[1]):
                self.counts["forwarded"] += 1
            else:
                self.counts["dropped_link"] += 1


def read_batch(device: TunDevice) -> Iterator[bytes]:
    """The packets waiting on a device, up to a batch."""
    for _ in range(READ_BATCH):
        packet = device.read()
        if packet is None:
            return
        yield packet


def relay(control: Connection, client_end: TunDevice, server_end: TunDevice, settings: LinkSettings) -> None:
    """Move packets between the two ends through a :class:`Bottleneck` each way, until
    ``control`` speaks; then send back the counters."""
    impairment = Impairment(settings.loss, settings.tail_bytes, settings.seed)
    to_server, to_client = Bottleneck(server_end, settings), Bottleneck(client_end, settings)
    routes = {client_end.fd: (client_end, to_server), server_end.fd: (server_end, to_client)}
    watched = [control.fileno(), *routes]
    while True:
        arrivals = [due for way in (to_server, to_client) if (due := way.next_arrival()) is not None]
        timeout = max(0.0, min(arrivals) - time.monotonic()) if arrivals else None
        readable = select.select(watched, [], [], timeout)[0]
        if control.fileno() in readable:
            break
        now = time.monotonic()
        for fd in readable:
            source, way = routes[fd]
            for packet in read_batch(source):
                if impairment.drops(packet):
                    way.counts["dropped_loss"] += 1
                else:
                    way.offer(packet, now)
        now = time.monotonic()
        to_server.deliver(now)
        to_client.deliver(now)
    control.send({"client → server": to_server.counts, "server → client": to_client.counts})


# -- the l3l4 side -------------------------------------------------------------------------


class DatagramLink(TunDevice):
    """One end of an AF_UNIX datagram socket pair, standing in for a TUN device without
    offloads: one IP packet per datagram, read and written as a device's."""

    def __init__(self, end: socket.socket) -> None:
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LINK_BUFFER)
        end.setblocking(False)
        self.fd = end.detach()
        self.name = "datagram link"
        self.vnet_hdr = False
        self.multi_queue = False


def serve_l3l4(control: Connection, device: TunDevice, handler: Handler) -> None:
    """Serve ``handler`` with an l3l4 stack on ``device`` until ``control`` speaks; then
    send back the stack's counters."""
    config = Config(
        tcp_tso_packet=0,
        tcp_checksum_offload=False,
        tcp_send_buffer=STACK_BUFFER,
        tcp_receive_buffer=STACK_BUFFER,
    )
    stack: Stack[bytearray] = Stack(config)
    loop = Loop(stack, [device], handler)
    loop.add_reader(control.fileno(), loop.stop)
    loop.run()
    control.send({**stack.stats.as_dict(), "loop.tx_dropped": loop.tx_dropped})


# -- processes and namespaces ----------------------------------------------------------------


def _worker_main(target: Callable[..., None], control: Connection, *args: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its workers itself
    target(control, *args)


class Worker:
    """``target(control, *args)`` in a forked process, told to stop through ``control``."""

    def __init__(self, target: Callable[..., None], *args: object) -> None:
        self.control, child_control = FORK.Pipe()
        self.process = FORK.Process(target=_worker_main, args=(target, child_control, *args), daemon=True)
        self.process.start()
        child_control.close()

    def stop(self, timeout: float = 10.0) -> Report:
        """Ask it to stop; its report."""
        try:
            self.control.send("stop")
            if self.control.poll(timeout):
                report: Report = self.control.recv()
                self.process.join(timeout)
                return report
        except (BrokenPipeError, EOFError):
            pass
        raise RuntimeError(f"a worker did not report (exit code {self.process.exitcode})")

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.control.close()


@contextmanager
def running(target: Callable[..., None], *args: object) -> Iterator[Worker]:
    """A :class:`Worker`, killed on exit if it is still there."""
    worker = Worker(target, *args)
    try:
        yield worker
    finally:
        worker.kill()


@contextmanager
def reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """A client process, killed on exit if it is still running."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@contextmanager
def server_namespace() -> Iterator[tuple[Namespace, TunDevice]]:
    """Namespace B: its kernel owns ``SERVER`` on a TUN device without offloads, the
    default route back into the device, whose fd is open here."""
    with new_namespace() as namespace, TunDevice(offload=False) as device:
        inside = ("-n", namespace.name)
        run_ip("link", "set", device.name, "netns", namespace.name)
        run_ip(*inside, "link", "set", device.name, "addrgenmode", "none")
        run_ip(*inside, "addr", "add", f"{SERVER}/24", "dev", device.name)
        run_ip(*inside, "link", "set", device.name, "up")
        run_ip(*inside, "route", "add", "default", "dev", device.name)
        yield namespace, device


# -- measurements ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Direction:
    """Who sends the data, and so what serves the client."""

    label: str
    mode: str
    """The client's: "up" (it sends) or "down"."""
    l3l4: bool
    """l3l4 serves (else the kernel in namespace B)."""


KERNEL_TO_KERNEL = Direction("kernel → kernel", "up", l3l4=False)
KERNEL_TO_L3L4 = Direction("kernel → l3l4", "up", l3l4=True)
L3L4_TO_KERNEL = Direction("l3l4 → kernel", "down", l3l4=True)
DIRECTIONS = (KERNEL_TO_KERNEL, KERNEL_TO_L3L4, L3L4_TO_KERNEL)


@dataclass(frozen=True)
class Cell:
    """One row of the table: an RTT, and random loss or one tail loss per transfer."""

    rtt: float
    loss: float = 0.0
    tail: bool = False

    @property
    def label(self) -> str:
        return "tail" if self.tail else f"{self.loss * 100:g}%"


@dataclass
class Outcome:
    """One direction's measurement in one cell."""

    transfers: list[tuple[int, float]]
    """(bytes delivered, seconds) of each transfer."""
    relay: Report
    client_kernel: Report
    """The client namespace's TCP counters (``KERNEL_COUNTERS``)."""
    l3l4: Report | None

    @property
    def goodput(self) -> float:
        """MB/s, the median over the transfers."""
        return statistics.median(size / seconds / 1e6 for size, seconds in self.transfers)

    @property
    def seconds(self) -> float:
        return statistics.median(seconds for _, seconds in self.transfers)


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    rate: float
    """Bits per second."""
    rtts: tuple[float, ...]
    losses: tuple[float, ...]
    size: int
    """Bytes per transfer in the loss cells."""
    cap: float
    """Seconds at most per transfer in the loss cells."""
    tail_runs: int
    seed: int
    verbose: bool
    kernel_cc: str = "cubic"
    """The client kernel's congestion control (``net.ipv4.tcp_congestion_control`` in its
    namespace): CUBIC, as l3l4 runs, not whatever the host's default is (BBR here)."""

    def cells(self) -> list[Cell]:
        """The table's rows: by RTT, each loss, then tail loss."""
        return [
            cell for rtt in self.rtts for cell in (*(Cell(rtt, loss) for loss in self.losses), Cell(rtt, tail=True))
        ]


@contextmanager
def server_end(direction: Direction, size: int) -> Iterator[tuple[TunDevice, Worker | None]]:
    """The device the relay writes the server's packets to, and l3l4's process if it serves."""
    if not direction.l3l4:
        with server_namespace() as (namespace, device), kernel_server(namespace, size, direction.mode):
            yield device, None
        return
    relay_end, stack_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with DatagramLink(relay_end) as relay_side, DatagramLink(stack_end) as stack_side:
        handler = Source(size) if direction.mode == "down" else Sink()
        with running(serve_l3l4, stack_side, handler) as server:
            yield relay_side, server


def kernel_counters(namespace: Namespace) -> Report:
    """The namespace's ``KERNEL_COUNTERS``, as nstat reads them (its history untouched)."""
    lines = namespace.run("nstat", "-asz", *KERNEL_COUNTERS).stdout.decode().splitlines()
    return {name: int(value) for name, value, _ in (line.split() for line in lines[1:])}


def capped_transfer(namespace: Namespace, mode: str, size: int, cap: float) -> tuple[int, float]:
    command = ("python3", "-c", CAPPED_CLIENT, SERVER, str(PORT), str(size), mode, str(cap))
    with reaped(namespace.popen(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)) as process:
        done, seconds = output_of(process)
    return int(done), float(seconds)


def whole_transfer(namespace: Namespace, mode: str, size: int) -> tuple[int, float]:
    with reaped(client(namespace, SERVER, size, 1, mode)) as process:
        return size, elapsed_of(process)


def measure(plan: Plan, cell: Cell, direction: Direction) -> Outcome:
    """One direction of one cell, on paths set up for it alone."""
    settings = LinkSettings(plan.rate, cell.rtt, cell.loss, TAIL_BYTES if cell.tail else 0, plan.seed)
    size = TAIL_BYTES if cell.tail else plan.size
    with tun_namespace(offload=False) as (client_side, devices), server_end(direction, size) as (far_end, server):
        with running(relay, devices[0], far_end, settings) as bottleneck:
            if cell.tail:
                transfers = [whole_transfer(client_side, direction.mode, size) for _ in range(plan.tail_runs)]
            else:
                transfers = [capped_transfer(client_side, direction.mode, size, plan.cap)]
            counters = bottleneck.stop()
        return Outcome(transfers, counters, kernel_counters(client_side), server.stop() if server else None)


# -- output ------------------------------------------------------------------------------------

KERNEL_COUNTERS = (
    "TcpRetransSegs", "TcpExtTCPTimeouts", "TcpExtTCPLossProbes", "TcpExtTCPSackRecovery", "TcpExtTCPDSACKRecv",
    "TcpExtTCPDSACKOfoRecv", "TcpExtTCPSpuriousRTOs",
)
L3L4_COUNTERS = (
    "tcp_retransmits", "tcp_timeouts", "tcp_fast_recoveries", "tcp_tail_loss_probes", "tcp_lost_retransmits",
    "tcp_sack_blocks_ignored", "drop.tcp_reassembly_limit", "loop.tx_dropped",
)


def describe(cell: Cell, direction: Direction, outcome: Outcome) -> str:
    """A measurement with its counters, for ``--verbose``."""
    figure = f"{outcome.seconds * 1000:.0f} ms" if cell.tail else f"{outcome.goodput:.2f} MB/s"
    ways = "; ".join(f"{way} {counts}" for way, counts in outcome.relay.items())
    text = f"[{cell.rtt * 1000:g} ms, {cell.label}] {direction.label}: {figure}; relay: {ways}"
    text += "; client's kernel: " + ", ".join(f"{name} {count}" for name, count in outcome.client_kernel.items())
    if outcome.l3l4 is not None:
        text += "; l3l4: " + ", ".join(f"{name} {outcome.l3l4[name]}" for name in L3L4_COUNTERS)
    return text


def table_row(cell: Cell, outcomes: dict[Direction, Outcome]) -> str:
    kernel = outcomes[KERNEL_TO_KERNEL]

    def figure(outcome: Outcome) -> str:
        return f"{outcome.seconds * 1000:.0f} ms" if cell.tail else f"{outcome.goodput:.2f}"

    def ratio(outcome: Outcome) -> str:
        speed = kernel.seconds / outcome.seconds if cell.tail else outcome.goodput / kernel.goodput
        return f"{speed:.2f}"

    columns = [f"{cell.rtt * 1000:g} ms", cell.label, figure(kernel)]
    for direction in (KERNEL_TO_L3L4, L3L4_TO_KERNEL):
        columns += [figure(outcomes[direction]), ratio(outcomes[direction])]
    return "| " + " | ".join(columns) + " |"


def write_json(path: str, plan: Plan, results: dict[Cell, dict[Direction, Outcome]]) -> None:
    cells = [
        {
            "rtt_ms": cell.rtt * 1000,
            "loss": "tail" if cell.tail else cell.loss,
            "directions": {
                direction.label: {
                    "transfers": [{"bytes": size, "seconds": seconds} for size, seconds in outcome.transfers],
                    "goodput_MBps": outcome.goodput,
                    "median_seconds": outcome.seconds,
                    "relay": outcome.relay,
                    "client_kernel": outcome.client_kernel,
                    "l3l4": outcome.l3l4,
                }
                for direction, outcome in outcomes.items()
            },
        }
        for cell, outcomes in results.items()
    ]
    settings = {"rate_bps": plan.rate, "size": plan.size, "cap_seconds": plan.cap, "tail_bytes": TAIL_BYTES,
                "tail_runs": plan.tail_runs, "seed": plan.seed, "python": platform.python_version()}
    with open(path, "w") as file:
        json.dump({"settings": settings, "cells": cells}, file, indent=1, ensure_ascii=False)


def plot(path: str, plan: Plan, results: dict[Cell, dict[Direction, Outcome]]) -> None:
    """Goodput against random loss: a colour per direction, a line style per RTT."""
    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    styles = dict(zip(plan.rtts, ("-", "--", ":", "-.")))
    colours = {KERNEL_TO_KERNEL: "tab:gray", KERNEL_TO_L3L4: "tab:blue", L3L4_TO_KERNEL: "tab:orange"}
    markers = {KERNEL_TO_KERNEL: "s", KERNEL_TO_L3L4: "o", L3L4_TO_KERNEL: "^"}
    for rtt in plan.rtts:
        cells = [cell for cell in results if cell.rtt == rtt and not cell.tail]
        for direction in DIRECTIONS:
            axes.plot(
                [cell.loss * 100 for cell in cells],
                [results[cell][direction].goodput for cell in cells],
                linestyle=styles[rtt], color=colours[direction], marker=markers[direction], fillstyle="none",
                label=f"{direction.label}, RTT {rtt * 1000:g} ms",
            )
    axes.set_yscale("log")
    axes.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axes.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("random loss, data direction (%)")
    axes.set_ylabel("goodput (MB/s)")
    axes.set_title(f"Goodput against loss, {plan.rate / 1e6:g} Mbit/s bottleneck")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    figure.savefig(path, dpi=120, bbox_inches="tight")


def run(plan: Plan) -> dict[Cell, dict[Direction, Outcome]]:
    """Every cell, printing the table as it goes."""
    print(f"Python {platform.python_version()} on {platform.machine()}, Linux {platform.release()}; "
          f"{plan.rate / 1e6:g} Mbit/s bottleneck, queue one BDP, the kernel sending with {plan.kernel_cc}; "
          f"loss cells: {plan.size / (1 << 20):g} MiB "
          f"or {plan.cap:g} s per transfer; tail: median of {plan.tail_runs} transfers of {TAIL_BYTES:,} bytes")
    print()
    print("| RTT | loss | kernel → kernel MB/s (tail: ms) | kernel → l3l4 | ratio | l3l4 → kernel | ratio |")
    print("|---|---|---|---|---|---|---|")
    results: dict[Cell, dict[Direction, Outcome]] = {}
    for cell in plan.cells():
        outcomes = results[cell] = {}
        for direction in DIRECTIONS:
            outcomes[direction] = measure(plan, cell, direction)
            if plan.verbose:
                print(describe(cell, direction, outcomes[direction]), file=sys.stderr, flush=True)
        print(table_row(cell, outcomes), flush=True)
    return results


def parse_plan(argv: list[str]) -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="RTT 20 ms, 2%% loss and tail loss, small transfers")
    parser.add_argument("--mib", type=float, help="MiB per transfer in the loss cells (8; quick: 1)")
    parser.add_argument("--seconds", type=float, help="time cap per transfer in the loss cells (6; quick: 3)")
    parser.add_argument("--runs", type=int, help="100 kB transfers per tail cell (7; quick: 3)")
    parser.add_argument("--rate", type=float, default=50.0, help="bottleneck, Mbit/s (50)")
    parser.add_argument("--seed", type=int, default=1, help="the relay's loss seed (1)")
    parser.add_argument("--plot", metavar="PATH", help="draw goodput against loss into this PNG")
    parser.add_argument("--json", metavar="PATH", help="write the raw figures here")
    parser.add_argument("--verbose", action="store_true", help="each measurement's counters, on stderr")
    parser.add_argument("--kernel-cc", default="cubic", help="the kernel sender's congestion control (cubic)")
    args = parser.parse_args(argv)
    plan = Plan(
        rate=args.rate * 1e6,
        rtts=(0.02,) if args.quick else (0.002, 0.02, 0.08),
        losses=(0.02,) if args.quick else (0.0, 0.005, 0.02, 0.05),
        size=int((args.mib or (1 if args.quick else 8)) * (1 << 20)),
        cap=args.seconds or (3.0 if args.quick else 6.0),
        tail_runs=args.runs or (3 if args.quick else 7),
        seed=args.seed,
        verbose=args.verbose,
        kernel_cc=args.kernel_cc,
    )
    return plan, args


def main() -> None:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # cleaned up as after Ctrl-C
    plan, args = parse_plan(sys.argv[1:])
    os.environ[CC_VARIABLE] = plan.kernel_cc  # read by the kernel clients
    results = run(plan)
    if args.json:
        write_json(args.json, plan, results)
    if args.plot:
        plot(args.plot, plan, results)


if __name__ == "__main__":
    main()
