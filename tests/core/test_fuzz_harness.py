"""The fuzz harness (``fuzz/fuzz_l3_rx.py``) and its corpus stay in working order: every
corpus input replays with its invariants holding, recorded conversations replay exactly
(the kernel's ACKs still match the stack's ISNs), and a short plain-random run passes.
The long runs are the harness's own, by hand (docs/reliability.md)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_l3_rx", FUZZ / "fuzz_l3_rx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_l3_rx"] = module
    spec.loader.exec_module(module)
    return module


HARNESS = load_harness()
CORPUS = sorted((FUZZ / "corpus").iterdir())
# What each recorded conversation delivers when it replays as recorded.
DELIVERED = {
    "tcp4-transfer": 7936,
    "tcp6-transfer-mtu1280": 7936,
    "tcp4-syn-cookie": 7936,
    "tcp4-lossy-sack": 23808,
    "kernel-tcp4-nc": 3600,
    "kernel-tcp6-nc": 3600,
    "kernel-udp-fragmented": 8192,
}


def test_the_corpus_is_there_and_small() -> None:
    assert len(CORPUS) >= 12
    assert sum(path.stat().st_size for path in CORPUS) < 256 * 1024
    assert set(DELIVERED) <= {path.name for path in CORPUS}


@pytest.mark.parametrize("path", CORPUS, ids=[path.name for path in CORPUS])
def test_each_corpus_input_replays(path: Path) -> None:
    outcome = HARNESS.run_one(path.read_bytes())
    assert outcome.packets > 0
    if path.name in DELIVERED:
        assert outcome.data_bytes == DELIVERED[path.name]


def test_a_short_plain_random_run() -> None:
    corpus = [path.read_bytes() for path in CORPUS]
    assert HARNESS.random_mode(300, 8, corpus) == 0


def test_the_command_line_runs_without_atheris() -> None:
    result = subprocess.run(
        [sys.executable, str(FUZZ / "fuzz_l3_rx.py"), "--iterations", "20", "--seed", "3"],
        capture_output=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"20 inputs" in result.stdout and b"0 failures" in result.stdout


def test_the_harness_catches_a_broken_invariant() -> None:
    """A control: the checks do bite. A tracker that miscounts the packets it fed
    (as a stack counting one packet twice would look) fails at the first call."""
    raw = (FUZZ / "corpus" / "udp4").read_bytes()
    flags, records = HARNESS.decode(raw)
    tracker = HARNESS.Tracker(flags)
    tracker.fed = 5
    with pytest.raises(AssertionError):
        tracker.run(records)
