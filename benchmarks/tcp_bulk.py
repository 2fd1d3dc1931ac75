"""Bulk TCP between two stacks back to back in memory: payload MB/s and CPU µs per
data segment, at MTU 1500 and 65535, against the codec floor measured in the same run.

    uv run python benchmarks/tcp_bulk.py [MiB]
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from ipaddress import ip_address

from l3l4 import Config, DataReceived, Flow, Proto, Stack, Writable
from l3l4.wire.ip import parse_ip, write_ipv4_header
from l3l4.wire.tcp import ACK, parse_tcp, write_tcp

FLOW = Flow(Proto.TCP, ip_address("198.51.100.1"), 40000, ip_address("203.0.113.80"), 80)


def bulk(size: int, mtu: int) -> tuple[float, int]:
    """Send ``size`` bytes one way; return (seconds, data segments)."""
    config = {"mtu": mtu, "tcp_send_buffer": 4 << 20, "tcp_receive_buffer": 4 << 20}
    a: Stack[bytearray] = Stack(Config(secret=b"bench-client-000", **config))  # type: ignore[arg-type]
    b: Stack[bytearray] = Stack(Config(secret=b"bench-server-000", **config))  # type: ignore[arg-type]
    chunk = bytes(1 << 20)
    sent = received = 0
    now = 0.0
    to_b = a.connect(FLOW, now).packets
    to_a: list[bytearray] = []
    start = time.perf_counter()
    while received < size:
        now += 0.0001
        if sent < size:
            out = a.l4_tx(FLOW, chunk[: min(len(chunk), size - sent)], now)
            sent += out.accepted
            to_b += out.packets
        while to_b or to_a:
            for packet in to_b:
                out_b = b.l3_rx(packet, now)
                to_a += out_b.packets
                for event in out_b.events:
                    if isinstance(event, DataReceived):
                        received += len(event.data)
            to_b = []
            for packet in to_a:
                out_a = a.l3_rx(packet, now)
                to_b += out_a.packets
                for event in out_a.events:
                    if isinstance(event, Writable) and sent < size:
                        more = a.l4_tx(FLOW, chunk[: min(len(chunk), size - sent)], now)
                        sent += more.accepted
                        to_b += more.packets
            to_a = []
        if a.next_deadline() is not None or b.next_deadline() is not None:
            to_b += a.l4_poll(now).packets
            to_a += b.l4_poll(now).packets
    elapsed = time.perf_counter() - start
    return elapsed, a.stats.tx_packets


def codec_floor(mss: int, count: int) -> float:
    """Build + checksum one data segment and parse + verify it: per-segment seconds."""
    payload = bytes(mss)
    src, dst = FLOW.local_ip.packed, FLOW.remote_ip.packed
    start = time.perf_counter()
    for index in range(count):
        packet = bytearray(40 + mss)
        write_tcp(packet, 20, src, dst, 40000, 80, index, 0, ACK, 65535, b"", payload)
        write_ipv4_header(packet, len(packet), index & 0xFFFF, 6, 64, src, dst)
        parse_tcp(parse_ip(packet), True)
    return (time.perf_counter() - start) / count


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    size = mib << 20
    print(f"Python {platform.python_version()} on {platform.machine()}; {mib} MiB one way, median of 5 runs")
    print("| MTU | MB/s | µs per data segment (both stacks) | codec floor µs | ratio to floor |")
    print("|---|---|---|---|---|")
    for mtu in (1500, 65535):
        runs = [bulk(size, mtu) for _ in range(5)]
        seconds = statistics.median(r[0] for r in runs)
        segments = runs[0][1]
        floor = statistics.median(codec_floor(mtu - 40, 2000) for _ in range(5))
        per_segment = seconds / segments
        print(
            f"| {mtu} | {size / seconds / 1e6:.1f} | {per_segment * 1e6:.1f} | {floor * 1e6:.1f} | "
            f"{per_segment / floor:.1f}x |"
        )


if __name__ == "__main__":
    main()
