"""Capture-file IO: l3l4-pcap (dpkt's block codecs) against python-pcapng and dpkt's own
readers, with a hand-written struct encoder as the floor; then the recorder's cost on
the stack's path and a replay's packet rate, to see whether file IO is the bottleneck.

    uv run python benchmarks/pcap_io.py [PACKETS]

Prints packets per second (best of 3), for PACKETS packets (default 50000) of mixed
sizes (60, 576 and 1500 bytes), pcapng with a direction flag on every packet.
"""

from __future__ import annotations

import io
import platform
import struct
import sys
import time
import warnings
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from tempfile import TemporaryDirectory

import dpkt  # type: ignore[import-untyped]
import dpkt.pcap  # type: ignore[import-untyped]
import dpkt.pcapng  # type: ignore[import-untyped]
import pcapng  # type: ignore[import-untyped]
from l3l4 import Config, Flow, Proto, Stack
from l3l4_pcap import CaptureReader, CaptureWriter, Recorder, replay

SIZES = (60, 576, 1500)


def packets(count: int) -> list[bytes]:
    """Real UDP packets from a stack, in three sizes."""
    stack = Stack(Config(secret=b"pcap-benchmark!!"))
    flow = Flow(Proto.UDP, ip_address("192.0.2.1"), 40000, ip_address("198.51.100.1"), 7777)
    stack.connect(flow, 0.0)
    made = [bytes(stack.l4_tx(flow, bytes(size - 28), 0.0).packets[0]) for size in SIZES]
    return [made[index % 3] for index in range(count)]


def best(function: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


# -- writers ----------------------------------------------------------------------------


def write_ours(data: list[bytes], format: str) -> bytes:
    buffer = io.BytesIO()
    writer = CaptureWriter(buffer, format)  # type: ignore[arg-type]
    for index, packet in enumerate(data):
        writer.write(packet, index * 1e-6, outbound=bool(index & 1) if format == "pcapng" else None)
    return buffer.getvalue()


def write_python_pcapng(data: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    shb = pcapng.blocks.SectionHeader()
    shb.new_member(pcapng.blocks.InterfaceDescription, link_type=101, options={"if_tsresol": b"\x09"})
    writer = pcapng.FileWriter(buffer, shb)
    for index, packet in enumerate(data):
        block = shb.new_member(pcapng.blocks.EnhancedPacket)
        ticks = index * 1000
        block.timestamp_high, block.timestamp_low = ticks >> 32, ticks & 0xFFFFFFFF
        block.packet_data = packet
        block.options["epb_flags"] = 2 if index & 1 else 1
        writer.write_block(block)
    return buffer.getvalue()


_EPB = struct.Struct("<IIIIIII")
_FLAGS = struct.Struct("<HHIHHI")


def write_struct(data: list[bytes]) -> bytes:
    """The floor: an EPB per packet with struct, nothing else."""
    parts = []
    for index, packet in enumerate(data):
        ticks = index * 1000
        size = len(packet)
        pad = -size & 3
        total = 28 + size + pad + 16
        parts += [_EPB.pack(6, total, 0, ticks >> 32, ticks & 0xFFFFFFFF, size, size), packet, bytes(pad)]
        parts.append(_FLAGS.pack(2, 4, 2 if index & 1 else 1, 0, 0, total))
    return b"".join(parts)


# -- readers ----------------------------------------------------------------------------


def read_ours(blob: bytes) -> int:
    with CaptureReader(io.BytesIO(blob)) as reader:
        return sum(1 for packet in reader if packet.direction is not None or reader.format == "pcap")


def read_python_pcapng(blob: bytes) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sum(
            1
            for block in pcapng.FileScanner(io.BytesIO(blob))
            if isinstance(block, pcapng.blocks.EnhancedPacket) and block.options.get("epb_flags") is not None
        )


def read_dpkt(blob: bytes) -> int:
    """dpkt's own readers: first interface only, no flags, float timestamps."""
    reader = (
        dpkt.pcapng.Reader(io.BytesIO(blob)) if blob[:4] == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(io.BytesIO(blob))
    )
    return sum(1 for _ in reader)


# -- the stack's side -----------------------------------------------------------------


def recorder_call(data: list[bytes], directory: Path) -> tuple[float, float]:
    """(µs per record() call, end-to-end packets/s through the writer thread)."""
    recorder = Recorder(directory / "bench.pcapng", queue_packets=len(data) + 1, queue_bytes=1 << 30)
    start = time.perf_counter()
    for index, packet in enumerate(data):
        recorder.record(packet, bool(index & 1), index * 1e-6)
    called = time.perf_counter() - start
    recorder.flush()
    total = time.perf_counter() - start
    recorder.close()
    assert recorder.statistics().written == len(data)
    return called / len(data) * 1e6, len(data) / total


def replay_rate(blob: bytes, count: int) -> float:
    """Packets/s of a replay of UDP datagrams through a stack (reader + stack)."""
    stack = Stack(Config(secret=b"pcap-benchmark!!", max_udp_flows=16))
    start = time.perf_counter()
    replay(io.BytesIO(blob), stack, "all")
    return count / (time.perf_counter() - start)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    data = packets(count)
    print(
        f"{count} packets of {'/'.join(map(str, SIZES))} bytes; Python {platform.python_version()}, "
        f"dpkt {dpkt.__version__}, python-pcapng {getattr(pcapng, '__version__', '2.x')}"
    )
    rows: list[tuple[str, str, float]] = []
    ours_ng = write_ours(data, "pcapng")
    ours_pcap = write_ours(data, "pcap")
    theirs_ng = write_python_pcapng(data)
    rows.append(("write", "l3l4-pcap pcapng (dpkt blocks)", count / best(lambda: write_ours(data, "pcapng"))))
    rows.append(("write", "l3l4-pcap pcap (dpkt headers)", count / best(lambda: write_ours(data, "pcap"))))
    rows.append(("write", "python-pcapng pcapng", count / best(lambda: write_python_pcapng(data), runs=1)))
    rows.append(("write", "struct by hand, pcapng (floor)", count / best(lambda: write_struct(data))))
    rows.append(("read", "l3l4-pcap pcapng", count / best(lambda: read_ours(ours_ng))))
    rows.append(("read", "l3l4-pcap pcap", count / best(lambda: read_ours(ours_pcap))))
    rows.append(("read", "python-pcapng pcapng", count / best(lambda: read_python_pcapng(theirs_ng), runs=1)))
    rows.append(("read", "dpkt.pcapng.Reader (no flags)", count / best(lambda: read_dpkt(ours_ng))))
    rows.append(("read", "dpkt.pcap.Reader", count / best(lambda: read_dpkt(ours_pcap))))
    with TemporaryDirectory() as directory:
        call_us, through = recorder_call(data, Path(directory))
    rows.append(("record", "Recorder, writer thread, end to end", through))
    rows.append(("replay", "replay(): reader + Stack.l3_rx (UDP)", replay_rate(ours_ng, count)))
    width = max(len(name) for _, name, _ in rows)
    print(f"{'what':<7} {'implementation':<{width}} {'packets/s':>12}")
    for what, name, rate in rows:
        print(f"{what:<7} {name:<{width}} {rate:>12,.0f}")
    print(f"Recorder.record() on the stack's path: {call_us:.2f} µs per packet")


if __name__ == "__main__":
    main()
