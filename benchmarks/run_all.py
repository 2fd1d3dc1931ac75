"""Run every benchmark and write ``benchmarks/results.md``: one command, one table per
script, each with the command that reproduces it. Needs root (the TUN benchmarks) and
``uv`` on PATH (the compiled build).

    sudo .venv/bin/python benchmarks/run_all.py [--quick]

``--quick`` runs smaller sizes, for a check that everything works; the committed
results come from a full run.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = [
    ("Checksum methods (the codec floor's building block)", ["checksum.py"]),
    ("UDP echo through one stack", ["udp_echo.py"]),
    ("In-memory bulk TCP, 256 MiB one way", ["tcp_bulk.py", "256"]),
    ("Small messages, connection rate, flows at scale", ["small_flows.py"]),
    ("The l3l4kit callback API under buffer pressure", ["callbacks.py"]),
    ("Pure Python against the mypyc-compiled core", ["compiled.py", "64"]),
    ("The kernel and l3l4 through a TUN device", ["tun_bulk.py", "64", "5"]),
    ("l3l4 as the sender under loss, against the kernel", ["loss_tun.py", "8", "3"]),
    ("l3l4 and the kernel behind an emulated bottleneck", ["bottleneck_tun.py", "--plot", str(HERE.parent / "docs/images/goodput_vs_loss.png")]),
    ("Against the other Python stacks", ["peers.py"]),
]
QUICK = [
    ("Checksum methods (the codec floor's building block)", ["checksum.py"]),
    ("In-memory bulk TCP, 16 MiB one way", ["tcp_bulk.py", "16"]),
    ("Small messages, connection rate, flows at scale", ["small_flows.py", "--quick"]),
    ("The l3l4kit callback API under buffer pressure", ["callbacks.py", "--runs", "1"]),
    ("The kernel and l3l4 through a TUN device", ["tun_bulk.py", "8", "1"]),
]


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def main() -> None:
    quick = "--quick" in sys.argv
    sections = []
    for title, argv in QUICK if quick else FULL:
        if not (HERE / argv[0]).exists():
            continue
        command = f"python benchmarks/{' '.join(argv)}"
        print(f"running {command}", file=sys.stderr, flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], capture_output=True, text=True)
        took = time.monotonic() - started
        body = result.stdout.strip() if result.returncode == 0 else f"failed:\n```\n{result.stderr.strip()}\n```"
        sections.append(f"## {title}\n\n`{command}` ({took:.0f} s)\n\n{body}\n")
    header = (
        "# Benchmark results\n\n"
        f"Written by `benchmarks/run_all.py{' --quick' if quick else ''}` on "
        f"{datetime.date.today().isoformat()}: {machine()}.\n"
        "Every figure comes from this run; the explanation is in `docs/performance.md`.\n"
    )
    (HERE / "results.md").write_text(header + "\n" + "\n".join(sections))
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
