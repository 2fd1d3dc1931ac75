"""Fuzz ``Stack.l3_rx`` with whole conversations, checking invariants after every call.

    uv run --with atheris python fuzz/fuzz_l3_rx.py fuzz/corpus -atheris_runs=200000
    uv run python fuzz/fuzz_l3_rx.py --iterations 100000 --seed 1

With atheris installed (it is not a dependency of the workspace: ``--with atheris``
adds it for one run) the first form is coverage-guided libFuzzer; any libFuzzer option
passes through. ``--iterations`` (or atheris missing) runs the plain-random mode:
the corpus inputs, mutated by a seeded RNG, reproducible from ``--seed``. A failing
input is written to ``fuzz/crashes/`` and replays with ``--replay FILE``; libFuzzer
keeps the inputs it finds in ``fuzz/work/`` (neither is committed).

An input is a script for one stack. Its first byte picks the configuration (bit 0:
manual accept; 1: SYN cookies for every SYN; 2: small caps; 3: checksums trusted;
4: MTU 1280). Then records follow, each ``kind (1) | dt in µs (4) | length (2) | data``:

* kind 0: ``l3_rx(data)``; kind 1: the same after repairing the IP and transport
  checksums and lengths (so that mutations get past them);
* kind 2: ``l4_poll``;
* kind 3: an application call on a flow seen so far: ``data[0]`` picks
  ``l4_tx(data[2:])``, ``close``, ``abort``, ``accept``, ``reject`` or ``consumed``,
  ``data[1]`` the flow.

Time starts at 0 and moves by each record's dt, so a recorded conversation replays
exactly (the stack's ISNs and timestamps follow the same clock and secret).

Invariants, after every call: it raised nothing but ``L3L4Error`` for a call the API
refuses; every packet is counted once in ``rx_packets`` and dropped at most once;
counters agree with the events; events are in order for their flow (nothing before
``FlowOpened`` or after ``FlowClosed``, one ``EndOfStream``); a TCP connection's RCV.NXT
has moved by exactly the bytes it delivered (plus its FIN): nothing delivered twice or
skipped; ``stack.usage()`` is within every cap; every packet sent is well formed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import random
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The independent RFC 1071 checksum the tests use lives with them.
sys.path.insert(0, str(HERE.parent / "tests"))
from support.inet import inet_checksum, inet_sum  # noqa: E402

CORPUS = HERE / "corpus"
CRASHES = HERE / "crashes"
WORK = HERE / "work"
SECRET = b"l3l4-fuzz-secret"
RECORD = struct.Struct("!BIH")
MASK = 0xFFFFFFFF


@dataclass
class Record:
    kind: int
    dt_us: int
    data: bytes


def decode(raw: bytes) -> tuple[int, list[Record]]:
    """An input as (configuration byte, records); a truncated last record is ignored."""
    if not raw:
        return 0, []
    records = []
    offset = 1
    while offset + RECORD.size <= len(raw):
        kind, dt_us, length = RECORD.unpack_from(raw, offset)
        offset += RECORD.size
        records.append(Record(kind % 4, dt_us, raw[offset : offset + length]))
        offset += length
    return raw[0], records


def encode(flags: int, records: Sequence[Record]) -> bytes:
    out = bytearray((flags & 0xFF,))
    for record in records:
        data = record.data[:0xFFFF]
        out += RECORD.pack(record.kind, record.dt_us & MASK, len(data)) + data
    return bytes(out)


# -- offsets and checksums, computed here, independently of l3l4 -----------------------------


def l4_offset(packet: bytes) -> tuple[int, int, bool] | None:
    """(offset of the transport header, protocol, is a fragment), as the header says."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        fragment = int.from_bytes(packet[6:8], "big") & 0x3FFF != 0
        return (packet[0] & 0x0F) * 4, packet[9], fragment
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        proto, offset, fragment = packet[6], 40, False
        for _ in range(8):
            if proto not in (0, 43, 44, 60) or offset + 8 > len(packet):
                break
            if proto == 44:
                fragment = True
                proto, offset = packet[offset], offset + 8
            else:
                proto, offset = packet[offset], offset + (packet[offset + 1] + 1) * 8
        return offset, proto, fragment
    return None


