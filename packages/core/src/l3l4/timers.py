"""The timer queue: connection deadlines in a heap, so ``next_deadline`` and ``l4_poll``
never scan the flow table."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tcp.connection import Connection

__all__ = ["TimerQueue"]

# Dead entries tolerated beyond twice the live ones before the heap is rebuilt.
_SLACK = 1024


class TimerQueue:
    """A heap of (deadline, tiebreak, connection) with at most one live entry each.

    A connection's ``deadline`` changes all the time (every ACK moves the retransmission
    timer). Pushing on every change would grow the heap by one entry per packet, so an
    entry is pushed only when the deadline moves *earlier* than the one scheduled
    (``connection.scheduled``). When a later-moving deadline's entry comes up, it is
    pushed again at the real time; entries whose connection has rescheduled or closed
    are discarded as they surface. Both operations stay O(log n) amortized.

    A closed connection's entry would otherwise wait for its deadline (up to the idle
    timeout, hours) and keep the connection alive: under churn the heap would grow with
    the rate of new connections, not their number. So once the heap is twice the size
    it had after the last clean-up (plus some slack), it is rebuilt from its live
    entries: O(n), amortized O(1) per push.
    """

    __slots__ = ("_heap", "_tiebreak", "_compact_at")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Connection]] = []
        self._tiebreak = 0
        self._compact_at = _SLACK

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, connection: Connection) -> None:
        """Make sure the heap wakes ``connection`` no later than its deadline."""
        deadline = connection.deadline
        if deadline is None or connection.closed:
            return
        if connection.scheduled is not None and connection.scheduled <= deadline:
            return
        connection.scheduled = deadline
        self._tiebreak += 1
        heapq.heappush(self._heap, (deadline, self._tiebreak, connection))
        if len(self._heap) > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        """Keep only the live entries: the one per connection its ``scheduled`` names."""
        live = [entry for entry in self._heap if entry[2].scheduled == entry[0] and not entry[2].closed]
        heapq.heapify(live)
        self._heap = live
        self._compact_at = 2 * len(live) + _SLACK

    def pop_due(self, now: float) -> list[Connection]:
        """Every connection whose deadline has come by ``now``."""
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            deadline, _, connection = heapq.heappop(heap)
            if connection.scheduled != deadline or connection.closed:
                continue  # superseded by an earlier entry, or gone
            connection.scheduled = None
            if connection.deadline is not None and connection.deadline <= now:
                due.append(connection)
            else:
                self.schedule(connection)
        return due

    def next_deadline(self) -> float | None:
        """The exact next deadline: stale entries at the top are cleaned away first."""
        heap = self._heap
        while heap:
            deadline, _, connection = heap[0]
            if connection.scheduled != deadline or connection.closed:
                heapq.heappop(heap)
                continue
            actual = connection.deadline
            if actual is None:
                heapq.heappop(heap)
                connection.scheduled = None
                continue
            if actual > deadline:
                heapq.heappop(heap)
                connection.scheduled = None
                self.schedule(connection)
                continue
            return deadline
        return None
