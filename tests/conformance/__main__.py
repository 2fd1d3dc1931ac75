"""The full matrix: ``python -m conformance [--write docs/conformance.md]`` (as root).

Prints one line per case and the figures; with ``--write`` puts the results table into
the document between its markers. Exits 1 if any difference is not justified in
``conformance.differences``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .dut import StackDut
from .kernel import KernelDut
from .matrix import OPTION_SETS, PROBES, STATES, cases
from .report import Row, markdown, replace_between, run_matrix, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/conformance", description="The differential TCP conformance matrix: Linux against l3l4.")
    parser.add_argument("--states", default=",".join(STATES), help="comma-separated states (default: all)")
    parser.add_argument("--probes", default=",".join(PROBES), help="comma-separated probes (default: all)")
    parser.add_argument("--versions", default="4,6", help="IP versions (default: 4,6)")
    parser.add_argument(
        "--options", default=",".join(OPTION_SETS), help="SYN option sets: plain, ts (with timestamps) (default: both)"
    )
    parser.add_argument("--write", type=Path, help="write the results into this Markdown file")
    parser.add_argument("--quiet", action="store_true", help="print only differences and the figures")
    args = parser.parse_args(argv)
    matrix = cases(
        args.states.split(","), args.probes.split(","), map(int, args.versions.split(",")), args.options.split(",")
    )

    def progress(row: Row) -> None:
        if not args.quiet or not row.agree:
            print(f"{row.verdict:<34} {row.case}\n    linux {row.linux}\n    l3l4  {row.l3l4}", flush=True)

    started = time.monotonic()
    with KernelDut.running() as linux:
        rows = run_matrix(matrix, linux, StackDut(), 20000, progress)
    probes, agree, justified, unexplained = summary(rows)
    print(
        f"{probes} probes in {time.monotonic() - started:.0f} s: {agree} agree ({100 * agree / probes:.1f} %), "
        f"{justified} justified differences, {unexplained} unexplained"
    )
    if args.write is not None:
        args.write.write_text(replace_between(args.write.read_text(), markdown(rows)))
        print(f"wrote {args.write}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
