"""The send side: the send buffer and the SACK scoreboard (RFC 2018, RFC 6675).

Positions are stream offsets counted from the ISS (the SYN is offset 0, the first data
byte offset 1): unbounded ints, free of wrap-around.
"""

from __future__ import annotations

__all__ = ["SendBuffer", "Scoreboard"]


class SendBuffer:
    """Bytes the application gave us that the peer has not acknowledged yet."""

    __slots__ = ("_data", "base", "capacity")

    def __init__(self, capacity: int) -> None:
        self._data = bytearray()
        self.base = 1
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._data)

    @property
    def end(self) -> int:
        """The offset just past the last queued byte."""
        return self.base + len(self._data)

    def free(self) -> int:
        return self.capacity - len(self._data)

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as fits; return how many bytes were taken."""
        taken = min(len(data), self.capacity - len(self._data))
        if taken > 0:
            self._data += data[:taken]
        return max(taken, 0)

    def ack_to(self, offset: int) -> None:
        """Forget everything before ``offset`` (deleting from the front of a bytearray is
        cheap in CPython: it moves a start pointer)."""
        drop = min(offset - self.base, len(self._data))
        if drop > 0:
            del self._data[:drop]
            self.base += drop

    def chunk(self, offset: int, size: int) -> bytearray:
        """A copy of up to ``size`` queued bytes from ``offset``."""
        start = offset - self.base
        return self._data[start : start + size]


class Scoreboard:
    """What the peer has selectively acknowledged above ``snd_una``: merged ranges."""

    __slots__ = ("blocks",)

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int]] = []

    def __bool__(self) -> bool:
        return bool(self.blocks)

    def add(self, start: int, end: int) -> None:
        merged: list[tuple[int, int]] = []
        for block_start, block_end in self.blocks:
            if block_end < start or block_start > end:
                merged.append((block_start, block_end))
            else:
                start = min(start, block_start)
                end = max(end, block_end)
        merged.append((start, end))
        merged.sort()
        self.blocks = merged

    def ack_to(self, offset: int) -> None:
        self.blocks = [(max(s, offset), e) for s, e in self.blocks if e > offset]

    def clear(self) -> None:
        self.blocks = []

    def sacked(self, start: int, end: int) -> int:
        """SACKed bytes within [start, end)."""
        return sum(max(0, min(e, end) - max(s, start)) for s, e in self.blocks)

    def is_sacked(self, offset: int) -> bool:
        return any(s <= offset < e for s, e in self.blocks)

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

    def next_hole(self, start: int, limit: int) -> tuple[int, int] | None:
        """The first un-SACKed range at or after ``start`` that ends by ``limit``."""
        position = start
        for block_start, block_end in self.blocks:
            if block_end <= position:
                continue
            if block_start > position:
                return (position, min(block_start, limit)) if position < limit else None
            position = block_end
        return (position, limit) if position < limit else None
