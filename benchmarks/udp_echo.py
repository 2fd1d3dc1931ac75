"""UDP echo through one stack: packets per second and µs per datagram, against the
codec floor (parse + verify + build + checksum done by hand with the same primitives).

    uv run python benchmarks/udp_echo.py
"""

from __future__ import annotations

import platform
import statistics
import time
from ipaddress import ip_address

from l3l4 import Config, DataReceived, Flow, Proto, Stack
from l3l4.wire.ip import parse_ip, write_ipv4_header
from l3l4.wire.udp import parse_udp, write_udp

COUNT = 20000
SECRET = b"benchmark-secret"


def datagrams(size: int, flows: int) -> list[bytearray]:
    """Packets from a peer stack to ``flows`` different server addresses."""
    peer = Stack(Config(secret=SECRET, max_udp_flows=flows + 1))
    packets = []
    for index in range(flows):
        flow = Flow(Proto.UDP, ip_address("198.51.100.1"), 1000 + index, ip_address("203.0.113.1"), 7)
        peer.connect(flow, 0.0)
        packets += peer.l4_tx(flow, bytes(size), 0.0).packets
    return packets


def stack_echo(packets: list[bytearray]) -> float:
    stack = Stack(Config(secret=SECRET, max_udp_flows=len(packets) + 1))
    start = time.perf_counter()
    for index in range(COUNT):
        out = stack.l3_rx(packets[index % len(packets)], 0.0)
        event = out.events[-1]
        if isinstance(event, DataReceived):
            stack.l4_tx(event.flow, event.data, 0.0)
    return time.perf_counter() - start


def floor_echo(packets: list[bytearray]) -> float:
    """The least any pure-Python stack does per echoed datagram."""
    start = time.perf_counter()
    for index in range(COUNT):
        ip = parse_ip(packets[index % len(packets)])
        payload = parse_udp(ip, True)
        reply = bytearray(28 + len(payload))
        write_udp(reply, 20, ip.dst, ip.src, 7, 1000, payload)
        write_ipv4_header(reply, len(reply), 1, 17, 64, ip.dst, ip.src)
    return time.perf_counter() - start


def main() -> None:
    print(f"Python {platform.python_version()} on {platform.machine()}; {COUNT} datagrams, median of 5 runs")
    print("| payload | flows | l3l4 µs/datagram | floor µs/datagram | ratio | l3l4 datagrams/s |")
    print("|---|---|---|---|---|---|")
    for size, flows in ((64, 1), (1400, 1), (64, 1000)):
        packets = datagrams(size, flows)
        ours = statistics.median(stack_echo(packets) for _ in range(5)) / COUNT
        floor = statistics.median(floor_echo(packets) for _ in range(5)) / COUNT
        print(
            f"| {size} B | {flows} | {ours * 1e6:.1f} | {floor * 1e6:.1f} | {ours / floor:.2f}x | {1 / ours:,.0f} |"
        )


if __name__ == "__main__":
    main()
