"""The bench's end of one connection: what it knows of the device's sequence space, and
the segments it sends, stamped with its options and timestamps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from support.peer import Segment

from .dut import Dut
from .wire import MASK, Probe, bench_syn_options, build

__all__ = ["DRIVE_WAIT", "LISTEN_ACK", "PEER_ISN", "Bench", "BenchError", "Connect", "View", "Write"]

DRIVE_WAIT = 1.0
"""Most seconds to wait for the answer that moves a connection to the next state."""
PEER_ISN = 0x1000_0000
LISTEN_ACK = 0x2000_0000
"""The acknowledgment number of probes to a listener (no sequence space of its own yet)."""
TS_START = 0x0100_0000
"""The bench's first TSval; its clock ticks once per segment sent, from here."""
TS_OLD = TS_START - 1000
"""A TSval older than any the bench sent (RFC 7323 §5.3: what PAWS rejects)."""


class BenchError(RuntimeError):
    """A device could not be driven into the state a case asks for."""


@dataclass(frozen=True)
class Write:
    """A step of a sequence that is no segment: the device's application writes
    ``size`` bytes (which it sends as its windows allow)."""

    size: int


@dataclass(frozen=True)
class Connect:
    """A step of a sequence that is no segment: the device's application connects to
    the bench's port (its SYN is among the answers)."""


@dataclass
class View:
    """What the bench knows of its connection with the device."""

    snd_nxt: int = PEER_ISN
    """The bench's next sequence number."""
    rcv_nxt: int = LISTEN_ACK
    """The device's next sequence number, as far as the bench has seen."""
    acked: int = LISTEN_ACK
    """How far the bench has acknowledged the device."""
    window: int = 65535
    """The device's receive window, as last advertised."""
    wscale: int = 0
    ts_echo: int = 0
    """The device's latest TSval, which the bench's next segment echoes (RFC 7323 §3.2)."""
    data_ends: list[int] = field(default_factory=list)
    """Where each data segment of the device ended, in the order they came."""

    def learn(self, segments: Iterable[Segment]) -> None:
        """Follow the device's sequence space, window and timestamps."""
        for segment in segments:
            if "R" in segment.flags:
                continue
            if segment.ts is not None:
                self.ts_echo = segment.ts[0]
            if "S" in segment.flags:
                self.rcv_nxt = self.acked = segment.seq
                self.window = segment.window
                self.wscale = segment.wscale or 0
            else:
                self.window = segment.window << self.wscale
            if segment.seq == self.rcv_nxt and segment.seg_len:
                self.rcv_nxt = (self.rcv_nxt + segment.seg_len) & MASK
                if segment.payload:
                    self.data_ends.append((segment.seq + len(segment.payload)) & MASK)


class Bench:
    """The peer of one connection with one device, on the bench's ``port``; with
    ``timestamps``, every segment but a reset carries the timestamps option of RFC 7323
    (an increasing TSval, the device's latest TSval echoed), its SYN offering it; its
    SYN offers SACK (RFC 2018) if ``sack``, and is an ECN-setup SYN (ECE and CWR, RFC
    3168 §6.1.1) if ``ecn``."""

    def __init__(
        self, dut: Dut, version: int, port: int, dut_port: int, timestamps: bool, sack: bool = True, ecn: bool = False
    ) -> None:
        self.dut = dut
        self.version = version
        self.port = port
        self.dut_port = dut_port
        self.timestamps = timestamps
        self.sack = sack
        self.ecn = ecn
        self.view = View()
        self.clock = TS_START
        self.echoes: dict[int, str] = {}
        """Every TSval sent, named for the classification of answers (``earlier``)."""
        self.last_ts: int | None = None
        """The TSval of the last segment sent, if it carried one."""

    def _stamped(self, probe: Probe) -> Probe:
        """``probe`` with the options it goes out with."""
        timestamp: tuple[int, int] | None = None
        if self.timestamps and probe.timestamp != "none" and "R" not in probe.flags:
            if probe.timestamp == "old":
                tsval = TS_OLD
            else:
                self.clock += 1
                tsval = self.clock
            self.echoes[tsval] = "earlier"
            # RFC 7323 §3.2: TSecr is zero unless the ACK bit is set.
            timestamp = (tsval, self.view.ts_echo if "A" in probe.flags else 0)
        self.last_ts = None if timestamp is None else timestamp[0]
        options: tuple[tuple[Any, Any], ...] = probe.options
        if "S" in probe.flags:
            options = (*bench_syn_options(timestamp, self.sack), *options)
        elif timestamp is not None:
            options = (*options, ("Timestamp", timestamp))
        return replace(probe, options=options)

    def send(self, probe: Probe) -> None:
        """Send a segment, stamped, without moving our sequence number."""
        self.dut.inject(build(self._stamped(probe), self.version, self.port, self.dut_port))

    def step(self, probe: Probe) -> None:
        """Send a segment of our own sequence space (it moves past it)."""
        self.send(probe)
        self.view.snd_nxt = probe.end

    def expect(self, what: str, wanted: Callable[[Segment], bool]) -> None:
        """Collect the device's segments until one is ``wanted``, learning from them all."""
        segments = self.dut.collect(self.port, DRIVE_WAIT, until=wanted)
        self.view.learn(segments)
        if not any(map(wanted, segments)):
            raise BenchError(f"{self.dut.name}: no {what} (got {segments})")

    def exchange(self, probes: Sequence[Probe | Write | Connect], wait: float) -> tuple[list[Segment], dict[int, str]]:
        """Send ``probes`` back to back (a :class:`Write` or :class:`Connect` is the
        application's) and collect the answers for ``wait`` seconds; with them, the names
        of the TSvals they may echo (the probes' are ``probe``)."""
        echoes = dict(self.echoes)
        for probe in probes:
            if isinstance(probe, Write):
                self.dut.send(self.port, probe.size)
                continue
            if isinstance(probe, Connect):
                self.dut.connect(self.version, self.port)
                continue
            self.send(probe)
            if self.last_ts is not None:
                echoes[self.last_ts] = "probe"
        return self.dut.collect(self.port, wait), echoes
