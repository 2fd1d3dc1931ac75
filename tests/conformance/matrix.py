"""The matrix: drive a device into a TCP state as its peer, send one probe, and record
the answer by class; the same steps for every device.

Each case uses a fresh bench port, so no two cases share a connection. After the probe
a follow-up segment asks whether the connection survived: an old-sequence ACK, which a
synchronized connection answers with an ACK and no connection answers with a RST (in
SYN-SENT, the SYN-ACK that would complete the handshake).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from support.peer import Segment

from .dut import LISTEN_PORT, Delivery, Dut
from .wire import MASK, SYN_OPTIONS, UNKNOWN_OPTION, Answer, Probe, answer_of, build

__all__ = ["PROBES", "STATES", "Case", "Observation", "run_case"]

STATES = (
    "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
    "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT",
)
PROBES = (
    "syn", "syn-ack", "ack", "ack-old", "ack-future",
    "data", "data-ooo", "data-left", "data-right", "data-overlap",
    "rst", "rst-in-window", "rst-outside", "fin", "fin-ooo",
    "urg", "bad-checksum", "unknown-option", "zero-window",
)

WAIT = 0.1
"""Seconds a probe's answers are collected for: past a 40 ms delayed ACK, short of any
retransmission timeout (200 ms at least)."""
DRIVE_WAIT = 1.0
"""Most seconds to wait for the answer that moves a connection to the next state."""
SETTLE = 0.01
"""Seconds to let stray answers to the last step arrive before the probe."""
PEER_ISN = 0x1000_0000
LISTEN_ACK = 0x2000_0000
"""The acknowledgment number of probes to a listener (no sequence space of its own yet)."""
PAYLOAD = bytes(range(48, 148))
BEYOND = 8192
"""How far right of the device's window the "outside" probes land."""


class BenchError(RuntimeError):
    """A device could not be driven into the state a case asks for."""


@dataclass(frozen=True)
class Case:
    """One cell of the matrix."""

    state: str
    probe: str
    version: int

    def __str__(self) -> str:
        return f"{self.state} {self.probe} IPv{self.version}"


@dataclass(frozen=True)
class Observation:
    """How a device answered one case."""

    answers: tuple[Answer, ...]
    delivered: Delivery
    follow_up: tuple[Answer, ...]

    @property
    def survived(self) -> str:
        """``yes`` if the follow-up was acknowledged, ``no`` if reset, else ``silent``."""
        flags = [answer.flags for answer in self.follow_up]
        if any("R" in f for f in flags):
            return "no"
        return "yes" if any("A" in f for f in flags) else "silent"

    def key(self) -> tuple[object, ...]:
        """What must be equal for two devices to agree."""
        return (tuple(a.key() for a in self.answers), self.delivered, self.survived)

    def __str__(self) -> str:
        answers = ", ".join(map(str, self.answers)) or "none"
        return f"{answers}; app {self.delivered}; alive {self.survived}"


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

    def learn(self, segments: Iterable[Segment]) -> None:
        """Follow the device's sequence space and window."""
        for segment in segments:
            if "R" in segment.flags:
                continue
            if "S" in segment.flags:
                self.rcv_nxt = self.acked = segment.seq
                self.window = segment.window
                self.wscale = segment.wscale or 0
            else:
                self.window = segment.window << self.wscale
            if segment.seq == self.rcv_nxt and segment.seg_len:
                self.rcv_nxt = (self.rcv_nxt + segment.seg_len) & MASK


class Bench:
    """The peer of one connection with one device, on the bench's ``port``."""

    def __init__(self, dut: Dut, version: int, port: int, dut_port: int) -> None:
        self.dut = dut
        self.version = version
        self.port = port
        self.dut_port = dut_port
        self.view = View()

    def send(self, probe: Probe) -> None:
        self.dut.inject(build(probe, self.version, self.port, self.dut_port))

    def step(self, probe: Probe) -> None:
        """Send a segment of our own sequence space (it moves past it)."""
        self.send(probe)
        self.view.snd_nxt = probe.end

    def expect(self, what: str, wanted: Callable[[Segment], bool]) -> None:
        segments = self.dut.collect(self.port, DRIVE_WAIT, until=wanted)
        self.view.learn(segments)
        if not any(map(wanted, segments)):
            raise BenchError(f"{self.dut.name}: no {what} (got {segments})")

    def exchange(self, probe: Probe, wait: float) -> list[Segment]:
        self.send(probe)
        return self.dut.collect(self.port, wait)


