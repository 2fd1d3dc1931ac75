"""The receive side: out-of-order reassembly with bounded ranges and bytes, and the SACK
blocks that describe what is held (RFC 9293 §3.10.7.4, RFC 2018 §4)."""

from __future__ import annotations

from ..stats import DropReason
from .budget import BufferBudget

__all__ = ["Assembler"]


class Assembler:
    """Holds data that arrived ahead of ``rcv_nxt``, as disjoint ranges.

    Positions are stream offsets (bytes since the peer's SYN), unbounded ints, so no
    wrap-around arithmetic is needed here. ``max_ranges`` bounds the number of holes a
    peer can make us track, ``max_bytes`` the data held, and ``budget`` the data all
    connections hold together; a segment that would exceed any is refused (the peer will
    resend it).
    """

    __slots__ = ("_ranges", "_recent", "bytes_held", "max_ranges", "max_bytes", "_budget")

    def __init__(self, max_ranges: int, max_bytes: int, budget: BufferBudget) -> None:
        # (start, data) sorted by start, never touching each other.
        self._ranges: list[tuple[int, bytes]] = []
        # Range starts, most recently changed first, for SACK block order (RFC 2018 §4);
        # made at the first out-of-order segment (most connections never see one).
        self._recent: list[int] | None = None
        self.bytes_held = 0
        self.max_ranges = max_ranges
        self.max_bytes = max_bytes
        self._budget = budget

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def insert(self, start: int, data: bytes) -> DropReason | None:
        """Hold ``data`` at ``start`` (beyond ``rcv_nxt``). Returns why it was refused,
        or ``None`` if it is held.

        Bytes already held win over a retransmission that overlaps them: they were
        checksummed once already, and RFC 9293 §3.10.7.4 lets either copy stand.
        """
        end = start + len(data)
        ranges = self._ranges
        touching = [i for i, (r_start, r_data) in enumerate(ranges) if r_start <= end and r_start + len(r_data) >= start]
        if not touching:
            if len(ranges) >= self.max_ranges or self.bytes_held + len(data) > self.max_bytes:
                return DropReason.TCP_REASSEMBLY_LIMIT
            if len(data) > self._budget.free():
                return DropReason.TCP_BUFFER_LIMIT
            position = next((i for i, (r_start, _) in enumerate(ranges) if r_start > start), len(ranges))
            ranges.insert(position, (start, data))
            self.bytes_held += len(data)
            self._budget.used += len(data)
            self._touch(start)
            return None
        first, last = touching[0], touching[-1]
        merged_start = min(start, ranges[first][0])
        merged_end = max(end, ranges[last][0] + len(ranges[last][1]))
        old = sum(len(r_data) for _, r_data in ranges[first : last + 1])
        growth = merged_end - merged_start - old
        if self.bytes_held + growth > self.max_bytes:
            return DropReason.TCP_REASSEMBLY_LIMIT
        if growth > self._budget.free():
            return DropReason.TCP_BUFFER_LIMIT
        buffer = bytearray(merged_end - merged_start)
        buffer[start - merged_start : end - merged_start] = data
        for r_start, r_data in ranges[first : last + 1]:
            buffer[r_start - merged_start : r_start - merged_start + len(r_data)] = r_data
            self._forget(r_start)
        ranges[first : last + 1] = [(merged_start, bytes(buffer))]
        self.bytes_held += growth
        self._budget.used += growth
        self._touch(merged_start)
        return None

    def pop_ready(self, rcv_off: int) -> bytes | None:
        """Remove and return the data that continues the stream at ``rcv_off``, if any."""
        ranges = self._ranges
        if not ranges or ranges[0][0] > rcv_off:
            return None
        start, data = ranges.pop(0)
        self._forget(start)
        self.bytes_held -= len(data)
        self._budget.used -= len(data)
        return data[rcv_off - start :] if start < rcv_off else data

    def discard_below(self, rcv_off: int) -> None:
        """Drop ranges the stream has already passed (after in-order data covered them)."""
        while self._ranges and self._ranges[0][0] + len(self._ranges[0][1]) <= rcv_off:
            start, data = self._ranges.pop(0)
            self._forget(start)
            self.bytes_held -= len(data)
            self._budget.used -= len(data)

    def release(self) -> None:
        """Give up everything held (the connection is done receiving)."""
        self._budget.used -= self.bytes_held
        self.bytes_held = 0
        self._ranges = []
        self._recent = None

    def held(self, start: int, end: int) -> tuple[int, int] | None:
        """The first part of [start, end) already held: a duplicate (RFC 2883 §4)."""
        for range_start, data in self._ranges:
            low, high = max(start, range_start), min(end, range_start + len(data))
            if low < high:
                return low, high
        return None

    def sack_ranges(self, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` held ranges as (start, end) offsets, the most recently changed
        first (RFC 2018 §4: the first block names the latest segment's range)."""
        if self._recent is None:
            return []
        by_start = {start: start + len(data) for start, data in self._ranges}
        return [(start, by_start[start]) for start in self._recent[:limit] if start in by_start]

    def _touch(self, start: int) -> None:
        if self._recent is None:
            self._recent = []
        self._recent.insert(0, start)

    def _forget(self, start: int) -> None:
        if self._recent is not None and start in self._recent:
            self._recent.remove(start)
