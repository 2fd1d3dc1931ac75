"""l3l4 as the sender under random loss, against the Linux kernel through a TUN device:
the kernel's client uploads to l3l4 ("kernel → l3l4") and downloads from it
("l3l4 → kernel") on the same path, with nftables dropping a share of the TCP packets
both ways in the client's namespace, offloads on and off, in the same run. Needs root.

    sudo .venv/bin/python benchmarks/loss_tun.py [MiB] [runs]

Each figure is the median of ``runs`` transfers of ``MiB`` MiB, timed by the client;
the ratio is l3l4 → kernel over kernel → l3l4. The loss is nftables' ``numgen random``:
not seeded, so figures move from run to run; the recovery counters are l3l4's, summed
over the runs of the download.
"""

from __future__ import annotations

import platform
import statistics
import sys

from l3l4 import Config, Stack
from l3l4_tun import Loop
from l3l4_tun.testing import drop_randomly, serve_until_exit, tun_namespace
from tun_bulk import Sink, Source, client, elapsed_of

LOSSES = (0, 1, 5)


def transfer(mode: str, offload: bool, percent: int, size: int) -> tuple[float, Stack[bytearray]]:
    """One transfer: the client's seconds, and the stack that served it."""
    stack: Stack[bytearray] = Stack(
        Config(tcp_tso_packet=65535 if offload else 0, tcp_checksum_offload=offload, tcp_send_buffer=1 << 20)
    )
    with tun_namespace(offload=offload) as (namespace, devices):
        if percent:
            drop_randomly(namespace, devices[0].name, percent)
        loop = Loop(stack, devices, Source(size) if mode == "down" else Sink())
        process = client(namespace, "203.0.113.9", size, 1, mode)
        serve_until_exit(loop, [process], 600.0)
        return elapsed_of(process), stack


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    size = mib << 20
    print(f"Python {platform.python_version()} on {platform.machine()}; {mib} MiB per transfer, median of {runs}")
    print("| offloads | loss (each way) | kernel → l3l4 MB/s | l3l4 → kernel MB/s | ratio | "
          "l3l4's timeouts | fast recoveries | tail loss probes |")
    print("|---|---|---|---|---|---|---|---|")
    for offload in (True, False):
        for percent in LOSSES:
            up = statistics.median(size / transfer("up", offload, percent, size)[0] / 1e6 for _ in range(runs))
            downs = [transfer("down", offload, percent, size) for _ in range(runs)]
            down = statistics.median(size / seconds / 1e6 for seconds, _ in downs)
            stats = [stack.stats for _, stack in downs]
            print(
                f"| {'on' if offload else 'off'} | {percent}% | {up:.1f} | {down:.2f} | {down / up:.3f} | "
                f"{sum(s.tcp_timeouts for s in stats)} | {sum(s.tcp_fast_recoveries for s in stats)} | "
                f"{sum(s.tcp_tail_loss_probes for s in stats)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