def pseudo_header(packet: bytes, proto: int, length: int) -> bytes:
    if packet[0] >> 4 == 4:
        return packet[12:20] + struct.pack("!BBH", 0, proto, length)
    return packet[8:40] + struct.pack("!I3xB", length, proto)


def repair(data: bytes) -> bytes:
    """Make the IP length field, the IPv4 header checksum and the transport checksum
    right for the bytes as they are (a no-op for what cannot be parsed that far)."""
    packet = bytearray(data)
    where = l4_offset(bytes(packet))
    if where is None:
        return data
    l4, proto, fragment = where
    if packet[0] >> 4 == 4:
        packet[2:4] = min(len(packet), 0xFFFF).to_bytes(2, "big")
        if 20 <= l4 <= len(packet):
            packet[10:12] = b"\0\0"
            packet[10:12] = inet_checksum(bytes(packet[:l4])).to_bytes(2, "big")
    else:
        packet[4:6] = min(len(packet) - 40, 0xFFFF).to_bytes(2, "big")
    field = {6: 16, 17: 6, 1: 2, 58: 2}.get(proto)
    if fragment or field is None or l4 + field + 2 > len(packet):
        return bytes(packet)
    segment = packet[l4:]
    if proto == 17:
        segment[4:6] = len(segment).to_bytes(2, "big")
    segment[field : field + 2] = b"\0\0"
    pseudo = b"" if proto == 1 else pseudo_header(bytes(packet), proto, len(segment))
    value = inet_checksum(pseudo + bytes(segment))
    segment[field : field + 2] = (value or (0xFFFF if proto == 17 else 0)).to_bytes(2, "big")
    return bytes(packet[:l4] + segment)


def check_well_formed(packet: bytes) -> None:
    """A packet the stack sent: its lengths and checksums are right."""
    version = packet[0] >> 4
    assert version in (4, 6), "sent a packet of no IP version"
    if version == 4:
        assert int.from_bytes(packet[2:4], "big") == len(packet), "IPv4 total length"
        assert inet_sum(packet[: (packet[0] & 0x0F) * 4]) == 0xFFFF, "IPv4 header checksum"
    else:
        assert int.from_bytes(packet[4:6], "big") + 40 == len(packet), "IPv6 payload length"
    where = l4_offset(packet)
    assert where is not None
    l4, proto, fragment = where
    if fragment:
        return
    segment = packet[l4:]
    pseudo = b"" if proto == 1 else pseudo_header(packet, proto, len(segment))
    assert inet_sum(pseudo + segment) == 0xFFFF, f"protocol {proto} checksum"


# -- one input -------------------------------------------------------------------------------


def configuration(flags: int) -> Any:
    """The stack's ``Config`` for an input's first byte."""
    from dataclasses import replace

    from l3l4 import Config

    config = Config(
        secret=SECRET,
        accept="manual" if flags & 1 else "auto",
        tcp_syn_cookie_threshold=0 if flags & 2 else 256,
        rx_checksum_verified=bool(flags & 8),
        mtu=1280 if flags & 16 else 1500,
    )
    if not flags & 4:
        return config
    return replace(
        config, max_tcp_flows=8, max_tcp_half_open=4, max_time_wait=4, max_udp_flows=8, max_reassembly_datagrams=4,
        max_fragments_per_datagram=16, max_reassembly_bytes=64 * 1024, tcp_max_ooo_ranges=4, tcp_max_sack_ranges=8,
        max_tcp_buffer_bytes=64 * 1024, tcp_send_buffer=16 * 1024, tcp_receive_buffer=16 * 1024,
    )  # fmt: skip


