"""The send side: the send buffer and the SACK scoreboard (RFC 2018, RFC 6675).

Positions are stream offsets counted from the ISS (the SYN is offset 0, the first data
byte offset 1): unbounded ints, free of wrap-around.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from .budget import BufferBudget

__all__ = ["SendBuffer", "Scoreboard"]


class SendBuffer:
    """Bytes the application gave us that the peer has not acknowledged yet."""

    __slots__ = ("_data", "base", "capacity", "minimum", "_budget")

    def __init__(self, capacity: int, budget: BufferBudget, minimum: int = 0) -> None:
        self._data = bytearray()
        self.base = 1
        self.capacity = capacity
        # Config.tcp_send_buffer_min: held whatever the stack-wide budget says.
        self.minimum = min(minimum, capacity)
        self._budget = budget

    def __len__(self) -> int:
        return len(self._data)

    @property
    def end(self) -> int:
        """The offset just past the last queued byte."""
        return self.base + len(self._data)

    def free(self) -> int:
        """Room for more bytes, in this buffer and in the stack-wide budget (which
        never takes the buffer below ``minimum``)."""
        held = len(self._data)
        return min(self.capacity - held, max(self._budget.free(), self.minimum - held))

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as fits; return how many bytes were taken."""
        taken = min(len(data), self.free())
        if taken > 0:
            self._data += data[:taken]
            self._budget.used += taken
        return max(taken, 0)

    def ack_to(self, offset: int) -> None:
        """Forget everything before ``offset`` (deleting from the front of a bytearray is
        cheap in CPython: it moves a start pointer)."""
        drop = min(offset - self.base, len(self._data))
        if drop > 0:
            del self._data[:drop]
            self.base += drop
            self._budget.used -= drop

    def release(self) -> None:
        """The connection is gone: give its bytes back to the budget."""
        self._budget.used -= len(self._data)
        self._data = bytearray()

    def chunk(self, offset: int, size: int) -> bytearray:
        """A copy of up to ``size`` queued bytes from ``offset``."""
        start = offset - self.base
        return self._data[start : start + size]


class Scoreboard:
    """What the peer has selectively acknowledged above ``snd_una``: merged ranges, at
    most ``max_blocks`` of them (every ACK walks them, so a peer SACKing byte after byte
    would otherwise make each ACK cost time in proportion to the data in flight).

    Besides the ranges it keeps their starts, ends and running totals, so that the
    questions asked on every ACK of a recovery (how much is SACKed between two offsets,
    where the next hole is) cost a binary search, not a walk over a hundred ranges."""

    __slots__ = ("blocks", "max_blocks", "_starts", "_ends", "_totals")

    def __init__(self, max_blocks: int) -> None:
        # A tuple, replaced whole on every change: most connections never see a SACK
        # block, and the empty tuple costs them nothing.
        self.blocks: tuple[tuple[int, int], ...] = ()
        self.max_blocks = max_blocks
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._totals: list[int] = [0]  # SACKed bytes in blocks[:i]

    def __bool__(self) -> bool:
        return bool(self.blocks)

    def _set(self, blocks: tuple[tuple[int, int], ...]) -> None:
        self.blocks = blocks
        self._starts = [start for start, _ in blocks]
        self._ends = [end for _, end in blocks]
        totals = [0]
        for start, end in blocks:
            totals.append(totals[-1] + end - start)
        self._totals = totals

    def add(self, start: int, end: int) -> bool:
        """Record a SACK block; False if it was ignored, being one range too many (SACK
        is advisory, RFC 2018 §8: at worst data is resent that had arrived)."""
        merged: list[tuple[int, int]] = []
        for block_start, block_end in self.blocks:
            if block_end < start or block_start > end:
                merged.append((block_start, block_end))
            else:
                start = min(start, block_start)
                end = max(end, block_end)
        if len(merged) >= self.max_blocks:
            return False
        merged.append((start, end))
        merged.sort()
        self._set(tuple(merged))
        return True

    def ack_to(self, offset: int) -> None:
        if self.blocks:
            self._set(tuple((max(s, offset), e) for s, e in self.blocks if e > offset))

    def clear(self) -> None:
        self._set(())

    def sacked(self, start: int, end: int) -> int:
        """SACKed bytes within [start, end)."""
        if end <= start or not self.blocks:
            return 0
        starts, ends = self._starts, self._ends
        first = bisect_right(ends, start)  # the first block ending after start
        last = bisect_left(starts, end)  # blocks first..last-1 overlap [start, end)
        if first >= last:
            return 0
        total = self._totals[last] - self._totals[first]
        if starts[first] < start:
            total -= start - starts[first]
        if ends[last - 1] > end:
            total -= ends[last - 1] - end
        return total

    def lost_below(self, mss: int, dup_threshold: int = 3) -> int:
        """RFC 6675 §4 IsLost: a byte is deemed lost once ``dup_threshold`` SACKed
        segments, or more than ``(dup_threshold - 1) * mss`` SACKed bytes, lie above
        it. Returns the offset below which every un-SACKed byte is lost."""
        above = 0
        segments = 0
        for start, end in reversed(self.blocks):
            above += end - start
            segments += -(-(end - start) // mss)
            if above > (dup_threshold - 1) * mss or segments >= dup_threshold:
                return start
        return 0

    def holes(self, start: int, end: int) -> list[tuple[int, int]]:
        """The un-SACKed ranges within [start, end)."""
        found = []
        position = start
        for block_start, block_end in self.blocks[bisect_right(self._ends, start) :]:
            if block_start >= end:
                break
            if block_start > position:
                found.append((position, block_start))
            position = block_end
        if position < end:
            found.append((position, end))
        return found

    def next_hole(self, start: int, limit: int) -> tuple[int, int] | None:
        """The first un-SACKed range at or after ``start`` that ends by ``limit``."""
        position = start
        for block_start, block_end in self.blocks[bisect_right(self._ends, start) :]:
            if block_start > position:
                return (position, min(block_start, limit)) if position < limit else None
            position = block_end
        return (position, limit) if position < limit else None
