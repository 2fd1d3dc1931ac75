"""What a long-running TUN server says while it serves and when it stops: a stats
line every few seconds, and a summary of flows, bytes and drops at the end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from l3l4 import Stack

from .device import TunDevice
from .loop import Handler, Loop, Recorder

__all__ = ["ReportingLoop", "stats_line", "summary"]


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def stats_line(stack: Stack[bytearray], elapsed: float) -> str:
    """One line: time served, flows, packets and bytes each way, drops."""
    stats = stack.stats
    return (
        f"[{elapsed:7.1f} s] flows {len(stack.flows())} open, {stats.flows_closed} closed | "
        f"in {stats.rx_packets} pkts {_megabytes(stats.rx_bytes)} | "
        f"out {stats.tx_packets} pkts {_megabytes(stats.tx_bytes)} | drops {stats.dropped}"
    )


def summary(loop: Loop, elapsed: float, extra: Sequence[tuple[str, int]] = ()) -> str:
    """The end-of-run summary: counters as aligned ``name  count`` lines, each drop
    reason that counted, what the device refused, and ``extra`` rows."""
    stats = loop.stack.stats
    rows = [
        ("flows opened (TCP established + UDP)", stats.flows_opened),
        ("flows closed (TCP and UDP, refused too)", stats.flows_closed),
        ("packets in", stats.rx_packets),
        ("bytes in", stats.rx_bytes),
        ("packets out", stats.tx_packets),
        ("bytes out", stats.tx_bytes),
        ("TCP retransmissions", stats.tcp_retransmits),
        ("packets dropped by the stack", stats.dropped),
        *((f"  {reason.value}", count) for reason, count in stats.drops.items() if count),
        ("packets the device refused (queue full)", loop.tx_dropped),
        *extra,
    ]
    width = max(len(name) for name, _ in rows)
    digits = max(len(str(count)) for _, count in rows)
    lines = [f"served for {elapsed:.1f} s"]
    lines += [f"{name.ljust(width)}  {count:>{digits}}" for name, count in rows]
    return "\n".join(lines)


class ReportingLoop(Loop):
    """A :class:`~l3l4_tun.Loop` that writes :func:`stats_line` to ``stream`` every
    ``every`` seconds (never, if ``None``) and stops by itself after ``duration``
    seconds (never, if ``None``). Both ride on the loop's own wakeups: no thread."""

    def __init__(
        self,
        stack: Stack[bytearray],
        devices: Sequence[TunDevice],
        handler: Handler,
        *,
        stream: IO[str],
        every: float | None = None,
        duration: float | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        super().__init__(stack, devices, handler, recorder=recorder)
        self.stream = stream
        self.every = every
        self.started = self.clock()
        self._next_report = None if every is None else self.started + every
        self._stop_at = None if duration is None else self.started + duration

    def elapsed(self) -> float:
        """Seconds since the loop was made."""
        return self.clock() - self.started

    def next_wakeup(self) -> float | None:
        """The stack's next deadline, or the next report or the stop, if sooner."""
        times = [t for t in (super().next_wakeup(), self._next_report, self._stop_at) if t is not None]
        return min(times, default=None)

    def wakeup(self, now: float) -> None:
        """Report and stop when due, then run the stack's timers."""
        if self._next_report is not None and self.every is not None and now >= self._next_report:
            print(stats_line(self.stack, now - self.started), file=self.stream, flush=True)
            self._next_report = now + self.every
        if self._stop_at is not None and now >= self._stop_at:
            self._stop_at = None
            self.stop()
        super().wakeup(now)
