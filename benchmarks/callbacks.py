"""The l3l4kit callback API under buffer pressure: a 4 MiB TCP echo between two
:class:`l3l4.CallbackStack` applications, the echo server's packets written into
buffers from pools of different sizes (``tests/support/callback_pair.py``).

    uv run python benchmarks/callbacks.py [--mib 4] [--runs 5]

The wire between them is simulated (0.5 ms each way): "transfer" is that simulated
time, what a peer would see (stalls show here); "wall" is the CPU time the run took on
this machine, median of ``--runs``. Ratios are to the unlimited pool (a new bytearray
per packet), in the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.callback_pair import Pool, echo_exchange

POOLS: list[tuple[str, Callable[[], Pool]]] = [
    ("unlimited (a new bytearray per packet)", lambda: Pool(None)),
    ("256 buffers, recycled in l3_tx", lambda: Pool(256)),
    ("1 buffer, recycled in l3_tx", lambda: Pool(1)),
    ("unlimited, but empty 50 ms of every 100 ms", lambda: Pool(None, dry=lambda now: now % 0.1 < 0.05)),
    ("unlimited again (the run-to-run spread)", lambda: Pool(None)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = args.mib << 20
    print(f"Python {platform.python_version()} on {platform.machine()}; {args.mib} MiB echoed, median of {args.runs} runs")
    print("| server's buffer pool | transfer (simulated) | wall | MiB/s (wall, both ways) | wall ratio | "
          "buffer misses | retransmits | timeouts |")
    print("|---|---|---|---|---|---|---|---|")
    reference = None
    for name, make in POOLS:
        walls = []
        for _ in range(args.runs):
            pool = make()
            start = time.perf_counter()
            client, server, took = echo_exchange(size, pool)
            walls.append(time.perf_counter() - start)
        wall = statistics.median(walls)
        reference = reference or wall
        stats = server.net.stack.stats
        retransmits = stats.tcp_retransmits + client.net.stack.stats.tcp_retransmits
        timeouts = stats.tcp_timeouts + client.net.stack.stats.tcp_timeouts
        print(
            f"| {name} | {took:.3f} s | {wall:.2f} s | {2 * args.mib / wall:.1f} | {wall / reference:.2f}x | "
            f"{pool.misses} | {retransmits} | {timeouts} |"
        )


if __name__ == "__main__":
    main()