class Tracker:
    """Runs one input against a fresh stack and checks the invariants as it goes."""

    def __init__(self, flags: int) -> None:
        from l3l4 import Stack

        self.config = configuration(flags)
        self.stack: Any = Stack(self.config)
        self.now = 0.0
        self.elapsed_us = 0
        self.fed = 0
        self.fed_bytes = 0
        self.opened: set[Any] = set()
        self.requested: set[Any] = set()
        self.seen: list[Any] = []
        self.delivered: dict[Any, int] = {}
        self.eof: set[Any] = set()
        self.base: dict[Any, int] = {}
        self.announced = 0
        self.closed = 0
        self.data_bytes = 0

    def run(self, records: Sequence[Record]) -> None:
        from l3l4 import L3L4Error

        for record in records:
            self.elapsed_us += record.dt_us
            self.now = self.elapsed_us / 1_000_000
            stack = self.stack
            if record.kind in (0, 1):
                packet = record.data if record.kind == 0 else repair(record.data)
                dropped = stack.stats.dropped
                out = stack.l3_rx(packet, self.now)
                self.fed += 1
                self.fed_bytes += len(packet)
                assert stack.stats.dropped - dropped <= 1, "one packet counted as two drops"
                self.take(out)
            elif record.kind == 2:
                self.take(stack.l4_poll(self.now))
            elif self.seen and record.data:
                call = self.call(record.data)
                try:
                    out = call()
                except L3L4Error:
                    continue
                self.take(out)

    def call(self, data: bytes) -> Callable[[], Any]:
        stack, now = self.stack, self.now
        flow = self.seen[data[1 % len(data)] % len(self.seen)]
        op = data[0] % 6
        if op == 0:
            return lambda: stack.l4_tx(flow, data[2:], now)
        if op == 1:
            return lambda: stack.close(flow, now)
        if op == 2:
            return lambda: stack.abort(flow, now)
        if op == 3:
            return lambda: stack.accept(flow, now)
        if op == 4:
            return lambda: stack.reject(flow, now)
        return lambda: stack.consumed(flow, int.from_bytes(data[2:4], "big"), now)

    def take(self, out: Any) -> None:
        from l3l4 import DataReceived, EndOfStream, ErrorReceived, FlowClosed, FlowOpened, FlowRequested, Proto

        after_open: dict[Any, int] = {}
        for event in out.events:
            flow = event.flow
            if isinstance(event, FlowOpened):
                assert flow not in self.opened, f"{flow} opened twice"
                self.opened.add(flow)
                self.requested.discard(flow)
                self.announced += 1
                self.delivered[flow] = 0
                after_open[flow] = 0
                if flow not in self.seen:
                    self.seen.append(flow)
            elif isinstance(event, FlowRequested):
                assert flow not in self.opened and flow not in self.requested
                self.requested.add(flow)
                self.seen.append(flow)
            elif isinstance(event, DataReceived):
                assert flow in self.opened and flow not in self.eof, f"data outside the life of {flow}"
                self.delivered[flow] += len(event.data)
                self.data_bytes += len(event.data)
                if flow in after_open:
                    after_open[flow] += len(event.data)
            elif isinstance(event, EndOfStream):
                assert flow in self.opened and flow not in self.eof, f"a second end of {flow}"
                self.eof.add(flow)
                if flow in after_open:
                    after_open[flow] += 1
            elif isinstance(event, FlowClosed):
                assert flow in self.opened or flow in self.requested, f"{flow} closed unopened"
                self.opened.discard(flow)
                self.requested.discard(flow)
                self.eof.discard(flow)
                self.base.pop(flow, None)
                self.closed += 1
            elif isinstance(event, ErrorReceived):
                assert flow in self.opened or flow.proto is Proto.TCP
            else:
                assert flow in self.opened, f"{event} for a flow not open"
        for packet in out.packets:
            check_well_formed(bytes(packet))
        self.check(after_open)

    def check(self, after_open: dict[Any, int]) -> None:
        from l3l4 import Proto

        stack, config = self.stack, self.config
        stats = stack.stats
        assert stats.rx_packets == self.fed and stats.rx_bytes == self.fed_bytes
        assert stats.flows_closed == self.closed, "flows_closed differs from the FlowClosed events"
        assert stats.flows_opened == self.announced, "flows_opened differs from the FlowOpened events"
        usage = stack.usage()
        assert usage.tcp_flows <= config.max_tcp_flows and usage.tcp_half_open <= config.max_tcp_half_open
        assert usage.tcp_time_wait <= config.max_time_wait and usage.udp_flows <= config.max_udp_flows
        assert 0 <= usage.tcp_buffer_bytes <= config.max_tcp_buffer_bytes
        assert usage.reassembly_datagrams <= config.max_reassembly_datagrams
        assert usage.reassembly_bytes <= config.max_reassembly_bytes
        assert usage.timers <= 2 * (usage.tcp_flows + usage.tcp_time_wait) + 1024
        for flow in self.opened:
            if flow.proto is not Proto.TCP:
                continue
            moved = self.delivered[flow] + (1 if flow in self.eof else 0)
            rcv_nxt = stack.flow_info(flow).rcv_nxt
            if flow in after_open:
                self.base[flow] = (rcv_nxt - after_open[flow]) & MASK
            assert rcv_nxt == (self.base[flow] + moved) & MASK, f"RCV.NXT of {flow} moved by other than what it delivered"


