"""Reading and writing capture files, judged by independent readers: tshark, and the
python-pcapng library; and our reader judged against tshark on captures we did not
write (the pcapng test suite and pcap files Debian ships with gopacket)."""

from __future__ import annotations

import io
import struct
import subprocess
import warnings
from decimal import Decimal
from ipaddress import ip_address
from pathlib import Path

import pcapng  # type: ignore[import-untyped]
import pytest
from l3l4 import Config, Flow, Proto, Stack
from l3l4_pcap import CaptureFormatError, CaptureReader, CaptureWriter, Direction, read_packets
from support.capture import GOPACKET, tshark_fields, tshark_problems

SECRET = b"pcap-format-test"


def udp_packets() -> list[bytearray]:
    """Real packets from a stack: a small datagram and a fragmented one, IPv4 and IPv6."""
    stack = Stack(Config(secret=SECRET))
    packets: list[bytearray] = []
    for local, remote in (("192.0.2.1", "198.51.100.9"), ("2001:db8::1", "2001:db8:9::9")):
        flow = Flow(Proto.UDP, ip_address(local), 40000, ip_address(remote), 7777)
        stack.connect(flow, now=0.0)
        packets += stack.l4_tx(flow, b"hello", now=0.0).packets
        packets += stack.l4_tx(flow, bytes(range(256)) * 12, now=0.0).packets
    return packets


@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("nanoseconds", [True, False], ids=["ns", "us"])
@pytest.mark.parametrize("format", ["pcapng", "pcap"])
def test_round_trip_and_tshark_agrees(tmp_path: Path, format: str, byte_order: str, nanoseconds: bool) -> None:
    packets = udp_packets()
    path = tmp_path / f"capture.{format}"
    times = [1_700_000_000.25 + index * 0.001 for index in range(len(packets))]
    with CaptureWriter(path, format, byte_order=byte_order, nanoseconds=nanoseconds) as writer:  # type: ignore[arg-type]
        for index, (packet, now) in enumerate(zip(packets, times)):
            writer.write(packet, now, outbound=bool(index % 2) if format == "pcapng" else None)
    with CaptureReader(path) as reader:
        read = list(reader)
        assert reader.format == format and reader.byte_order == byte_order and not reader.cut_short
    assert [bytes(p.data) for p in read] == [bytes(p) for p in packets]
    assert all(p.length == len(p.data) and not p.truncated and p.linktype == 101 for p in read)
    assert [round(p.timestamp, 6) for p in read] == [round(t, 6) for t in times]
    if format == "pcapng":
        assert [p.direction for p in read] == [
            Direction.OUTBOUND if i % 2 else Direction.INBOUND for i in range(len(read))
        ]
    # tshark reads every byte order and resolution without a word, decodes the IP
    # inside, and agrees on timestamps, lengths and (pcapng) directions.
    assert tshark_problems(path) == []
    rows = tshark_fields(path, "frame.time_epoch", "frame.len", "ip.src", "ipv6.src", "frame.packet_flags_direction")
    assert [int(row[1]) for row in rows] == [len(p) for p in packets]
    assert [row[2] or row[3] for row in rows] == ["192.0.2.1" if p[0] >> 4 == 4 else "2001:db8::1" for p in packets]
    resolution = 10 ** (9 if nanoseconds else 6)
    assert [Decimal(row[0]) for row in rows] == [Decimal(round(t * resolution)) / resolution for t in times]
    if format == "pcapng":
        assert [int(row[4], 16) & 3 for row in rows] == [2 if i % 2 else 1 for i in range(len(rows))]
    # and tcpdump (libpcap) reads it too, saying nothing but what it reads
    dump = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert dump.returncode == 0 and dump.stderr.splitlines() == [
        f"reading from file {path}, link-type RAW (Raw IP), snapshot length 262144"
    ]
    assert len(dump.stdout.splitlines()) == len(packets) and "2001:db8::1.40000 > 2001:db8:9::9.7777" in dump.stdout


def test_pcapng_read_by_python_pcapng(tmp_path: Path) -> None:
    """A second, independent pcapng reader sees our interfaces, flags, timestamps and
    interface statistics as we meant them."""
    path = tmp_path / "two-links.pcapng"
    packets = udp_packets()
    with CaptureWriter(path, interfaces=["left"]) as writer:
        right = writer.add_interface("right")
        writer.write(packets[0], 12.5, outbound=True)
        writer.write(packets[1], 13.000000001, outbound=False, interface=right)
        writer.write(packets[2], 14.0, interface=right)
        writer.write_statistics(right, received=3, dropped=1, start=13.0, end=14.0)
    with path.open("rb") as stream, warnings.catch_warnings():
        # python-pcapng 2.1 warns about its own schema for if_tsresol.
        warnings.simplefilter("ignore", DeprecationWarning)
        blocks = list(pcapng.FileScanner(stream))
    names = [b.options["if_name"] for b in blocks if isinstance(b, pcapng.blocks.InterfaceDescription)]
    assert names == ["left", "right"]
    epbs = [b for b in blocks if isinstance(b, pcapng.blocks.EnhancedPacket)]
    assert [b.interface_id for b in epbs] == [0, 1, 1]
    assert [b.packet_data for b in epbs] == [bytes(p) for p in packets[:3]]
    assert [(b.timestamp_high << 32 | b.timestamp_low) for b in epbs] == [
        12_500_000_000,
        13_000_000_001,
        14_000_000_000,
    ]
    flags = [b.options.get("epb_flags") for b in epbs]
    assert flags[0].inout == "outbound" and flags[1].inout == "inbound" and flags[2] is None
    [isb] = [b for b in blocks if isinstance(b, pcapng.blocks.InterfaceStatistics)]
    assert (isb.interface_id, isb.options["isb_ifrecv"], isb.options["isb_ifdrop"]) == (1, 3, 1)


