"""The matrix: drive a device into a TCP state as its peer, send one probe, and record
the answer by class; the same steps for every device.

Each case uses a fresh bench port, so no two cases share a connection. After the probe
a follow-up segment asks whether the connection survived: an old-sequence ACK, which a
synchronized connection answers with an ACK and no connection answers with a RST (in
SYN-SENT, or after the device's connect from CLOSED, the SYN-ACK that would complete
the handshake).

Two dimensions beyond state and probe: the SYN option set (``plain``: MSS, SACK and
window scale; ``ts``: the same with timestamps, RFC 7323), and the states with data in
flight (``+DATA``: the device's application wrote :data:`FLIGHT_BYTES` that the bench
has not acknowledged; ``+BULK``: :data:`BULK_BYTES`), which have probes of their own.
Some probes are sequences of segments (``sequences.py``), a few with the application's
writes among them; the devices detect losses by counting duplicate ACKs and SACKed
segments, without a tail loss probe, except in the sequences about RACK-TLP (RFC 8985).
The ECN probes (``ecn.py``, RFC 3168) have a state each too, one of them CLOSED (the
device has no connection: the probe is its application's connect); some are sent on a
connection the bench opened with an ECN-setup SYN, some to a device whose ECN mode is
not its default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from support.peer import Segment

from .bench import PEER_ISN, Bench, BenchError, Connect, View, Write
from .dut import LISTEN_PORT, Delivery, Dut
from .ecn import ECN_MODES, ECN_PROBES, ECN_SETUP, ecn_steps
from .sequences import BULK_STATE, NO_SACK, RACK, SEQUENCES, TAIL_LOSS_PROBE, sequence_for
from .wire import MASK, PAYLOAD, UNKNOWN_OPTION, Answer, Probe, answer_of

__all__ = ["OPTION_SETS", "PROBES", "STATES", "Case", "Observation", "cases", "run_case"]

FLIGHT_BYTES = 3000
"""What the application writes in the ``+DATA`` states: two full segments and a short
one, all sent at once (an initial window of ten segments; l3l4's Nagle is off, and
Linux's lets a write's short tail go while no other short segment is unacknowledged)."""
BULK_BYTES = 14000
"""What the application writes in :data:`BULK_STATE`: nine full segments and a short
one (with every MSS the bench meets, 1428 to 1460), all sent at once: the initial
window of ten segments (RFC 6928), with nothing left to send."""
FLIGHT_STATES = {
    "ESTABLISHED+DATA": ("ESTABLISHED", FLIGHT_BYTES),
    "FIN-WAIT-1+DATA": ("FIN-WAIT-1", FLIGHT_BYTES),
    BULK_STATE: ("ESTABLISHED", BULK_BYTES),
}
"""The states with data in flight: the state each is otherwise in, and the bytes the
application wrote."""
STATES = (
    "CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
    "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT", *FLIGHT_STATES,
)
BASE_PROBES = (
    "syn", "syn-ack", "ack", "ack-old", "ack-future",
    "data", "data-ooo", "data-left", "data-right", "data-overlap",
    "rst", "rst-in-window", "rst-outside", "fin", "fin-ooo",
    "urg", "bad-checksum", "unknown-option", "zero-window",
)
FLIGHT_PROBES = ("ack-partial", "ack-dup", "ack-all", "ack-beyond")
"""Probes of the states with data in flight only."""
FLIGHT_BASE_PROBES = ("syn", "ack-old", "data", "data-ooo", "rst", "rst-in-window", "fin")
"""The base probes also sent with data in flight (acknowledging none of it)."""
TS_PROBES = ("paws-old", "ts-missing")
"""Probes of connections with timestamps only (not sent to LISTEN or SYN-SENT)."""
PROBES = BASE_PROBES + FLIGHT_PROBES + TS_PROBES + tuple(SEQUENCES) + tuple(ECN_PROBES)
ACTIVE_STATES = ("CLOSED", "SYN-SENT")
"""The states of a connection the device opens (to the bench's port)."""
OPTION_SETS = ("plain", "ts")

WAIT = 0.1
"""Seconds a probe's answers are collected for: past a 40 ms delayed ACK, short of any
retransmission timeout (200 ms at least)."""
SETTLE = 0.01
"""Seconds to let stray answers to the last step arrive before the probe."""
BEYOND = 8192
"""How far right of the device's window the "outside" probes land."""


@dataclass(frozen=True)
class Case:
    """One cell of the matrix."""

    state: str
    probe: str
    version: int
    options: str = "plain"
    """The SYN option set: ``plain`` or ``ts`` (with timestamps)."""

    def __str__(self) -> str:
        return f"{self.state} {self.probe} IPv{self.version} {self.options}"

    @property
    def applies(self) -> bool:
        """Whether the matrix has this cell: timestamp probes need timestamps and a
        synchronized connection; a sequence or an ECN probe has its one state, and the
        states with data in flight have probes of their own, and only they; CLOSED has
        only its ECN probe."""
        if self.probe in SEQUENCES:
            return self.state == SEQUENCES[self.probe]
        if self.probe in ECN_PROBES:
            return self.state == ECN_PROBES[self.probe]
        if self.state in (BULK_STATE, "CLOSED"):
            return False
        if self.probe in TS_PROBES:
            return self.options == "ts" and self.state not in ("LISTEN", "SYN-SENT")
        if self.state in FLIGHT_STATES:
            return self.probe in FLIGHT_PROBES + FLIGHT_BASE_PROBES
        return self.probe not in FLIGHT_PROBES


def cases(states: Iterable[str], probes: Iterable[str], versions: Iterable[int], options: Iterable[str]) -> list[Case]:
    """The matrix's cells among these, IP version and option set outermost."""
    states, probes = list(states), list(probes)
    every = (
        Case(state, probe, version, option)
        for version in versions for option in options for state in states for probe in probes
    )
    return [case for case in every if case.applies]


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


def drive(bench: Bench, state: str) -> None:
    """Bring the connection on ``bench.port`` into ``state``, the bench playing the peer."""
    view, dut, port = bench.view, bench.dut, bench.port
    if state in FLIGHT_STATES:
        _drive_in_flight(bench, state)
        return
    if state in ("CLOSED", "LISTEN"):
        return
    if state == "SYN-SENT":
        dut.connect(bench.version, port)
        # With ECN on, an ECN-setup SYN (RFC 3168 §6.1.1): ECE and CWR.
        bench.expect("SYN", lambda s: s.flags in ("S", "SEC"))
        return
    bench.step(Probe("SEC" if bench.ecn else "S", PEER_ISN, 0))
    # ECE if the device agreed to use ECN (RFC 3168 §6.1.1).
    bench.expect("SYN-ACK", lambda s: s.flags in ("SA", "SAE") and s.ack == view.snd_nxt)
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


def _drive_in_flight(bench: Bench, state: str) -> None:
    """ESTABLISHED, then the application writes the state's bytes (and for
    FIN-WAIT-1+DATA closes): the bench takes it all in and acknowledges none of it."""
    view = bench.view
    base, size = FLIGHT_STATES[state]
    drive(bench, "ESTABLISHED")
    bench.dut.send(bench.port, size)
    end = (view.rcv_nxt + size) & MASK
    bench.expect("data", lambda s: (s.seq + len(s.payload)) & MASK == end)
    if base == "FIN-WAIT-1":
        bench.dut.shutdown(bench.port)
        bench.expect("FIN", lambda s: "F" in s.flags)


def probes_for(kind: str, view: View, state: str) -> tuple[Probe | Write | Connect, ...]:
    """The steps of the probe called ``kind``: a sequence's, an ECN probe's, or the one
    probe."""
    if kind in SEQUENCES:
        return sequence_for(kind, view)
    if kind in ECN_PROBES:
        return ecn_steps(kind, view)
    return (probe_for(kind, view, state),)


def probe_for(kind: str, view: View, state: str) -> Probe:
    """The probe called ``kind``, placed by what the bench knows of the connection. With
    data in flight, the probes acknowledge none of it unless their names say so."""
    seq, acked = view.snd_nxt, view.acked
    ack = acked if state in FLIGHT_STATES else view.rcv_nxt
    outside = seq + view.window + BEYOND
    probes = {
        "syn": Probe("S", seq, 0),
        "syn-ack": Probe("SA", seq, ack),
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
        "paws-old": Probe("PA", seq, ack, PAYLOAD, timestamp="old"),
        "ts-missing": Probe("PA", seq, ack, PAYLOAD, timestamp="none"),
    }
    if kind in FLIGHT_PROBES:
        probes |= {
            "ack-partial": Probe("A", seq, view.data_ends[0]),
            "ack-dup": Probe("A", seq, acked),
            "ack-all": Probe("A", seq, view.rcv_nxt),
            "ack-beyond": Probe("A", seq, view.rcv_nxt + 1),
        }
    return probes[kind]


def follow_up_for(state: str, view: View, answers: Iterable[Segment]) -> Probe:
    """The segment that asks whether the connection is still there."""
    ack = view.rcv_nxt
    for segment in answers:
        if "S" in segment.flags and "R" not in segment.flags:
            ack = (segment.seq + 1) & MASK
    if state in ACTIVE_STATES:
        return Probe("SA", PEER_ISN, ack)
    return Probe("A", view.snd_nxt - 1000, ack)


def run_case(dut: Dut, case: Case, port: int) -> Observation:
    """Drive ``dut`` into the case's state on ``port``, probe, follow up, clean up."""
    bench = Bench(
        dut, case.version, port, port if case.state in ACTIVE_STATES else LISTEN_PORT, case.options == "ts",
        sack=case.probe not in NO_SACK, ecn=case.probe in ECN_SETUP,
    )
    dut.loss_detection(rack=case.probe in RACK, tail_loss_probe=case.probe in TAIL_LOSS_PROBE)
    dut.ecn(ECN_MODES.get(case.probe, "passive"))
    try:
        drive(bench, case.state)
        bench.view.learn(dut.collect(port, SETTLE))
        dut.read(port)
        probes = probes_for(case.probe, bench.view, case.state)
        answers, echoes = bench.exchange(probes, WAIT)
        delivered = dut.read(port)
        follow = follow_up_for(case.state, bench.view, answers)
        follow_answers, follow_echoes = bench.exchange((follow,), WAIT)
    finally:
        dut.abort(port)
    view = bench.view
    return Observation(
        tuple(answer_of(s, view.rcv_nxt, view.snd_nxt, echoes) for s in answers),
        delivered,
        tuple(answer_of(s, follow.ack, view.snd_nxt, follow_echoes) for s in follow_answers),
    )
