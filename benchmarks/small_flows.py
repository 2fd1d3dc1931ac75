"""Small messages, connection rate and flows at scale, all in memory:

1. request/response of 64-byte messages on one flow and on 1,000 flows: transactions/s;
2. handshake + one request + close: connections/s;
3. memory per idle established flow (tracemalloc and RSS) at 10k and 100k flows, and the
   cost of ``l3_rx`` as the number of flows grows (it must stay flat).

    uv run python benchmarks/small_flows.py [--quick]
"""

from __future__ import annotations

import gc
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from ipaddress import IPv4Address

from pair import Pair

from l3l4 import DataReceived, EndOfStream, Event, Flow, FlowOpened, Output, Proto, Stack

REQUEST = bytes(64)
SERVER_IP = IPv4Address("203.0.113.80")
CLIENT_BASE = int(IPv4Address("198.18.0.0"))


def client_flow(index: int) -> Flow:
    """A distinct client address and port for each index (65,000 ports per address)."""
    address, port = divmod(index, 64000)
    return Flow(Proto.TCP, IPv4Address(CLIENT_BASE + address), 1024 + port, SERVER_IP, 80)


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def request_response(flows: int, rounds: int) -> float:
    """Transactions per second: each client flow sends 64 bytes, the server answers 64."""
    answered = 0

    def on_event(stack: Stack[bytearray], event: Event) -> Output[bytearray] | None:
        nonlocal answered
        if isinstance(event, DataReceived):
            if stack is pair.server:
                return stack.l4_tx(event.flow, REQUEST, pair.now)
            answered += 1
        return None

    pair = Pair(on_event, tcp_delayed_ack=0.0)
    opened = [client_flow(i) for i in range(flows)]
    for flow in opened:
        pair.carry(pair.client, pair.client.connect(flow, pair.now))
    start = time.perf_counter()
    for _ in range(rounds):
        for flow in opened:
            pair.carry(pair.client, pair.client.l4_tx(flow, REQUEST, pair.now))
        pair.tick(0.001)
    elapsed = time.perf_counter() - start
    assert answered == flows * rounds, answered
    return answered / elapsed


def connection_rate(count: int) -> float:
    """Connections per second: handshake, a 64-byte request and answer, close both ways."""
    closed = 0

    def on_event(stack: Stack[bytearray], event: Event) -> Output[bytearray] | None:
        nonlocal closed
        if stack is pair.client:
            if isinstance(event, FlowOpened):
                return stack.l4_tx(event.flow, REQUEST, pair.now)
            if isinstance(event, DataReceived):
                return stack.close(event.flow, pair.now)
            if isinstance(event, EndOfStream):
                closed += 1
        elif isinstance(event, DataReceived):
            return stack.l4_tx(event.flow, REQUEST, pair.now)
        elif isinstance(event, EndOfStream):
            return stack.close(event.flow, pair.now)
        return None

    pair = Pair(on_event, tcp_delayed_ack=0.0, max_time_wait=count + 1)
    start = time.perf_counter()
    for index in range(count):
        pair.carry(pair.client, pair.client.connect(client_flow(index), pair.now))
    elapsed = time.perf_counter() - start
    assert closed == count and not pair.client.flows() and not pair.server.flows(), closed
    return count / elapsed


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def idle_flows(count: int) -> tuple[float, float, float]:
    """Open ``count`` connections and leave them idle: bytes per flow held by the server
    stack (tracemalloc, RSS growth), and µs per ``l3_rx`` of a pure ACK on one of them.

    The handshakes are played first against a twin of the server (same secret, same
    clock, so the same ISNs and timestamps), then only the server's side is replayed
    under measurement.
    """
    # Cookies off: the twin never completes its handshakes, and its half-open count
    # would otherwise turn it to SYN cookies, whose ISNs the server would not share.
    config = {"tcp_delayed_ack": 0.0, "max_tcp_flows": count + 10, "tcp_syn_cookie_threshold": None}
    twin = Pair(lambda stack, event: None, **config)
    flows = [client_flow(i) for i in range(count)]
    syns = [twin.client.connect(flow, 0.0).packets[0] for flow in flows]
    acks = []
    for syn in syns:
        [syn_ack] = twin.server.l3_rx(syn, 0.0).packets
        [ack] = twin.client.l3_rx(syn_ack, 0.0).packets
        acks.append(bytes(ack))
    server = Pair(lambda stack, event: None, **config).server
    del twin
    gc.collect()
    tracemalloc.start()
    rss_before = rss_bytes()
    before = tracemalloc.get_traced_memory()[0]
    for syn_packet, ack_packet in zip(syns, acks):
        server.l3_rx(syn_packet, 0.0)
        server.l3_rx(ack_packet, 0.0)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    rss_after = rss_bytes()
    tracemalloc.stop()
    assert server.tcp_states() == {"ESTABLISHED": count}, server.tcp_states()
    # The last ACK again, to an established flow in the middle: the per-packet cost.
    probe = acks[count // 2]
    rounds = 20000
    start = time.perf_counter()
    for _ in range(rounds):
        server.l3_rx(probe, 0.001)
    per_packet = (time.perf_counter() - start) / rounds
    return (after - before) / count, (rss_after - rss_before) / count, per_packet * 1e6


def main() -> None:
    quick = "--quick" in sys.argv
    runs = 3 if quick else 5
    print(f"# Small messages, connection rate, flows at scale (in memory), median of {runs}")
    print(f"CPython {platform.python_version()} on {platform.machine()}, Linux {platform.release()}")
    print()
    print("| workload | result |")
    print("|---|---|")
    one = median_of(runs, lambda: request_response(1, 2000 if quick else 10000))
    print(f"| 64-byte request/response, 1 flow | {one:,.0f} transactions/s |", flush=True)
    many = median_of(runs, lambda: request_response(1000, 5 if quick else 20))
    print(f"| 64-byte request/response, 1,000 flows | {many:,.0f} transactions/s |", flush=True)
    rate = median_of(runs, lambda: connection_rate(2000 if quick else 10000))
    print(f"| handshake + 64-byte request/answer + close | {rate:,.0f} connections/s |", flush=True)
    print()
    print("| idle established flows (server side) | tracemalloc bytes/flow | RSS bytes/flow | µs per l3_rx (pure ACK) |")
    print("|---|---|---|---|")
    for count in (100, 10_000) if quick else (100, 10_000, 100_000):
        traced, rss, cost = idle_flows(count)
        print(f"| {count:,} | {traced:,.0f} | {rss:,.0f} | {cost:.2f} |", flush=True)


if __name__ == "__main__":
    main()
