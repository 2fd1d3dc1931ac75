"""Soak: 100,000 concurrent TCP flows, then a long mixed workload, through two stacks
back to back in memory; memory per flow, and a leak check at the end.

    uv run python benchmarks/soak.py [--flows 100000] [--seconds 600] [--rate 20] [--seed 1]

1. ``--flows`` connections, each from its own client address and port to one server,
   established and left idle: tracemalloc and VmRSS growth per connection (both stacks
   hold one for each: the figures are per connection, per stack).
2. ``--seconds`` of simulated time on a lossy link (1 % loss each way, 5 ms delay,
   seeded) with the idle flows still open: ``--rate`` new connections a second, each
   sending 1-64 KiB both ways and closing (every byte checked at the other end); one in
   ten reset halfway by the client; one in twenty whose peer vanishes after the
   handshake (the server's retransmissions time out); one in twenty whose handshake
   never completes (both sides' SYN retries run out); UDP flows that idle out; large
   fragmented datagrams, some missing a fragment (reassembly times out).
3. Every idle flow closed, the clock run past TIME_WAIT and every timer: both stacks
   must hold nothing (flows, timers, buffer bytes, reassembly), and traced memory must
   be back to where it started.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import platform
import random
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowClosed,
    FlowOpened,
    Output,
    Proto,
    Stack,
    Writable,
)

SERVER = IPv4Address("203.0.113.80")
IDLE_BASE = int(IPv4Address("198.18.0.0"))
BUSY_BASE = int(IPv4Address("198.19.0.0"))
VANISHED_BASE = int(IPv4Address("198.19.128.0"))


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def flow_from(base: int, index: int, proto: Proto = Proto.TCP, port: int = 80) -> Flow:
    address, client_port = divmod(index, 60000)
    return Flow(proto, IPv4Address(base + address), 1024 + client_port, SERVER, port)


@dataclass
class Link:
    """Both stacks, a clock, and packets in flight (delay, seeded loss, blackholes)."""

    client: Stack[bytearray]
    server: Stack[bytearray]
    rng: random.Random
    loss: float = 0.0
    delay: float = 0.005
    now: float = 0.0
    queue: list[tuple[float, int, bool, bytearray]] = field(default_factory=list)
    order: int = 0
    blackholed: set[bytes] = field(default_factory=set)
    """Client addresses whose packets (both ways) are lost for good."""
    packets: int = 0

    def send(self, to_server: bool, out: Output[bytearray], handler: Handler) -> None:
        for event in out.events:
            handler.on_event(self, to_server, event)  # events of the stack that sent them
        for packet in out.packets:
            client_address = bytes(packet[12:16]) if to_server else bytes(packet[16:20])
            if client_address in self.blackholed or self.rng.random() < self.loss:
                continue
            self.order += 1
            heapq.heappush(self.queue, (self.now + self.delay, self.order, to_server, packet))

    def run_until(self, until: float, handler: Handler) -> None:
        while True:
            deadlines = [d for d in (self.client.next_deadline(), self.server.next_deadline()) if d is not None]
            next_timer = min(deadlines, default=None)
            next_packet = self.queue[0][0] if self.queue else None
            step = min((t for t in (next_timer, next_packet) if t is not None), default=None)
            if step is None or step > until:
                self.now = until
                return
            self.now = max(self.now, step)
            if next_packet is not None and next_packet <= self.now:
                _, _, to_server, packet = heapq.heappop(self.queue)
                target = self.server if to_server else self.client
                self.packets += 1
                self.send(not to_server, target.l3_rx(packet, self.now), handler)
            else:
                self.send(True, self.client.l4_poll(self.now), handler)
                self.send(False, self.server.l4_poll(self.now), handler)


@dataclass
class Transfer:
    up: bytes
    down: bytes
    sent_up: int = 0
    sent_down: int = 0
    got_up: bytearray = field(default_factory=bytearray)
    got_down: bytearray = field(default_factory=bytearray)
    abort_at: int | None = None
    """Client bytes sent after which the client resets the connection."""


@dataclass
class Handler:
    """The applications on both ends, and the tally."""

    transfers: dict[Flow, Transfer] = field(default_factory=dict)
    closed: dict[CloseReason, int] = field(default_factory=dict)
    completed: int = 0
    corrupted: int = 0
    udp_datagrams: int = 0

    def on_event(self, link: Link, at_client: bool, event: Event) -> None:
        flow = event.flow
        key = flow if at_client else flow.reversed()
        if isinstance(event, FlowClosed):
            self.closed[event.reason] = self.closed.get(event.reason, 0) + 1
            if at_client:
                self.transfers.pop(key, None)
            return
        if flow.proto is Proto.UDP:
            self.udp_datagrams += isinstance(event, DataReceived)
            return
        transfer = self.transfers.get(key)
        if transfer is None:
            return
        if isinstance(event, (FlowOpened, Writable)):
            self.push(link, at_client, flow, transfer)
        elif isinstance(event, DataReceived):
            (transfer.got_down if at_client else transfer.got_up).extend(event.data)
        elif isinstance(event, EndOfStream) and not at_client:
            self.corrupted += bytes(transfer.got_up) != transfer.up
            self.push(link, False, flow, transfer)
        elif isinstance(event, EndOfStream):
            ok = bytes(transfer.got_down) == transfer.down
            self.completed += ok
            self.corrupted += not ok

    def push(self, link: Link, at_client: bool, flow: Flow, transfer: Transfer) -> None:
        stack = link.client if at_client else link.server
        if at_client:
            limit = len(transfer.up) if transfer.abort_at is None else transfer.abort_at
            while transfer.sent_up < limit:
                out = stack.l4_tx(flow, transfer.up[transfer.sent_up : limit], link.now)
                transfer.sent_up += out.accepted
                link.send(True, out, self)
                if out.accepted == 0:
                    return
            if transfer.abort_at is not None:
                link.send(True, stack.abort(flow, link.now), self)
            elif stack.flow_info(flow).state == "ESTABLISHED":
                link.send(True, stack.close(flow, link.now), self)
        else:
            while transfer.sent_down < len(transfer.down):
                out = stack.l4_tx(flow, transfer.down[transfer.sent_down :], link.now)
                transfer.sent_down += out.accepted
                link.send(False, out, self)
                if out.accepted == 0:
                    return
            if stack.flow_info(flow).state == "CLOSE_WAIT":
                link.send(False, stack.close(flow, link.now), self)


def stacks(flows: int) -> tuple[Stack[bytearray], Stack[bytearray]]:
    limits = {"max_tcp_flows": flows + 20_000, "max_time_wait": 4096, "tcp_syn_retries": 4, "tcp_max_retries": 6}
    client = Stack(Config(secret=b"soak-client-0000", **limits))  # type: ignore[arg-type]
    server = Stack(Config(secret=b"soak-server-0000", udp_idle_timeout=10.0, fragment_timeout=5.0, **limits))  # type: ignore[arg-type]
    return client, server


def open_idle(link: Link, handler: Handler, count: int) -> None:
    for start in range(0, count, 1000):
        for index in range(start, min(start + 1000, count)):
            link.send(True, link.client.connect(flow_from(IDLE_BASE, index), link.now), handler)
        link.run_until(link.now + 0.05, handler)


def mixed(link: Link, handler: Handler, seconds: float, rate: int, rng: random.Random) -> dict[str, int]:
    started = {"transfers": 0, "resets": 0, "vanished": 0, "dead handshakes": 0, "udp": 0, "fragmented": 0}
    end = link.now + seconds
    index = 0
    while link.now < end:
        for _ in range(rate // 10 or 1):
            index += 1
            kind = rng.random()
            if kind < 0.05:
                # A peer that vanishes after the handshake: its packets are lost for good
                # once the server starts sending; the server's retransmissions time out.
                flow = flow_from(VANISHED_BASE, index)
                handler.transfers[flow] = Transfer(b"", rng.randbytes(20_000))
                link.send(True, link.client.connect(flow, link.now), handler)
                link.run_until(link.now + 0.02, handler)
                link.blackholed.add(flow.local_ip.packed)
                started["vanished"] += 1
                continue
            if kind < 0.10:
                # A handshake that never completes: SYNs and SYN-ACKs both lost for good.
                flow = flow_from(VANISHED_BASE + 0x4000, index)
                link.blackholed.add(flow.local_ip.packed)
                out = link.client.connect(flow, link.now)
                link.server.l3_rx(out.packets[0], link.now)  # the one SYN that got through
                started["dead handshakes"] += 1
                continue
            if kind < 0.15:
                udp = flow_from(BUSY_BASE, index, Proto.UDP, 53)
                link.client.connect(udp, link.now)
                big = rng.random() < 0.5
                out = link.client.l4_tx(udp, rng.randbytes(6000 if big else 200), link.now)
                if big and rng.random() < 0.3:
                    out.packets.pop(rng.randrange(len(out.packets)))  # reassembly will time out
                link.send(True, out, handler)
                link.client.close(udp, link.now)
                started["fragmented" if big else "udp"] += 1
                continue
            flow = flow_from(BUSY_BASE, index)
            transfer = Transfer(rng.randbytes(rng.randint(1, 64 * 1024)), rng.randbytes(rng.randint(1, 64 * 1024)))
            if rng.random() < 0.1:
                transfer.abort_at = len(transfer.up) // 2
                started["resets"] += 1
            else:
                started["transfers"] += 1
            handler.transfers[flow] = transfer
            link.send(True, link.client.connect(flow, link.now), handler)
        link.run_until(link.now + 0.1, handler)
    return started


def close_idle(link: Link, handler: Handler, count: int) -> None:
    for start in range(0, count, 1000):
        for index in range(start, min(start + 1000, count)):
            flow = flow_from(IDLE_BASE, index)
            link.send(True, link.client.close(flow, link.now), handler)
            link.send(False, link.server.close(flow.reversed(), link.now), handler)
        link.run_until(link.now + 0.05, handler)


def held(stack: Stack[bytearray]) -> dict[str, int]:
    usage = stack.usage()
    return {name: getattr(usage, name) for name in usage.__dataclass_fields__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--rate", type=int, default=20, help="new connections per simulated second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"Python {platform.python_version()} on {platform.machine()}; seed {args.seed}")

    gc.collect()
    tracemalloc.start()
    traced_start = tracemalloc.get_traced_memory()[0]
    rss_start = rss_bytes()
    wall = time.perf_counter()
    client, server = stacks(args.flows)
    handler = Handler()
    link = Link(client, server, rng)
    open_idle(link, handler, args.flows)
    gc.collect()
    traced_idle = tracemalloc.get_traced_memory()[0]
    rss_idle = rss_bytes()
    assert server.usage().tcp_flows == client.usage().tcp_flows == args.flows, (server.usage(), client.usage())
    phase1 = time.perf_counter() - wall

    wall = time.perf_counter()
    link.loss = 0.01
    started = mixed(link, handler, args.seconds, args.rate, rng)
    _, traced_peak = tracemalloc.get_traced_memory()
    rss_peak = rss_bytes()
    during = held(server)
    phase2 = time.perf_counter() - wall

    wall = time.perf_counter()
    link.loss = 0.0
    close_idle(link, handler, args.flows)
    link.run_until(link.now + 600.0, handler)  # TIME_WAIT, retries, idle timers: all run out
    left = {"client": held(client), "server": held(server)}
    deadlines = (client.next_deadline(), server.next_deadline())
    carried = link.packets
    link.queue.clear()
    handler.transfers.clear()
    del client, server, link
    gc.collect()
    traced_end = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    phase3 = time.perf_counter() - wall

    per_flow = (traced_idle - traced_start) / (2 * args.flows)
    rss_per_flow = (rss_idle - rss_start) / (2 * args.flows)
    leaked = {side: {k: v for k, v in usage.items() if v} for side, usage in left.items()}
    print()
    print("| phase | figure | value |")
    print("|---|---|---|")
    print(f"| 1. {args.flows:,} idle flows ({phase1:.0f} s) | tracemalloc bytes per connection per stack | {per_flow:,.0f} |")
    print(f"| | VmRSS bytes per connection per stack | {rss_per_flow:,.0f} |")
    print(f"| | traced / VmRSS total, both stacks | {(traced_idle - traced_start) / 2**20:,.0f} MiB / {(rss_idle - rss_start) / 2**20:,.0f} MiB |")
    print(f"| 2. {args.seconds:.0f} s mixed at {args.rate}/s ({phase2:.0f} s) | started | {', '.join(f'{k} {v}' for k, v in started.items())} |")
    print(f"| | transfers intact both ways / corrupted | {handler.completed} / {handler.corrupted} |")
    print(f"| | flows closed, by reason (both stacks) | {', '.join(f'{r.value} {n}' for r, n in sorted(handler.closed.items(), key=lambda i: i[0].value))} |")
    print(f"| | packets carried; UDP datagrams delivered | {carried:,} ; {handler.udp_datagrams} |")
    print(f"| | server held at the end of the phase | {', '.join(f'{k} {v}' for k, v in during.items())} |")
    print(f"| | traced peak / VmRSS | {(traced_peak - traced_start) / 2**20:,.0f} MiB / {(rss_peak - rss_start) / 2**20:,.0f} MiB |")
    print(f"| 3. all closed, timers run out ({phase3:.0f} s) | held by either stack | {leaked} |")
    print(f"| | next deadlines | {deadlines} |")
    print(f"| | traced memory left (vs start) | {(traced_end - traced_start) / 1024:,.0f} KiB |")
    ok = (
        not any(leaked.values())
        and deadlines == (None, None)
        and handler.corrupted == 0
        and traced_end - traced_start < 4 * 2**20
    )
    print(f"\nleak check: {'nothing left' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
