"""Run cases on both devices, compare them, and write the results as Markdown."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .differences import DIFFERENCES, Difference, justification
from .dut import Dut
from .matrix import Case, Observation, run_case

__all__ = ["Row", "markdown", "replace_between", "run_matrix", "summary"]

BEGIN = "<!-- conformance:begin (written by scripts/conformance --write) -->"
END = "<!-- conformance:end -->"
OPTION_TITLES = {"plain": "Without timestamps", "ts": "With timestamps (RFC 7323)"}
"""The heading of each SYN option set's table."""


@dataclass(frozen=True)
class Row:
    """One case as both devices answered it."""

    case: Case
    linux: Observation
    l3l4: Observation

    @property
    def agree(self) -> bool:
        return self.linux.key() == self.l3l4.key()

    @property
    def difference(self) -> Difference | None:
        """The listed difference that explains a disagreement (``None`` if they agree)."""
        return None if self.agree else justification(self.case)

    @property
    def verdict(self) -> str:
        if self.agree:
            return "agree"
        difference = self.difference
        return f"justified: {difference.key}" if difference else "DIFFERENT"


def run_matrix(
    cases: Iterable[Case], linux: Dut, l3l4: Dut, first_port: int, progress: Callable[[Row], None] | None = None
) -> list[Row]:
    """Every case on both devices, each on a fresh bench port."""
    rows = []
    for port, case in enumerate(cases, first_port):
        row = Row(case, run_case(linux, case, port), run_case(l3l4, case, port))
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def summary(rows: list[Row]) -> tuple[int, int, int, int]:
    """(probes, agreements, justified differences, unexplained differences)."""
    agree = sum(row.agree for row in rows)
    justified = sum(row.difference is not None for row in rows)
    return len(rows), agree, justified, len(rows) - agree - justified


def _mark(row: Row | None) -> str:
    if row is None:
        return ""
    if row.agree:
        return "="
    difference = row.difference
    return f"[≠](#{difference.key})" if difference else "**≠ unexplained**"


def _lowered(title: str) -> str:
    """A heading as it reads inside a sentence."""
    return title[0].lower() + title[1:]


def markdown(rows: list[Row]) -> str:
    """The results: the figures, one table row per state and probe, and the differences
    with the RFC text that allows each."""
    probes, agree, justified, unexplained = summary(rows)
    lines = [
        f"**{probes} probes: {agree} agree ({100 * agree / probes:.1f} %), {justified} differ as the RFCs "
        f"allow (listed below), {unexplained} unexplained.**",
        "",
        "Answers: flags, `seq` relative to the device's next sequence number (`isn`: a new ISN), `ack` "
        "relative to the bench's next sequence number before the probe, `len` of any payload; then what "
        "the application received, and whether the connection answered the follow-up (`alive yes`), "
        "reset it (`no`) or said nothing (`silent`). The answer columns are IPv4's; `=` means the two "
        "devices agreed for that IP version. With timestamps, `ts=` says whose TSval an answer's "
        "TSecr echoes: the probe's, or an `earlier` segment's of the bench. Flags `E` and `C` are ECE and "
        "CWR (RFC 3168); `ect0` or `ce` is the ECN codepoint of an answer's IP header, when it is not "
        "not-ECT.",
        "",
    ]
    by_key: dict[tuple[str, str, str], dict[int, Row]] = {}
    for row in rows:
        case = row.case
        by_key.setdefault((case.options, case.state, case.probe), {})[case.version] = row
    for options, title in OPTION_TITLES.items():
        keys = [key for key in by_key if key[0] == options]
        if not keys:
            continue
        lines += [f"#### {title}", "", "| state | probe | Linux | l3l4 | IPv4 | IPv6 |", "|---|---|---|---|---|---|"]
        for key in keys:
            versions = by_key[key]
            shown = versions.get(4) or versions[6]
            linux, l3l4 = str(shown.linux), str(shown.l3l4)
            lines.append(
                f"| {key[1]} | {key[2]} | {linux} | {'same' if l3l4 == linux else l3l4} "
                f"| {_mark(versions.get(4))} | {_mark(versions.get(6))} |"
            )
        lines.append("")
    lines += ["### Differences the RFCs allow", ""]
    for difference in DIFFERENCES:
        count = sum(row.difference is difference for row in rows)
        lines += [
            f'<a id="{difference.key}"></a>**{difference.title}** ({count} probes: '
            f"{', '.join(difference.states)} × {', '.join(difference.probes)}"
            f"{'' if len(difference.options) > 1 else ', ' + _lowered(OPTION_TITLES[difference.options[0]])})",
            "",
            f"- Linux: {difference.linux}",
            f"- l3l4: {difference.l3l4}",
            f"- Why both are right: {difference.rfc}",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def replace_between(document: str, text: str) -> str:
    """``document`` with what lies between the conformance markers replaced by ``text``."""
    start = document.index(BEGIN) + len(BEGIN)
    end = document.index(END)
    return document[:start] + "\n" + text + document[end:]
