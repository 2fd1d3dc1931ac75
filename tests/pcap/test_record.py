"""Recording real sessions: l3l4 on a TUN device with the kernel as the client, and two
stacks over the impaired in-memory link. tshark must find nothing wrong in the files
and its own TCP reassembly must give back exactly the bytes the applications sent."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
import warnings
from ipaddress import ip_address
from pathlib import Path

import pcapng  # type: ignore[import-untyped]
import pytest
from l3l4 import Config, DataReceived, EndOfStream, Event, Flow, Proto, Stack
from l3l4.apps import Echo
from l3l4_pcap import Direction, Recorder, read_packets
from l3l4_pcap.record import LinkRecorder
from l3l4_tun import Loop
from l3l4_tun.testing import serve_until_exit, tun_namespace
from support.capture import follow_tcp, tshark, tshark_fields, tshark_problems
from support.clients import python_tcp_clients, udp_client
from support.link import Impairment, Link

SECRET = b"pcap-record-test"


@pytest.mark.parametrize(
    ("host", "offload"),
    [("203.0.113.7", True), ("2001:db8:7::7", True), ("198.51.100.7", False)],
    ids=["ipv4-offload", "ipv6-offload", "ipv4-plain"],
)
def test_tun_echo_session_recorded_for_tshark(tmp_path: Path, host: str, offload: bool) -> None:
    size = 400_000
    path = tmp_path / "session.pcapng"
    with tun_namespace(offload=offload) as (namespace, devices):
        recorder = Recorder(path)
        stack = Stack(Config(secret=SECRET, tcp_tso_packet=65535 if offload else 0, tcp_checksum_offload=offload))
        loop = Loop(stack, devices, Echo(), recorder=recorder)
        tcp = python_tcp_clients(namespace, host, 7, size, 1)
        udp = udp_client(namespace, host, 53000, [1, 1400, 4000])
        serve_until_exit(loop, [tcp, udp], 60.0)
        for client in (tcp, udp):
            out, err = client.communicate()
            assert client.returncode == 0, (out, err)
        loop.run_until(lambda: not stack.flows(), 2.0)  # the last ACKs of the close
        recorder.close()
    statistics = recorder.statistics()
    assert statistics.dropped == 0 and statistics.written == statistics.recorded > 20
    assert tshark_problems(path) == []
    # tshark's reassembly of the TCP stream: what the client sent, and the echo.
    sent = hashlib.shake_256(b"0").digest(size)
    assert follow_tcp(path, 0) == (sent, sent)
    # every packet has its direction; the kernel's all came in, ours went out.
    packets = list(read_packets(path))
    assert len(packets) == statistics.written
    kernel = ip_address("192.0.2.1" if ":" not in host else "2001:db8::1")
    for packet in packets:
        ip = packet.ip()
        assert ip is not None
        source = ip_address(bytes(ip[12:16]) if ip[0] >> 4 == 4 else bytes(ip[8:24]))
        expected = Direction.INBOUND if source == kernel else Direction.OUTBOUND
        if source in (kernel, ip_address(host)):
            assert packet.direction is expected
    # offloads on, the kernel's segments come in up to 64 KiB and are recorded whole.
    if offload:
        assert max(len(p.data) for p in packets if p.direction is Direction.INBOUND) > 1500
        # and their checksums were partial (left to the "device"): completed for tshark.
        assert statistics.checksums_completed > 0
    else:
        assert statistics.checksums_completed == 0


def test_memory_link_session_recorded_as_two_interfaces(tmp_path: Path) -> None:
    """Two stacks over a lossy, reordering, duplicating link, each end recorded as its
    own interface of one file: what each stack sent and what reached it."""
    path = tmp_path / "memory.pcapng"
    recorder = Recorder(path, interface="a")
    views: dict[str, Recorder | LinkRecorder] = {"a": recorder, "b": recorder.link("b")}

    class RecordedLink(Link):
        def send(self, sender: str, packets: list[bytearray]) -> None:
            for packet in packets:
                views[sender].record(packet, True, self.now)
            super().send(sender, packets)

    class RecordedStack(Stack[bytearray]):
        view = "a"

        def l3_rx(self, packet: bytes | bytearray | memoryview, now: float, checksum_verified: bool = False) -> object:  # type: ignore[override]
            views[self.view].record(packet, False, now)
            return super().l3_rx(packet, now, checksum_verified)

    a, b = RecordedStack(Config(secret=SECRET)), RecordedStack(Config(secret=b"pcap-record-peer"))
    b.view = "b"
    upload = hashlib.shake_256(b"upload").digest(200_000)
    reply = hashlib.shake_256(b"reply").digest(50_000)
    received = {"a": bytearray(), "b": bytearray()}

    def handler(side: str, event: Event, link: Link) -> None:
        if isinstance(event, DataReceived):
            received[side] += event.data
        elif isinstance(event, EndOfStream) and side == "b":
            link.call("b", link.b.l4_tx(event.flow, reply, link.now))
            link.call("b", link.b.close(event.flow, link.now))
        elif isinstance(event, EndOfStream):
            link.call("a", link.a.close(event.flow, link.now))

    impairment = Impairment(loss=0.02, duplicate=0.01, reorder=0.05, delay=0.01)
    link = RecordedLink(a, b, impairment, seed=7, handler=handler)
    flow = Flow(Proto.TCP, ip_address("198.51.100.1"), 40000, ip_address("203.0.113.80"), 80)
    link.call("a", a.connect(flow, link.now))
    link.run(lambda: a.flow_info(flow).state == "ESTABLISHED", limit=10)
    offered = 0
    while offered < len(upload):
        out = a.l4_tx(flow, upload[offered:], link.now)
        link.call("a", out)
        offered += out.accepted
        link.run(lambda: a.flow_info(flow).bytes_queued < 100_000, limit=30)
    link.call("a", a.close(flow, link.now))
    link.run(lambda: not a.flows() and not b.flows(), limit=120)
    recorder.close()
    assert bytes(received["b"]) == upload and bytes(received["a"]) == reply
    assert a.stats.tcp_retransmits > 0  # the loss was real

    assert tshark_problems(path) == []
    # One view at a time (tshark writes the subset), followed by tshark.
    for interface in (0, 1):
        subset = tmp_path / f"view{interface}.pcapng"
        tshark("-r", path, "-Y", f"frame.interface_id == {interface}", "-w", subset)
        assert follow_tcp(subset, 0) == (upload, reply)
    names = {row[0] for row in tshark_fields(path, "frame.interface_name")}
    assert names == {"a", "b"}


def test_rotation_keeps_the_newest_files(tmp_path: Path) -> None:
    path = tmp_path / "ring.pcapng"
    stack = Stack(Config(secret=SECRET))
    flow = Flow(Proto.UDP, ip_address("192.0.2.1"), 40000, ip_address("192.0.2.2"), 7777)
    stack.connect(flow, 0.0)
    [packet] = stack.l4_tx(flow, bytes(900), 0.0).packets
    with Recorder(path, rotate_bytes=64 * 1024, max_files=3) as recorder:
        for index in range(1000):
            recorder.record(packet, bool(index & 1), index / 1000)
    statistics = recorder.statistics()
    indices = [int(p.name.split(".")[1]) for p in statistics.files]  # ring.N.pcapng
    assert len(indices) == 3 and indices[0] >= 1 and indices == list(range(indices[0], indices[0] + 3))
    assert not path.exists()  # the first file was rotated away
    assert sorted(tmp_path.iterdir()) == sorted(statistics.files)
    counts = []
    for file in statistics.files:
        assert os.path.getsize(file) <= 64 * 1024
        assert tshark_problems(file) == []
        counts.append(len(list(read_packets(file))))
    # each file holds what fit; together the newest three hold the last packets
    packets = [p for file in statistics.files for p in read_packets(file)]
    assert [round(p.timestamp * 1000) for p in packets] == list(range(1000 - sum(counts), 1000))
    assert statistics.written == 1000 and statistics.dropped == 0


def test_a_disk_that_cannot_keep_up_drops_and_counts(tmp_path: Path) -> None:
    """The file is a pipe nobody reads for a while: the writer thread blocks, record()
    does not; past the queue bound packets are dropped, counted, and the count is in
    the file's Interface Statistics Block."""
    fifo = tmp_path / "slow.pcapng"
    os.mkfifo(fifo)
    reader_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer open it
    recorder = Recorder(fifo, queue_packets=100)
    stack = Stack(Config(secret=SECRET))
    flow = Flow(Proto.UDP, ip_address("192.0.2.1"), 40000, ip_address("192.0.2.2"), 7777)
    stack.connect(flow, 0.0)
    [packet] = stack.l4_tx(flow, bytes(1400), 0.0).packets
    started = time.monotonic()
    for index in range(5000):
        recorder.record(packet, False, index * 0.001)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0  # 5000 calls that never waited for the pipe
    statistics = recorder.statistics()
    assert statistics.dropped > 4000 and statistics.recorded == 5000

    data = bytearray()
    os.set_blocking(reader_fd, True)

    def read_all() -> None:
        while chunk := os.read(reader_fd, 1 << 16):
            data.extend(chunk)

    drain = threading.Thread(target=read_all)
    drain.start()
    recorder.close()
    drain.join()
    os.close(reader_fd)
    final = recorder.statistics()
    assert final.written + final.dropped == 5000
    assert final.written == len(list(read_packets(io.BytesIO(bytes(data)))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # python-pcapng's own schema
        blocks = list(pcapng.FileScanner(io.BytesIO(bytes(data))))
    [isb] = [b for b in blocks if isinstance(b, pcapng.blocks.InterfaceStatistics)]
    assert (isb.options["isb_ifrecv"], isb.options["isb_ifdrop"]) == (5000, final.dropped)


def test_partial_checksums_completed_or_kept(tmp_path: Path) -> None:
    """A packet whose TCP checksum holds only the pseudo-header sum (what Linux hands a
    TUN device with checksum offload) is written with the full checksum, unless
    ``complete_checksums=False``; a packet with a wrong checksum is kept wrong."""
    stack = Stack(Config(secret=SECRET))
    flow = Flow(Proto.TCP, ip_address("192.0.2.1"), 40000, ip_address("192.0.2.2"), 80)
    [syn] = stack.connect(flow, 0.0).packets
    good = bytes(syn)
    # the pseudo-header sum, as the kernel leaves it: src + dst + proto + TCP length
    residue = (int.from_bytes(good[12:16], "big") + int.from_bytes(good[16:20], "big") + 6 + len(good) - 20) % 0xFFFF
    partial = good[:36] + residue.to_bytes(2, "big") + good[38:]
    wrong = good[:36] + bytes([good[36] ^ 0xFF, good[37]]) + good[38:]
    for complete in (True, False):
        path = tmp_path / f"checksums-{complete}.pcap"
        with Recorder(path, complete_checksums=complete, threaded=False) as recorder:
            for packet in (good, partial, wrong):
                recorder.record(packet, False, 1.0)
        written = [p.data for p in read_packets(path)]
        assert written == ([good, good, wrong] if complete else [good, partial, wrong])
        assert len(tshark_problems(path)) == (1 if complete else 2)  # tshark agrees which are bad


def test_record_after_close_counts_as_dropped(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "closed.pcap", threaded=False)
    recorder.close()
    recorder.close()  # idempotent
    recorder.record(b"\x45" + bytes(19), True, 0.0)
    assert recorder.statistics().dropped == 1
    with pytest.raises(ValueError, match="one link"):
        recorder.link("second")
