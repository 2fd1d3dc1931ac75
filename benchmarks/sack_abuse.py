"""The cost of an ACK when the peer SACKs every other byte of what is in flight.

    uv run python benchmarks/sack_abuse.py [--acks 3000]

A peer that SACKs 1-byte ranges with gaps between them (four blocks an ACK) would grow
the sender's scoreboard to half the bytes in flight; every ACK walks it, several times.
``Config.tcp_max_sack_ranges`` (256) bounds it. Reported: µs per such ACK with the cap
and with it lifted (a million ranges: the behaviour before the cap existed).
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from ipaddress import ip_address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.spoof import ACK, SYN, tcp_packet

from l3l4 import Config, Flow, Proto, Stack

PEER, LOCAL = "192.0.2.1", "203.0.113.80"
FLOW = Flow(Proto.TCP, ip_address(LOCAL), 80, ip_address(PEER), 40000)
SACK_PERMITTED = bytes.fromhex("020405b4" "04020101")


def per_ack(max_ranges: int, acks: int) -> tuple[float, int]:
    stack = Stack(Config(secret=b"sack-abuse-00000", tcp_max_sack_ranges=max_ranges))
    [syn_ack] = stack.l3_rx(tcp_packet(PEER, LOCAL, 40000, 80, 1000, 0, SYN, options=SACK_PERMITTED), 0.0).packets
    iss = struct.unpack_from("!I", bytes(syn_ack), 24)[0]
    stack.l3_rx(tcp_packet(PEER, LOCAL, 40000, 80, 1001, iss + 1, ACK), 0.0)
    stack.l4_tx(FLOW, bytes(1 << 20), 0.0)
    start = time.perf_counter()
    for n in range(acks):
        edges = b"".join(struct.pack("!II", iss + 2 * (4 * n + k) + 2, iss + 2 * (4 * n + k) + 3) for k in range(4))
        options = b"\x01\x01\x05\x22" + edges
        stack.l3_rx(tcp_packet(PEER, LOCAL, 40000, 80, 1001, iss + 1, ACK, options=options), 0.001 * n)
    return (time.perf_counter() - start) / acks * 1e6, stack.stats.tcp_sack_blocks_ignored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--acks", type=int, default=3000)
    args = parser.parse_args()
    print("| tcp_max_sack_ranges | µs per abusive ACK | SACK blocks ignored |")
    print("|---|---|---|")
    for max_ranges in (256, 1_000_000):
        cost, ignored = per_ack(max_ranges, args.acks)
        print(f"| {max_ranges:,} | {cost:,.0f} | {ignored:,} |", flush=True)


if __name__ == "__main__":
    main()
