"""Internet checksum implementations in pure Python, timed side by side.

Prints a table of microseconds per call (median of repeated runs) for a 20-byte header
and a 1448-byte payload. The stack uses the first one (``l3l4.wire.checksum``).

    uv run python benchmarks/checksum.py
"""

from __future__ import annotations

import array
import platform
import random
import statistics
import struct
import sys
import timeit
from collections.abc import Callable

from l3l4.wire.checksum import checksum, fold


def big_int(data: bytes) -> int:
    """l3l4's: the buffer as one integer, modulo 0xFFFF."""
    return checksum(fold(data))


def words64(data: bytes) -> int:
    """Sum 64-bit big-endian words, then fold."""
    padded = data + bytes(-len(data) % 8)
    total: int = sum(struct.unpack(f"!{len(padded) // 8}Q", padded))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def array_h(data: bytes) -> int:
    """Sum 16-bit words with array('H') (byteswapped on little-endian hosts)."""
    words = array.array("H", data + bytes(len(data) & 1))
    if sys.byteorder == "little":
        words.byteswap()
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def word_loop(data: bytes) -> int:
    """The RFC 1071 loop, one 16-bit word at a time."""
    padded = data + bytes(len(data) & 1)
    total = 0
    for index in range(0, len(padded), 2):
        total += (padded[index] << 8) | padded[index + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


METHODS: list[tuple[str, Callable[[bytes], int]]] = [
    ("big int % 0xFFFF (l3l4)", big_int),
    ("64-bit words", words64),
    ("array('H') sum", array_h),
    ("16-bit word loop", word_loop),
]


def main() -> None:
    rng = random.Random(0)
    sizes = (20, 1448)
    buffers = {size: bytes(rng.randrange(256) for _ in range(size)) for size in sizes}
    for size, data in buffers.items():
        answers = {name: method(data) for name, method in METHODS}
        if len(set(answers.values())) != 1:
            raise SystemExit(f"methods disagree on {size} bytes: {answers}")
    print(f"Python {platform.python_version()} on {platform.machine()}; median of 7 runs, µs per call")
    print(f"| method | {' | '.join(f'{size} B' for size in sizes)} | ratio to l3l4 at 1448 B |")
    print("|---|" + "---|" * (len(sizes) + 1))
    baseline = 0.0
    for name, method in METHODS:
        cells = []
        for size in sizes:
            data = buffers[size]
            number = 20000 if method is not word_loop else 500
            runs = timeit.repeat(lambda: method(data), number=number, repeat=7)
            cells.append(statistics.median(runs) / number * 1e6)
        if not baseline:
            baseline = cells[-1]
        print(f"| {name} | {' | '.join(f'{c:.2f}' for c in cells)} | {cells[-1] / baseline:.1f}x |")


if __name__ == "__main__":
    main()