@dataclass
class Outcome:
    packets: int
    data_bytes: int
    flows: int


def run_one(raw: bytes) -> Outcome:
    """Run one input; raise (AssertionError or anything else) if an invariant breaks."""
    flags, records = decode(raw)
    tracker = Tracker(flags)
    tracker.run(records)
    return Outcome(tracker.fed, tracker.data_bytes, tracker.announced)


# -- plain-random mode -------------------------------------------------------------------------

INTERESTING = (0, 1, 2, 4, 5, 6, 7, 8, 0x0F, 0x10, 0x11, 0x14, 0x18, 20, 40, 0x3A, 0x3B, 0x40, 0x45, 0x60, 0x7F, 0x80, 0xFF)


def mutate_packet(data: bytes, rng: random.Random) -> bytes:
    packet = bytearray(data)
    where = l4_offset(data)
    header_fields = [0, 2, 3, 6, 8, 9] if data[:1] and data[0] >> 4 == 4 else [0, 4, 6, 7, 40, 41]
    if where is not None:
        l4 = where[0]
        header_fields += [l4 + n for n in (0, 2, 4, 6, 8, 12, 13, 14, 16, 18, 20, 21, 22, 24, 28)]
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(7)
        if choice == 0 and packet:
            packet[rng.randrange(len(packet))] ^= 1 << rng.randrange(8)
        elif choice == 1 and packet:
            offset = rng.choice(header_fields) % len(packet)
            packet[offset] = rng.choice(INTERESTING)
        elif choice == 2 and len(packet) > 2:
            offset = rng.choice(header_fields) % (len(packet) - 1)
            packet[offset : offset + 2] = rng.getrandbits(16).to_bytes(2, "big")
        elif choice == 3 and packet:
            del packet[rng.randrange(len(packet)) :]
        elif choice == 4:
            packet += rng.randbytes(rng.randint(1, 64))
        elif choice == 5 and packet:
            at = rng.randrange(len(packet))
            packet[at:at] = rng.randbytes(rng.randint(1, 16))
        elif choice == 6 and len(packet) > 8:
            offset = rng.choice(header_fields) % (len(packet) - 4)
            value = int.from_bytes(packet[offset : offset + 4], "big") + rng.randint(-70_000, 70_000)
            packet[offset : offset + 4] = (value & MASK).to_bytes(4, "big")
    return bytes(packet)


