"""What a long-running TUN server says while it serves and when it stops: a stats
line every few seconds, and a summary of flows, bytes and drops at the end."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import IO

from l3l4 import FlowClosed, FlowInfo, Output, Stack

from .device import TunDevice
from .loop import Handler, Loop, Recorder

__all__ = ["ReportingLoop", "stats_line", "summary", "connection_line"]


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


def _milliseconds(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _endpoint(address: IPv4Address | IPv6Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def connection_line(event: FlowClosed, info: FlowInfo, elapsed: float) -> str:
    """One closed TCP connection's figures, as ``ss -ti`` would show them."""
    flow = event.flow
    ssthresh = "-" if info.ssthresh >= 0x7FFFFFFF else str(info.ssthresh)
    return (
        f"[{elapsed:7.1f} s] TCP {_endpoint(flow.remote_ip, flow.remote_port)} -> "
        f"{_endpoint(flow.local_ip, flow.local_port)} "
        f"{event.reason.value} in {info.state} | sent {info.bytes_acked} B acked, received {info.bytes_received} B | "
        f"srtt {_milliseconds(info.srtt)} min {_milliseconds(info.min_rtt)} rto {_milliseconds(info.rto)} | "
        f"cwnd {info.cwnd} ssthresh {ssthresh} | retransmitted {info.total_retransmits} segments, "
        f"{info.dsacks_received} D-SACKs, reordering {'seen' if info.reordering_seen else 'no'} | "
        f"delivery {_megabytes(int(info.delivery_rate))}/s | ECN {'on' if info.ecn else 'off'}"
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
        connections: bool = False,
    ) -> None:
        super().__init__(stack, devices, handler, recorder=recorder)
        self.stream = stream
        self.every = every
        self.connections = connections
        self.started = self.clock()
        self._next_report = None if every is None else self.started + every
        self._stop_at = None if duration is None else self.started + duration

    def elapsed(self) -> float:
        """Seconds since the loop was made."""
        return self.clock() - self.started

    def dispatch(self, out: Output[bytearray]) -> None:
        """With ``connections``, a :func:`connection_line` for each TCP connection
        that closes, then the usual."""
        if self.connections:
            for event in out.events:
                if isinstance(event, FlowClosed) and event.info is not None:
                    print(connection_line(event, event.info, self.elapsed()), file=self.stream, flush=True)
        super().dispatch(out)

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
