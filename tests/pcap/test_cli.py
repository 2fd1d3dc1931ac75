"""The ``l3l4-pcap`` command: every subcommand's help, flows and replay on a Debian-shipped
capture, and ``record`` serving a real TUN device in a namespace."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from l3l4_pcap import read_packets
from l3l4_tun.testing import new_namespace
from support.capture import GOPACKET, follow_tcp, tshark_problems
from support.clients import python_tcp_clients

SCRIPT = Path(sys.executable).parent / "l3l4-pcap"  # the [project.scripts] entry point
HTTP = GOPACKET / "pcap" / "test_ethernet.pcap"


def run(*argv: str | Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *map(str, argv)], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("command", [[], ["record"], ["replay"], ["flows"]], ids=["main", "record", "replay", "flows"])
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: l3l4-pcap")
    for word in {
        "record": ["--rotate-size", "--tun", "--route"],
        "replay": ["--inbound", "--adopt", "--secret"],
        "flows": ["--directory", "--inbound"],
    }.get(command[0] if command else "", ["record", "replay", "flows"]):
        assert word in result.stdout


def test_flows_command(tmp_path: Path) -> None:
    result = run("flows", HTTP, "-d", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    request, response = follow_tcp(HTTP, 0)
    assert (tmp_path / "out" / "tcp-10.1.1.2.44644-10.1.1.1.80").read_bytes() == request
    assert (tmp_path / "out" / "tcp-10.1.1.1.80-10.1.1.2.44644").read_bytes() == response
    lines = result.stdout.splitlines()
    assert any(line.split() == ["tcp-10.1.1.2.44644-10.1.1.1.80", str(len(request))] for line in lines)
    assert any(line.split()[:3] == ["flow", "directions", "written"] and line.split()[-1] == "2" for line in lines)
    assert result.stderr == ""  # no progress bar: stderr is not a terminal


def test_replay_command_is_deterministic_with_progress_and_drops(tmp_path: Path) -> None:
    loopback = GOPACKET / "pcap" / "test_loopback.pcap"
    outputs = []
    for run_number in (1, 2):
        output = tmp_path / f"out{run_number}.pcapng"
        result = run("replay", loopback, "-i", "all", "--app", "echo", "-o", output, "--progress", "--linger", "2")
        assert result.returncode == 0, result.stderr
        outputs.append(output.read_bytes())
        assert "100.0%" in result.stderr and "24 packets" in result.stderr  # the progress bar
        rows = {
            line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1]
            for line in result.stdout.splitlines()
            if line.strip() and line.rsplit(None, 1)[-1].isdigit()
        }
        assert rows["packets read"] == "24" and rows["fed to the stack"] == "24"
        assert int(rows["drop: tcp_no_connection"]) > 0  # drops by reason, from stack.stats
    assert outputs[0] == outputs[1]
    assert tshark_problems(tmp_path / "out1.pcapng") == []
    # a pcap output and a bad selector
    assert run("replay", HTTP, "-i", "10.1.1.1:80", "--adopt", "-o", tmp_path / "out.pcap").returncode == 0
    assert [p.linktype for p in read_packets(tmp_path / "out.pcap")][:1] == [101]
    bad = run("replay", HTTP, "-i", "10.1.1.1:port")
    assert bad.returncode == 1 and "inbound selector" in bad.stderr
    missing = run("replay", tmp_path / "nothing.pcap")
    assert missing.returncode == 1 and "No such file" in missing.stderr


def test_record_command_serves_a_tun_device(tmp_path: Path) -> None:
    """``l3l4-pcap record`` in a namespace: it opens the TUN device, echoes a kernel
    client, rotates files, and on SIGTERM closes the flows and prints its summary."""
    output = tmp_path / "session.pcapng"
    size = 300_000
    with new_namespace() as namespace:
        recorder = namespace.popen(
            str(SCRIPT),
            "record",
            str(output),
            "--tun",
            "l3l4rec0",
            "--address",
            "192.0.2.1/24",
            "--route",
            "203.0.113.0/24",
            "--rotate-size",
            "100K",
            "--secret",
            "pcap-record-cli!",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert recorder.stderr is not None
            assert recorder.stderr.readline().startswith(b"recording l3l4rec0")
            client = python_tcp_clients(namespace, "203.0.113.5", 7, size, 1)
            out, err = client.communicate(timeout=60)
            assert client.returncode == 0, (out, err)
        finally:
            recorder.send_signal(signal.SIGTERM)
            out_bytes, stderr = recorder.communicate(timeout=30)
    stdout = out_bytes.decode()
    assert recorder.returncode == 0, stderr
    files = sorted(tmp_path.glob("session*.pcapng"))
    assert len(files) > 2  # rotated at 100 KiB
    for file in files:
        assert tshark_problems(file) == []
    assert [line for line in stdout.splitlines() if line.startswith("wrote ")] == [
        f"wrote {f}" for f in sorted(files, key=_index)
    ]
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), *map(str, files)], check=True)
    sent = hashlib.shake_256(b"0").digest(size)
    assert follow_tcp(merged, 0) == (sent, sent)
    counts = {
        line.rsplit(None, 1)[0]: int(line.rsplit(None, 1)[1])
        for line in stdout.splitlines()
        if line.strip() and line.rsplit(None, 1)[-1].isdigit()
    }
    assert counts["packets recorded"] == counts["packets written"] == sum(len(list(read_packets(f))) for f in files)
    assert counts["packets dropped by the recorder"] == 0 and counts["tcp_established"] == 1


def _index(path: Path) -> int:
    parts = path.name.split(".")
    return int(parts[1]) if len(parts) == 3 else 0
