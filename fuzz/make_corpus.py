"""Write the seed corpus of ``fuzz_l3_rx.py``: real conversations, recorded.

    uv run python fuzz/make_corpus.py             # in-memory conversations
    sudo .venv/bin/python fuzz/make_corpus.py --kernel   # and the Linux kernel's, over TUN

In memory, a second l3l4 stack is the peer; with ``--kernel`` the peers are the
kernel's own sockets and tools (``nc``, ``ping``) in a network namespace whose routes
lead into a TUN device that the stack under test serves (``l3l4_tun.testing``). Either
way every packet that reaches the stack is recorded with its time, as are the
application's calls, on the clock the harness replays (microseconds from 0). The stack
recording them has the harness's configuration and secret, so replaying an input
reproduces the conversation exactly: the same ISNs, the same answers.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_l3_rx import CORPUS, Record, configuration, encode
from support.inet import inet_checksum

from l3l4 import (
    Config,
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowOpened,
    FlowRequested,
    Output,
    Proto,
    Stack,
)

OPS = {"l4_tx": 0, "close": 1, "abort": 2, "accept": 3, "reject": 4, "consumed": 5}
Reaction = Callable[["Recording", Event], None]


class Recording:
    """The stack under test (the harness's configuration for ``flags``) and the input
    that replays what happened to it."""

    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.server: Stack[bytearray] = Stack(configuration(flags))
        self.records: list[Record] = []
        self.elapsed_us = 0
        self.recorded_us = 0
        self.seen: list[Flow] = []

    @property
    def now(self) -> float:
        return self.elapsed_us / 1_000_000

    def _dt(self) -> int:
        dt, self.recorded_us = self.elapsed_us - self.recorded_us, self.elapsed_us
        return dt

    def _track(self, out: Output[bytearray]) -> Output[bytearray]:
        for event in out.events:
            if isinstance(event, (FlowOpened, FlowRequested)) and event.flow not in self.seen:
                self.seen.append(event.flow)
        return out

    def deliver(self, packet: bytes) -> Output[bytearray]:
        self.records.append(Record(0, self._dt(), bytes(packet)))
        return self._track(self.server.l3_rx(packet, self.now))

    def poll(self) -> Output[bytearray]:
        self.records.append(Record(2, self._dt(), b""))
        return self._track(self.server.l4_poll(self.now))

    def call(self, op: str, flow: Flow, data: bytes = b"") -> Output[bytearray]:
        self.records.append(Record(3, self._dt(), bytes((OPS[op], self.seen.index(flow))) + data))
        server, now = self.server, self.now
        if op == "l4_tx":
            return self._track(server.l4_tx(flow, data, now))
        if op == "close":
            return self._track(server.close(flow, now))
        return self._track(server.accept(flow, now))

    def save(self, name: str) -> None:
        CORPUS.mkdir(exist_ok=True)
        (CORPUS / name).write_bytes(encode(self.flags, self.records))
        print(f"{name}: {len(self.records)} records")


# -- in memory ----------------------------------------------------------------------------------


def echo_then_close(recording: Recording, event: Event) -> list[Output[bytearray]]:
    """The application of the stack under test: accept what is requested, answer data
    with the first 3000 bytes of it reversed, close at the peer's end."""
    if isinstance(event, FlowRequested):
        return [recording.call("accept", event.flow)]
    if isinstance(event, DataReceived) and event.flow.proto is Proto.TCP:
        return [recording.call("l4_tx", event.flow, event.data[:3000][::-1])]
    if isinstance(event, DataReceived):
        return [recording.call("l4_tx", event.flow, event.data[::-1])]
    if isinstance(event, EndOfStream):
        return [recording.call("close", event.flow)]
    return []


def converse(
    recording: Recording, client: Stack[bytearray], start: list[bytearray], lose: int = 0, close: Flow | None = None
) -> None:
    """Carry packets both ways, 300 µs a hop, running both stacks' timers, until both
    are quiet; with ``lose``, every ``lose``-th packet toward the stack is lost. The
    client closes ``close`` once everything it queued has been acknowledged."""
    to_server, to_client = list(start), list[bytearray]()
    count = 0
    while to_server or to_client or client.next_deadline() is not None or recording.server.next_deadline() is not None:
        if not to_server and not to_client:
            deadlines = [d for d in (client.next_deadline(), recording.server.next_deadline()) if d is not None]
            step = int(min(deadlines) * 1_000_000) - recording.elapsed_us + 1
            if recording.elapsed_us + step > 300_000_000:
                return
            recording.elapsed_us += max(step, 0)
            to_server += client.l4_poll(recording.now).packets
            to_client += recording.poll().packets
            continue
        recording.elapsed_us += 300
        for packet in to_server:
            count += 1
            if lose and count % lose == 0:
                continue
            out = recording.deliver(bytes(packet))
            to_client += out.packets
            for event in out.events:
                for more in echo_then_close(recording, event):
                    to_client += more.packets
        to_server = []
        for packet in to_client:
            to_server += client.l3_rx(packet, recording.now).packets
        to_client = []
        if close is not None and close in client.flows() and client.flow_info(close).bytes_queued == 0:
            to_server += client.close(close, recording.now).packets
            close = None


def tcp(name: str, flags: int, local: str, remote: str, size: int, lose: int = 0, **client: Any) -> None:
    recording = Recording(flags)
    peer = Stack(Config(secret=b"fuzz-corpus-peer", **client))
    flow = Flow(Proto.TCP, ip_address(local), 40000, ip_address(remote), 80)
    start = peer.connect(flow, 0.0).packets
    start += peer.l4_tx(flow, bytes(range(256)) * (size // 256), 0.0).packets
    converse(recording, peer, start, lose, close=flow)
    recording.save(name)


def udp(name: str, flags: int, local: str, remote: str, sizes: list[int], mtu: int = 1500) -> None:
    recording = Recording(flags)
    peer = Stack(Config(secret=b"fuzz-corpus-peer", mtu=mtu))
    flow = Flow(Proto.UDP, ip_address(local), 5353, ip_address(remote), 53)
    peer.connect(flow, 0.0)
    packets = [p for size in sizes for p in peer.l4_tx(flow, bytes(size), 0.0).packets]
    converse(recording, peer, packets)
    recording.save(name)


def icmp4(src: str, dst: str, icmp_type: int, code: int, rest: bytes, body: bytes) -> bytes:
    message = bytearray(struct.pack("!BBH", icmp_type, code, 0) + rest + body)
    message[2:4] = struct.pack("!H", inet_checksum(bytes(message)))
    header = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(message), 1, 0, 64, 1, 0))
    header += ip_address(src).packed + ip_address(dst).packed
    header[10:12] = struct.pack("!H", inet_checksum(bytes(header)))
    return bytes(header + message)


def icmp6(src: str, dst: str, icmp_type: int, code: int, rest: bytes, body: bytes) -> bytes:
    message = bytearray(struct.pack("!BBH", icmp_type, code, 0) + rest + body)
    addresses = ip_address(src).packed + ip_address(dst).packed
    pseudo = addresses + struct.pack("!I3xB", len(message), 58)
    message[2:4] = struct.pack("!H", inet_checksum(pseudo + bytes(message)))
    return struct.pack("!IHBB", 6 << 28, len(message), 58, 64) + addresses + bytes(message)


def icmp_scenarios() -> None:
    recording = Recording(0)
    recording.deliver(icmp4("192.0.2.1", "203.0.113.9", 8, 0, b"\x12\x34\x00\x01", b"ping" * 14))
    recording.elapsed_us += 1000
    recording.deliver(icmp6("2001:db8::1", "2001:db8:9::9", 128, 0, b"\x12\x34\x00\x01", b"ping" * 14))
    # A UDP flow, then errors quoting what the stack sent on it.
    peer = Stack(Config(secret=b"fuzz-corpus-peer"))
    flow = Flow(Proto.UDP, ip_address("192.0.2.1"), 5353, ip_address("203.0.113.9"), 53)
    peer.connect(flow, 0.0)
    [query] = peer.l4_tx(flow, b"query", 0.0).packets
    [answer] = recording.call("l4_tx", recording.deliver(bytes(query)).events[0].flow, b"answer").packets
    quote = bytes(answer)[:28]
    recording.elapsed_us += 1000
    recording.deliver(icmp4("198.51.100.1", "203.0.113.9", 3, 4, struct.pack("!HH", 0, 576), quote))
    recording.deliver(icmp4("198.51.100.1", "203.0.113.9", 3, 3, bytes(4), quote))
    recording.deliver(icmp4("198.51.100.1", "203.0.113.9", 11, 0, bytes(4), quote))
    recording.save("icmp")


def syn_flood(name: str, flags: int, count: int) -> None:
    recording = Recording(flags)
    peer = Stack(Config(secret=b"fuzz-corpus-peer", max_tcp_flows=count))
    for port in range(count):
        flow = Flow(Proto.TCP, ip_address("198.18.0.7"), 10_000 + port, ip_address("203.0.113.80"), 443)
        recording.elapsed_us += 50
        recording.deliver(bytes(peer.connect(flow, recording.now).packets[0]))
    recording.save(name)


def in_memory() -> None:
    tcp("tcp4-transfer", 0, "192.0.2.1", "203.0.113.80", 8_000)
    tcp("tcp6-transfer-mtu1280", 16, "2001:db8::1", "2001:db8:ffff::80", 8_000)
    tcp("tcp4-syn-cookie", 2, "192.0.2.1", "203.0.113.80", 8_000)
    tcp("tcp4-manual-accept", 1, "192.0.2.1", "203.0.113.80", 4_000)
    tcp("tcp4-lossy-sack", 0, "192.0.2.1", "203.0.113.80", 24_000, lose=7)
    tcp("tcp4-no-options", 4, "192.0.2.1", "203.0.113.80", 6_000, tcp_timestamps=False, tcp_sack=False, tcp_window_scaling=False)
    udp("udp4", 0, "192.0.2.1", "203.0.113.53", [1, 100, 1200])
    udp("udp6-fragmented", 0, "2001:db8::1", "2001:db8::53", [3000], mtu=1280)
    udp("udp4-fragmented", 4, "192.0.2.1", "203.0.113.53", [2000], mtu=576)
    icmp_scenarios()
    syn_flood("syn-flood-small-caps", 4, 12)


# -- the kernel, over TUN -------------------------------------------------------------------------


class KernelRecorder:
    """A ``Recorder`` for the TUN loop: inbound packets become kind-0 records."""

    def __init__(self, recording: Recording, origin_ns: int) -> None:
        self.recording = recording
        self.origin_ns = origin_ns

    def record(self, packet: bytes | bytearray | memoryview, outbound: bool, now: float) -> None:
        if not outbound:
            rec = self.recording
            rec.elapsed_us = round(now * 1_000_000)
            rec.records.append(Record(0, rec._dt(), bytes(packet)))


def kernel(name: str, flags: int, commands: list[list[str]]) -> None:
    """Serve the kernel's ``commands`` with the echo application, recording what arrives."""
    from l3l4.apps import Echo
    from l3l4_tun import Loop
    from l3l4_tun.testing import serve_until_exit, tun_namespace

    recording = Recording(flags)
    origin = time.monotonic_ns()

    def clock() -> float:
        # Microseconds from 0, as the harness counts them: replays see the same floats.
        return (time.monotonic_ns() - origin) // 1000 / 1_000_000

    with tun_namespace(offload=False) as (namespace, devices):
        loop = Loop(recording.server, devices, Echo(), recorder=KernelRecorder(recording, origin), clock=clock)
        processes = [namespace.popen(*command, stdout=-3, stderr=-3) for command in commands]
        serve_until_exit(loop, processes, 30.0)
    recording.save(name)


def from_kernel() -> None:
    payload = "printf 'GET / HTTP/1.0\\r\\n\\r\\n%.0s' $(seq 1 200)"
    kernel("kernel-tcp4-nc", 0, [["sh", "-c", f"{payload} | nc -q 1 203.0.113.7 7"]])
    kernel("kernel-tcp6-nc", 0, [["sh", "-c", f"{payload} | nc -q 1 2001:db8:ffff::7 7"]])
    kernel("kernel-udp4-nc", 0, [["sh", "-c", "printf 'hello over udp' | nc -u -q 1 203.0.113.7 53"]])
    kernel("kernel-udp-fragmented", 0, [[sys.executable, "-c", KERNEL_UDP]])
    kernel("kernel-icmp-echo", 0, [[sys.executable, "-c", KERNEL_PING]])


# Datagrams over the MTU, which the kernel fragments (both IP versions), and echo
# requests from a raw socket (there may be no ping(8) on the machine).
KERNEL_UDP = """
import socket
for family, host in ((socket.AF_INET, "203.0.113.7"), (socket.AF_INET6, "2001:db8:ffff::7")):
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.sendto(bytes(range(256)) * 16, (host, 53))
"""
KERNEL_PING = """
import socket, struct, time
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total & 0xFFFF) + (total >> 16)
    return ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF
with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
    for seq in range(2):
        body = struct.pack("!HH", 0x4242, seq) + b"l3l4" * 14
        s.sendto(struct.pack("!BBH", 8, 0, checksum(struct.pack("!BBH", 8, 0, 0) + body)) + body, ("203.0.113.7", 0))
        time.sleep(0.05)
with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as s:
    s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4242, 0) + b"l3l4" * 14, ("2001:db8:ffff::7", 0))
    time.sleep(0.05)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", action="store_true", help="also record the Linux kernel over TUN (root)")
    args = parser.parse_args()
    in_memory()
    if args.kernel:
        from_kernel()


if __name__ == "__main__":
    main()
