"""Loss detection and the window during recovery: RACK (RFC 8985 §6) and Proportional
Rate Reduction (RFC 6937).

Both are bookkeeping the connection consults: ``Rack`` remembers when each range of
new data left and which delivered segment was sent last, and says which of the ranges
sent before it are lost (or when they will be); ``Prr`` says how much may be sent on
each ACK of a recovery. Positions are stream offsets, as in ``send.py``.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from collections.abc import Iterator

from .send import Scoreboard

__all__ = ["Rack", "Prr", "RetransmitLog"]

# RFC 8985 §6.2 step 4: a reordering window stretched by D-SACK stays for 16 recoveries.
_REO_WND_PERSIST = 16
_DUP_THRESHOLD = 3


class Rack:
    """RFC 8985 §6.1's per-connection variables, and the send times of new data.

    New data leaves in offset order, so its send times are kept as one list of ends and
    one of times (a range sent at one instant is one entry); retransmissions are timed
    by the connection, which knows which ranges it sent again.
    """

    __slots__ = (
        "_ends", "_times", "_delivered", "_head", "xmit_ts", "end_off", "rtt", "min_rtt", "fack",
        "reordering_seen", "reo_wnd_mult", "reo_wnd_persist", "dsack_round",
    )

    def __init__(self) -> None:
        self._ends: list[int] = []
        self._times: list[float] = []
        self._delivered: list[int] = []  # bytes delivered when each range left
        self._head = 0
        # RACK.xmit_ts and RACK.end_seq: the most recently sent segment delivered.
        self.xmit_ts: float | None = None
        self.end_off = 0
        self.rtt = 0.0  # RACK.rtt: the RTT of that segment
        self.min_rtt: float | None = None
        self.fack = 0  # RACK.fack: the highest offset delivered
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = _REO_WND_PERSIST
        self.dsack_round: int | None = None

    # -- the send times of new data -------------------------------------------------

    def sent(self, end: int, now: float, delivered: int) -> None:
        """New data up to ``end`` left at ``now``, with ``delivered`` bytes delivered so far."""
        if len(self._ends) > self._head and self._times[-1] == now:
            self._ends[-1] = end
        else:
            self._ends.append(end)
            self._times.append(now)
            self._delivered.append(delivered)

    def forget_below(self, una: int) -> None:
        """Everything before ``una`` is acknowledged."""
        ends, head = self._ends, self._head
        while head < len(ends) and ends[head] <= una:
            head += 1
        if head > 256 and head * 2 > len(ends):
            del ends[:head]
            del self._times[:head]
            del self._delivered[:head]
            head = 0
        self._head = head

    def sent_record(self, offset: int) -> tuple[float, int] | None:
        """When the byte at ``offset`` first left, and the bytes delivered by then."""
        index = bisect_right(self._ends, offset, self._head)
        return (self._times[index], self._delivered[index]) if index < len(self._ends) else None

    # -- RFC 8985 §6.2 -------------------------------------------------------------------

    def delivered(self, xmit_ts: float, end: int, now: float) -> None:
        """Step 2, RACK_update, for a delivered segment whose timing is unambiguous."""
        rtt = now - xmit_ts
        self.rtt = rtt
        if self.min_rtt is None or rtt < self.min_rtt:
            self.min_rtt = rtt
        if self.xmit_ts is None or xmit_ts > self.xmit_ts or (xmit_ts == self.xmit_ts and end > self.end_off):
            self.xmit_ts, self.end_off = xmit_ts, end

    def ambiguous(self, xmit_ts: float, now: float) -> bool:
        """Step 2: a retransmitted segment acknowledged sooner than the minimum RTT after
        its retransmission was acknowledged for its original transmission."""
        return self.min_rtt is not None and now - xmit_ts < self.min_rtt

    def delivered_original(self, start: int, end: int) -> None:
        """Step 3: a segment sent once, delivered below what was delivered before, was
        reordered, not lost."""
        if end < self.fack:
            self.reordering_seen = True
        self.fack = max(self.fack, end)

    def saw_dsack(self, snd_nxt: int, una: int) -> None:
        """Step 4: a D-SACK widens the reordering window, once per round trip."""
        if self.dsack_round is not None and una >= self.dsack_round:
            self.dsack_round = None
        if self.dsack_round is None:
            self.dsack_round = snd_nxt
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = _REO_WND_PERSIST

    def recovery_ended(self) -> None:
        """Step 4: the widened window shrinks back after 16 recoveries without D-SACK."""
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult = 1

    def reo_wnd(self, recovering: bool, sacked_segments: int, srtt: float | None) -> float:
        """Step 4, RACK_update_reo_wnd: zero once loss is certain and no reordering has
        been seen, else a quarter of the minimum RTT (times the D-SACK multiplier), at
        most SRTT."""
        if not self.reordering_seen and (recovering or sacked_segments >= _DUP_THRESHOLD):
            return 0.0
        window = (self.min_rtt or 0.0) * self.reo_wnd_mult / 4
        return min(window, srtt) if srtt is not None else window

    def expires(self, xmit_ts: float, end: int, reo_wnd: float) -> float | None:
        """Step 5 for one segment: when it counts as lost (``None``: never, as nothing
        sent after it has been delivered)."""
        if self.xmit_ts is None or xmit_ts > self.xmit_ts or (xmit_ts == self.xmit_ts and end >= self.end_off):
            return None
        return xmit_ts + self.rtt + reo_wnd

    def lost_new_data(self, lost_to: int, now: float, reo_wnd: float) -> tuple[int, float | None]:
        """Step 5, RACK_detect_loss, for data sent once: every unSACKed byte below the
        returned offset is lost; the time is when the next range will be, if one is
        waiting for the reordering window."""
        ends, times = self._ends, self._times
        index = bisect_right(ends, lost_to, self._head)
        while index < len(ends) and self.xmit_ts is not None:
            sent_at = times[index]
            if sent_at > self.xmit_ts:
                break
            at = sent_at + self.rtt + reo_wnd
            if sent_at == self.xmit_ts:
                # Sent in one burst with the segment delivered: only what lies below it
                # was sent before it.
                edge = min(ends[index], self.end_off)
                if edge <= lost_to:
                    break
                return (lost_to, at) if at > now else (edge, None)
            if at > now:
                return lost_to, at
            lost_to = ends[index]
            index += 1
        return lost_to, None


class RetransmitLog:
    """Retransmissions neither delivered nor found lost yet, by start offset (to find
    those an ACK delivers without walking them all) and by time (RACK finds lost ones
    oldest first, and stops at the first that is not). Their ranges never overlap: a
    range is sent again only once found lost, when it leaves the log."""

    __slots__ = ("_entries", "_starts", "_by_time")

    def __init__(self) -> None:
        self._entries: dict[int, tuple[int, float]] = {}  # start -> (end, when sent)
        self._starts: list[int] = []
        self._by_time: deque[tuple[float, int]] = deque()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def add(self, start: int, end: int, now: float) -> None:
        if start not in self._entries:
            insort(self._starts, start)
        self._entries[start] = (end, now)
        self._by_time.append((now, start))

    def clear(self) -> None:
        self._entries.clear()
        self._starts.clear()
        self._by_time.clear()

    def _remove(self, start: int) -> None:
        del self._entries[start]
        index = bisect_right(self._starts, start) - 1
        del self._starts[index]

    def overlaps(self, start: int, end: int) -> bool:
        """Whether any retransmission in the log overlaps [start, end)."""
        index = bisect_right(self._starts, start) - 1
        if index >= 0 and self._entries[self._starts[index]][0] > start:
            return True
        return index + 1 < len(self._starts) and self._starts[index + 1] < end

    def take_delivered(
        self, ranges: list[tuple[int, int]], board: Scoreboard, una: int
    ) -> Iterator[tuple[int, int, float]]:
        """The retransmissions ``ranges`` (just delivered) completed: each leaves the
        log, as (start, end, when sent)."""
        starts, entries = self._starts, self._entries
        for low, high in ranges:
            index = max(bisect_right(starts, low) - 1, 0)
            while index < len(starts) and starts[index] < high:
                start = starts[index]
                end, sent_at = entries[start]
                rest = max(start, una)
                if end > low and (rest >= end or board.sacked(rest, end) == end - rest):
                    self._remove(start)
                    yield start, end, sent_at
                else:
                    index += 1

    def take_lost(
        self, rack: Rack, reo_wnd: float, now: float, board: Scoreboard, una: int
    ) -> tuple[list[tuple[int, int]], float | None]:
        """RFC 8985 §6.2 step 5 for retransmissions, oldest first: the ranges (from
        ``una``) now lost, which leave the log, and when the next will be, if it may."""
        lost: list[tuple[int, int]] = []
        by_time, entries = self._by_time, self._entries
        while by_time:
            sent_at, start = by_time[0]
            entry = entries.get(start)
            if entry is None or entry[1] != sent_at:
                by_time.popleft()  # delivered, or found lost, since
                continue
            end = entry[0]
            rest = max(start, una)
            if rest >= end or board.sacked(rest, end) == end - rest:
                self._remove(start)  # it arrived
                by_time.popleft()
                continue
            at = rack.expires(sent_at, end, reo_wnd)
            if at is None or at > now:
                return lost, at
            self._remove(start)
            by_time.popleft()
            lost.append((rest, end))
        return lost, None


class Prr:
    """Proportional Rate Reduction (RFC 6937, as RFC 9937 and Linux's
    tcp_cwnd_reduction refine it): during fast recovery, send in proportion to what the
    peer delivers, so that the window comes down to ssthresh smoothly, and below it
    grow back no faster than delivery (one MSS more only on an ACK that moves SND.UNA
    and reports no new loss)."""

    __slots__ = ("recover_fs", "delivered", "out")

    def __init__(self) -> None:
        self.recover_fs = 0
        self.delivered = 0
        self.out = 0

    def start(self, recover_fs: int) -> None:
        """RFC 6937 §3.1, on entering recovery; RecoverFS is the window before the
        reduction (as Linux's prior_cwnd)."""
        self.recover_fs = max(recover_fs, 1)
        self.delivered = 0
        self.out = 0

    def window(self, delivered: int, pipe: int, ssthresh: int, mss: int, safe: bool) -> int:
        """RFC 6937 §3.1, on every ACK during recovery: the congestion window that lets
        ``sndcnt`` bytes out now (cwnd = pipe + sndcnt). ``safe``: the ACK moved SND.UNA
        and reported no new loss."""
        self.delivered += delivered
        if pipe > ssthresh:
            # The proportional part: ssthresh/RecoverFS of what was delivered.
            sndcnt = -(-self.delivered * ssthresh // self.recover_fs) - self.out
        else:
            # Back up to ssthresh as fast as data is delivered (PRR-CRB), one MSS more
            # when recovery is making progress (PRR-SSRB).
            sndcnt = max(self.delivered - self.out, delivered) + (mss if safe else 0)
            sndcnt = min(ssthresh - pipe, sndcnt)
        if self.out == 0:
            sndcnt = max(sndcnt, mss)  # the fast retransmit that starts recovery goes
        return pipe + max(sndcnt, 0)
