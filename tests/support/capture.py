"""tshark as the independent judge of capture files: what it finds wrong in a file,
and the bytes its own TCP reassembly follows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

__all__ = ["GOPACKET", "follow_tcp", "tshark", "tshark_fields", "tshark_problems"]

GOPACKET = Path("/usr/share/gocode/src/github.com/google/gopacket")
"""Captures shipped by Debian's golang-github-google-gopacket-dev (gopacket's own test
files: ``pcap/test_*.pcap`` and the pcapng test suite in ``pcapgo/tests/{le,be}``),
installed by ``.ci/run``."""

_CHECKS = [
    "-o",
    "tcp.check_checksum:TRUE",
    "-o",
    "udp.check_checksum:TRUE",
    "-o",
    "ip.check_checksum:TRUE",
]
_BAD = (
    '_ws.expert.severity == error || _ws.malformed || ip.checksum.status == "Bad" || '
    'tcp.checksum.status == "Bad" || udp.checksum.status == "Bad" || icmp.checksum.status == "Bad" || '
    'icmpv6.checksum.status == "Bad"'
)
_ROOT_NOTICE = 'Running as user "root" and group "root". This could be dangerous.'


def tshark(*argv: str | Path, timeout: float = 120.0) -> str:
    """Run tshark; fail on a non-zero exit or anything on stderr but the root notice."""
    result = subprocess.run(["tshark", *map(str, argv)], capture_output=True, timeout=timeout, check=False)
    errors = [line for line in result.stderr.decode().splitlines() if line.strip() and line.strip() != _ROOT_NOTICE]
    assert result.returncode == 0 and not errors, (result.returncode, errors)
    return result.stdout.decode()


def tshark_problems(path: Path) -> list[str]:
    """Every frame tshark finds malformed, with a bad IP/TCP/UDP/ICMP checksum (all
    verified), or with an expert-info error; and it must read the file without a word
    on stderr (no "cut short", no unknown blocks)."""
    out = tshark("-r", path, *_CHECKS, "-Y", _BAD, "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message")
    return [line for line in out.splitlines() if line.strip() and not _zero_written_as_ones(line)]


def _zero_written_as_ones(line: str) -> bool:
    """A frame whose only complaint is a checksum of 0xFFFF where 0x0000 was computed:
    the same number in one's complement (RFC 1624 §3), and what Linux writes when it
    completes a zero checksum in software (``CSUM_MANGLED_0``); about one kernel packet
    in 65,535 carries one."""
    _frame, _, messages = line.partition("\t")
    notes = [message for message in messages.split(",") if message]
    return bool(notes) and all(re.fullmatch(r"(TCP|UDP) Checksum 0xffff instead of 0x0000 \(see RFC 1624\)", note) for note in notes)


def tshark_fields(path: Path, *fields: str, display_filter: str | None = None) -> list[list[str]]:
    """The given fields of every frame, as tshark decodes them."""
    argv: list[str | Path] = ["-r", path, "-T", "fields"]
    for field in fields:
        argv += ["-e", field]
    if display_filter:
        argv += ["-Y", display_filter]
    return [line.split("\t") for line in tshark(*argv).splitlines()]


def follow_tcp(path: Path, stream: int = 0) -> tuple[bytes, bytes]:
    """tshark's own reassembly of TCP stream ``stream``: the bytes the first node (the
    one that sent the first packet) sent, and the bytes the other sent."""
    out = tshark("-r", path, "-q", "-z", f"follow,tcp,raw,{stream}")
    first, second = bytearray(), bytearray()
    body = out.split("Node 1:", 1)[1].split("\n", 1)[1]
    for line in body.splitlines():
        if line.startswith("====="):
            break
        if line.startswith("\t"):
            second += bytes.fromhex(line.strip())
        elif line.strip():
            first += bytes.fromhex(line.strip())
    return bytes(first), bytes(second)
