"""The quick subset of the conformance matrix: 66 probes sent to the Linux kernel and to
l3l4, IPv4 and IPv6, with and without timestamps, with data in flight, as sequences
of segments (fast retransmission, RACK, SACK and D-SACK blocks) and about ECN (its
negotiation both ways, CE echoed until CWR, the sender's CWR), which must answer
alike. The full matrix is ``scripts/conformance``; see ``docs/conformance.md``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from .differences import justification
from .dut import StackDut
from .kernel import KernelDut
from .matrix import Case, run_case

QUICK = (
    ("LISTEN", "syn"), ("LISTEN", "ack"), ("ESTABLISHED", "ack-old"),
    ("SYN-SENT", "syn-ack"), ("SYN-SENT", "rst"),
    ("SYN-RECEIVED", "ack"), ("SYN-RECEIVED", "data"),
    ("ESTABLISHED", "syn"), ("ESTABLISHED", "data"), ("ESTABLISHED", "data-ooo"),
    ("ESTABLISHED", "data-overlap"), ("ESTABLISHED", "rst"), ("ESTABLISHED", "rst-in-window"),
    ("ESTABLISHED", "fin-ooo"), ("ESTABLISHED", "bad-checksum"),
    ("FIN-WAIT-2", "fin"), ("CLOSE-WAIT", "fin"), ("CLOSING", "ack"), ("LAST-ACK", "ack"),
    ("TIME-WAIT", "data"),
)
QUICK_WITH_OPTIONS = (
    ("ESTABLISHED", "paws-old", "ts"), ("ESTABLISHED+DATA", "ack-partial", "plain"),
    ("ESTABLISHED+DATA", "ack-dup", "ts"), ("ESTABLISHED+BULK", "dupacks-nosack", "plain"),
    ("ESTABLISHED+BULK", "dupacks-sack", "ts"), ("ESTABLISHED", "data-ooo-2", "ts"),
    ("ESTABLISHED+BULK", "rack-lost", "ts"), ("ESTABLISHED", "data-dup", "ts"), ("ESTABLISHED", "data-ooo-dup", "plain"),
    ("LISTEN", "ecn-syn", "plain"), ("ESTABLISHED", "ecn-ce-cwr", "ts"), ("ESTABLISHED+DATA", "ecn-ece", "plain"),
    ("CLOSED", "ecn-connect", "ts"),
)
CASES = [
    Case(state, probe, version, options)
    for version in (4, 6)
    for state, probe, options in (*((state, probe, "plain") for state, probe in QUICK), *QUICK_WITH_OPTIONS)
]
_ports = itertools.count(30000)


@pytest.fixture(scope="module")
def linux() -> Iterator[KernelDut]:
    with KernelDut.running() as dut:
        yield dut


@pytest.fixture(scope="module")
def l3l4() -> StackDut:
    return StackDut()


def test_the_quick_subset_has_no_listed_difference() -> None:
    assert [case for case in CASES if justification(case) or not case.applies] == []


@pytest.mark.parametrize("case", CASES, ids=str)
def test_answered_like_linux(case: Case, linux: KernelDut, l3l4: StackDut) -> None:
    port = next(_ports)
    expected = run_case(linux, case, port)
    got = run_case(l3l4, case, port)
    assert got.key() == expected.key(), f"{case}\n  linux {expected}\n  l3l4  {got}"
