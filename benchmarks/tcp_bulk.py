"""Bulk TCP between two stacks back to back in memory: payload MB/s and CPU µs per
data segment, at MTU 1500 and 65535, against the codec floor measured in the same run.

    uv run python benchmarks/tcp_bulk.py [MiB]
"""

from __future__ import annotations

import platform
import struct
import statistics
import sys
import time
from ipaddress import ip_address

from l3l4 import Config, DataReceived, Flow, Proto, Stack, Writable

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


# The codec floor, written out with nothing between the bytes and the checksums: one
# struct for the IPv4 + TCP headers with the timestamp option every segment carries,
# header checksum words summed as numbers, the payload folded as one big integer.
_HEADERS = struct.Struct("!BBHHHBBH4s4sHHIIHHHHBBBBII")
_FROM = int.from_bytes


def codec_floor(mss: int, count: int) -> float:
    """Build + checksum one data segment (with timestamps) and parse + verify it, the
    fastest way we know in pure Python: per-segment seconds."""
    payload = bytes(mss)
    src, dst = FLOW.local_ip.packed, FLOW.remote_ip.packed
    addresses = _FROM(src, "big") + _FROM(dst, "big")
    size = _HEADERS.size + mss
    start = time.perf_counter()
    for index in range(count):
        # Build.
        packet = bytearray(size)
        ip_csum = -(0x4500 + size + index + 0x4000 + 0x4006 + addresses) % 0xFFFF
        tcp_sum = addresses + 6 + size - 20 + 40000 + 80 + index + 0x8010 + 65535 + 0x0101 + 0x080A + index
        value = _FROM(payload, "big")
        tcp_csum = -(tcp_sum + (value << 8 if mss & 1 else value)) % 0xFFFF
        _HEADERS.pack_into(
            packet, 0, 0x45, 0, size, index, 0x4000, 64, 6, ip_csum, src, dst,
            40000, 80, index, 0, 0x8010, 65535, tcp_csum, 0, 1, 1, 8, 10, index, 0,
        )
        packet[_HEADERS.size :] = payload
        # Parse and verify.
        view = memoryview(packet)
        fields = _HEADERS.unpack_from(view)
        if _FROM(view[:20], "big") % 0xFFFF or fields[2] > len(view):
            raise AssertionError("bad IPv4 header")
        pseudo = _FROM(fields[8], "big") + _FROM(fields[9], "big") + 6 + len(view) - 20
        value = _FROM(view[20:], "big")
        if (pseudo + (value << 8 if len(view) & 1 else value)) % 0xFFFF:
            raise AssertionError("bad TCP checksum")
        bytes(view[_HEADERS.size :])
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
        floor = statistics.median(codec_floor(mtu - _HEADERS.size, 2000) for _ in range(5))
        per_segment = seconds / segments
        print(
            f"| {mtu} | {size / seconds / 1e6:.1f} | {per_segment * 1e6:.1f} | {floor * 1e6:.1f} | "
            f"{per_segment / floor:.1f}x |"
        )


if __name__ == "__main__":
    main()