def mutate(raw: bytes, corpus: Sequence[bytes], rng: random.Random) -> bytes:
    flags, records = decode(raw)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(10)
        packets = [r for r in records if r.kind in (0, 1)]
        if choice <= 3 and packets:
            record = rng.choice(packets)
            record.data = mutate_packet(record.data, rng)
            record.kind = rng.choice((0, 1, 1))
        elif choice == 4 and records:
            rng.choice(records).dt_us = rng.choice((0, 1000, 200_000, 3_000_000, 65_000_000, 130_000_000))
        elif choice == 5 and records:
            records.insert(rng.randrange(len(records) + 1), Record(**vars(rng.choice(records))))
        elif choice == 6 and len(records) > 1:
            del records[rng.randrange(len(records))]
        elif choice == 7 and len(records) > 1:
            i, j = rng.randrange(len(records)), rng.randrange(len(records))
            records[i], records[j] = records[j], records[i]
        elif choice == 8 and corpus:
            _, others = decode(rng.choice(corpus))
            if others:
                records.insert(rng.randrange(len(records) + 1), rng.choice(others))
        elif choice == 9:
            if rng.random() < 0.5:
                flags ^= 1 << rng.randrange(5)
            else:
                call = bytes((rng.randrange(6), rng.randrange(256))) + rng.randbytes(rng.choice((0, 2, 100, 3000)))
                records.insert(rng.randrange(len(records) + 1), Record(rng.choice((2, 3)), rng.choice((0, 50_000)), call))
    return encode(flags, records)


def load_corpus(paths: Sequence[Path]) -> list[bytes]:
    files = [p for path in paths for p in (sorted(path.iterdir()) if path.is_dir() else [path]) if p.is_file()]
    return [p.read_bytes() for p in files]


def save_crash(raw: bytes) -> Path:
    CRASHES.mkdir(exist_ok=True)
    path = CRASHES / f"crash-{hashlib.sha1(raw).hexdigest()}"
    path.write_bytes(raw)
    return path


def random_mode(iterations: int, seed: int, corpus: list[bytes]) -> int:
    rng = random.Random(seed)
    packets = data = 0
    for iteration in range(iterations):
        raw = mutate(rng.choice(corpus), corpus, rng) if corpus else rng.randbytes(rng.randint(1, 2000))
        try:
            outcome = run_one(raw)
        except Exception:
            path = save_crash(raw)
            print(f"iteration {iteration}: invariant broken or crash; input saved to {path}", file=sys.stderr)
            raise
        packets += outcome.packets
        data += outcome.data_bytes
    print(f"{iterations} inputs, {packets} packets fed, {data} bytes delivered, 0 failures (seed {seed})")
    return 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, help="plain-random mode: this many mutated inputs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replay", type=Path, help="run one input (a crash file) and report")
    parser.add_argument("paths", nargs="*", type=Path, help="corpus files or directories (default fuzz/corpus)")
    args, passthrough = parser.parse_known_args(argv[1:])
    if args.replay is not None:
        outcome = run_one(args.replay.read_bytes())
        print(f"{args.replay}: {outcome}")
        return 0
    corpus = load_corpus(args.paths or [CORPUS])
    atheris: Any = None
    if args.iterations is None:
        try:
            atheris = importlib.import_module("atheris")
        except ImportError:
            print("atheris is not installed: plain-random mode (uv run --with atheris ... for libFuzzer)", file=sys.stderr)
    if atheris is None:
        return random_mode(args.iterations or 10_000, args.seed, corpus)
    with atheris.instrument_imports():
        importlib.import_module("l3l4")
    # libFuzzer adds what it finds to the first directory: fuzz/work, not the seeds.
    WORK.mkdir(exist_ok=True)
    CRASHES.mkdir(exist_ok=True)
    seeds = [str(path) for path in args.paths or [CORPUS]]
    options = [f"-artifact_prefix={CRASHES}/", *passthrough]
    atheris.Setup([argv[0], *options, str(WORK), *seeds], lambda raw: run_one(bytes(raw)))
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