def test_writer_is_deterministic() -> None:
    packets = udp_packets()
    outputs = []
    for _ in range(2):
        buffer = io.BytesIO()
        writer = CaptureWriter(buffer)
        for index, packet in enumerate(packets):
            writer.write(packet, 3.0 + index / 7, outbound=bool(index & 1))
        writer.close()
        outputs.append(buffer.getvalue())
    assert outputs[0] == outputs[1]


def test_pcap_has_one_interface(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path / "one.pcap", "pcap") as writer, pytest.raises(ValueError, match="one interface"):
        writer.add_interface("another")


def test_garbage_and_cut_short_files(tmp_path: Path) -> None:
    (tmp_path / "junk").write_bytes(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(CaptureFormatError, match="not a pcap"):
        CaptureReader(tmp_path / "junk")
    packets = udp_packets()
    for format in ("pcap", "pcapng"):
        buffer = io.BytesIO()
        writer = CaptureWriter(buffer, format)
        for packet in packets:
            writer.write(packet, 1.0)
        data = buffer.getvalue()[:-10]  # a recorder killed in the middle of a packet
        with CaptureReader(io.BytesIO(data)) as reader:
            assert len(list(reader)) == len(packets) - 1 and reader.cut_short
    bad = bytearray(struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))
    bad += struct.pack("<II", 6, 7)  # a block whose length is not a multiple of 4
    with pytest.raises(CaptureFormatError, match="block length"):
        list(read_packets(io.BytesIO(bytes(bad))))


SUITE = sorted((GOPACKET / "pcapgo" / "tests").glob("*/test[0-2]*.pcapng"))


def test_the_pcapng_test_suite_is_installed() -> None:
    # 24 files in each byte order (le/, be/): interfaces, options, sections, SPBs...
    assert len(SUITE) == 48, "apt-get install golang-github-google-gopacket-dev (see .ci/run)"


@pytest.mark.parametrize("path", SUITE, ids=[f"{p.parent.name}-{p.stem}" for p in SUITE])
def test_pcapng_test_suite_read_as_tshark_reads_it(path: Path) -> None:
    """The pcapng test suite (both byte orders: several sections and interfaces,
    microsecond, nanosecond and odd resolutions, simple and obsolete packet blocks,
    custom and unknown blocks): every packet, with the interface, lengths, timestamp
    and direction tshark gives it."""
    ours = list(read_packets(path))
    rows = tshark_fields(
        path, "frame.interface_id", "frame.len", "frame.cap_len", "frame.time_epoch", "frame.packet_flags_direction"
    )
    theirs = [row for row in rows if row[0]]  # non-packet records have no interface
    assert len(ours) == len(theirs)
    for packet, (interface, length, caplen, epoch, flags) in zip(ours, theirs):
        assert (packet.interface, packet.length, len(packet.data)) == (int(interface), int(length), int(caplen))
        if epoch:  # simple packet blocks have no timestamp
            assert abs(Decimal(epoch) - Decimal(packet.timestamp)) < Decimal("0.000001")
        direction = {1: Direction.INBOUND, 2: Direction.OUTBOUND}.get(int(flags, 16) & 3) if flags else None
        assert packet.direction == direction


def test_pcapng_test_suite_byte_orders_agree() -> None:
    for little in (GOPACKET / "pcapgo" / "tests" / "le").glob("test[0-2]*.pcapng"):
        big = little.parent.parent / "be" / little.name
        assert list(read_packets(little)) == list(read_packets(big)), little.name


def test_unsupported_pcapng_version_is_refused() -> None:
    # test901 declares pcapng 2.0; tshark refuses it too.
    with pytest.raises(CaptureFormatError, match="version 2"):
        list(read_packets(GOPACKET / "pcapgo" / "tests" / "le" / "test901.pcapng"))


@pytest.mark.parametrize("name", ["test_ethernet.pcap", "test_dns.pcap", "test_loopback.pcap"])
def test_gopacket_pcap_files_read_as_tshark_reads_them(name: str) -> None:
    path = GOPACKET / "pcap" / name
    ours = list(read_packets(path))
    rows = tshark_fields(path, "frame.len", "frame.time_epoch", "ip.src", "ipv6.src")
    assert len(ours) == len(rows) > 0
    for packet, (length, epoch, v4, v6) in zip(ours, rows):
        assert packet.length == int(length)
        assert abs(Decimal(epoch) - Decimal(packet.timestamp)) < Decimal("0.000001")
        ip = packet.ip()
        assert ip is not None
        source = bytes(ip[12:16]) if ip[0] >> 4 == 4 else bytes(ip[8:24])
        assert ip_address(source) == ip_address(v4 or v6)