def drive(bench: Bench, state: str) -> None:
    """Bring the connection on ``bench.port`` into ``state``, the bench playing the peer."""
    view, dut, port = bench.view, bench.dut, bench.port
    if state == "LISTEN":
        return
    if state == "SYN-SENT":
        dut.connect(bench.version, port)
        bench.expect("SYN", lambda s: s.flags == "S")
        return
    bench.step(Probe("S", PEER_ISN, 0, options=tuple(SYN_OPTIONS)))
    bench.expect("SYN-ACK", lambda s: s.flags == "SA" and s.ack == view.snd_nxt)
    if state == "SYN-RECEIVED":
        return
    bench.step(Probe("A", view.snd_nxt, view.rcv_nxt))
    view.acked = view.rcv_nxt
    if not dut.accepted(port):
        raise BenchError(f"{dut.name}: the connection was not accepted")
    if state == "ESTABLISHED":
        return
    if state in ("CLOSE-WAIT", "LAST-ACK"):
        bench.step(Probe("FA", view.snd_nxt, view.rcv_nxt))
        bench.expect("ACK of our FIN", lambda s: s.ack == view.snd_nxt)
        if state == "LAST-ACK":
            dut.shutdown(port)
            bench.expect("FIN", lambda s: "F" in s.flags)
        return
    dut.shutdown(port)
    bench.expect("FIN", lambda s: "F" in s.flags)
    if state == "FIN-WAIT-1":
        return
    if state == "CLOSING":
        bench.step(Probe("FA", view.snd_nxt, view.acked))
        bench.expect("ACK of our FIN", lambda s: s.ack == view.snd_nxt)
        return
    bench.send(Probe("A", view.snd_nxt, view.rcv_nxt))
    view.acked = view.rcv_nxt
    if state == "FIN-WAIT-2":
        return
    bench.step(Probe("FA", view.snd_nxt, view.rcv_nxt))
    bench.expect("ACK of our FIN", lambda s: s.ack == view.snd_nxt)


def probe_for(kind: str, view: View) -> Probe:
    """The probe called ``kind``, placed by what the bench knows of the connection."""
    seq, ack, acked = view.snd_nxt, view.rcv_nxt, view.acked
    outside = seq + view.window + BEYOND
    probes = {
        "syn": Probe("S", seq, 0, options=tuple(SYN_OPTIONS)),
        "syn-ack": Probe("SA", seq, ack, options=tuple(SYN_OPTIONS)),
        "ack": Probe("A", seq, ack),
        "ack-old": Probe("A", seq, acked - 1),
        "ack-future": Probe("A", seq, ack + 1000),
        "data": Probe("PA", seq, ack, PAYLOAD),
        "data-ooo": Probe("PA", seq + 100, ack, PAYLOAD),
        "data-left": Probe("PA", seq - 200, ack, PAYLOAD),
        "data-right": Probe("PA", outside, ack, PAYLOAD),
        "data-overlap": Probe("PA", seq - 50, ack, PAYLOAD),
        "rst": Probe("RA", seq, ack),
        "rst-in-window": Probe("RA", seq + 100, ack),
        "rst-outside": Probe("RA", outside, ack),
        "fin": Probe("FA", seq, ack),
        "fin-ooo": Probe("FA", seq + 100, ack),
        "urg": Probe("UPA", seq, ack, PAYLOAD, urgent=50),
        "bad-checksum": Probe("PA", seq, ack, PAYLOAD, bad_checksum=True),
        "unknown-option": Probe("PA", seq, ack, PAYLOAD, options=(UNKNOWN_OPTION,)),
        "zero-window": Probe("PA", seq, ack, PAYLOAD, window=0),
    }
    return probes[kind]


def follow_up_for(state: str, view: View, answers: Iterable[Segment]) -> Probe:
    """The segment that asks whether the connection is still there."""
    ack = view.rcv_nxt
    for segment in answers:
        if "S" in segment.flags and "R" not in segment.flags:
            ack = (segment.seq + 1) & MASK
    if state == "SYN-SENT":
        return Probe("SA", PEER_ISN, ack, options=tuple(SYN_OPTIONS))
    return Probe("A", view.snd_nxt - 1000, ack)


def run_case(dut: Dut, case: Case, port: int) -> Observation:
    """Drive ``dut`` into the case's state on ``port``, probe, follow up, clean up."""
    bench = Bench(dut, case.version, port, port if case.state == "SYN-SENT" else LISTEN_PORT)
    try:
        drive(bench, case.state)
        bench.view.learn(dut.collect(port, SETTLE))
        dut.read(port)
        probe = probe_for(case.probe, bench.view)
        answers = bench.exchange(probe, WAIT)
        delivered = dut.read(port)
        follow = follow_up_for(case.state, bench.view, answers)
        follow_answers = bench.exchange(follow, WAIT)
    finally:
        dut.abort(port)
    return Observation(
        tuple(answer_of(s, bench.view.rcv_nxt, bench.view.snd_nxt) for s in answers),
        delivered,
        tuple(answer_of(s, follow.ack, bench.view.snd_nxt) for s in follow_answers),
    )
