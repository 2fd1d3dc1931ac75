"""Replaying captures no one here wrote: the kernel's own TCP recorded by tcpdump
between two namespaces (Ethernet, Linux cooked v1 and v2, micro- and nanosecond
files), and the captures Debian ships in golang-github-google-gopacket-dev. Flow
export must give what the applications sent (and what tshark's reassembly gives);
every replay must be deterministic, byte for byte. Then the real use: a recorded
l3l4 session replayed exactly."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address
from pathlib import Path

import pytest
from l3l4 import Config, DataReceived, DropReason, Event, Flow, FlowOpened, Proto, Stack
from l3l4_pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    Application,
    Direction,
    Echo,
    Inbound,
    Recorder,
    export_flows,
    read_packets,
    replay,
)
from l3l4_pcap._ip import partial_checksum
from l3l4_tun import Loop
from l3l4_tun.testing import Namespace, new_namespace, serve_until_exit, tun_namespace
from support.capture import GOPACKET, follow_tcp, tshark_problems
from support.clients import half_close_client, hash_server, python_tcp_clients

SECRET = b"pcap-replay-test"
UPLOAD, REPLY = 300_000, 100_000


class Collect:
    """A handler that keeps every byte received, per flow (and acts as a sink)."""

    def __init__(self) -> None:
        self.data: dict[Flow, bytearray] = {}
        self.opened: list[Flow] = []

    def on_event(self, app: Application, event: Event) -> None:
        if isinstance(event, DataReceived):
            self.data.setdefault(event.flow, bytearray()).extend(event.data)
        elif isinstance(event, FlowOpened):
            self.opened.append(event.flow)


@contextmanager
def veth_namespaces() -> Iterator[tuple[Namespace, Namespace]]:
    """A client namespace and a server namespace joined by a veth pair:
    198.51.100.1 / 2001:db8:100::1 and 198.51.100.2 / 2001:db8:100::2."""
    with new_namespace() as client, new_namespace() as server:
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                "vc",
                "netns",
                client.name,
                "type",
                "veth",
                "peer",
                "name",
                "vs",
                "netns",
                server.name,
            ],
            check=True,
        )
        for namespace, device, host in ((client, "vc", 1), (server, "vs", 2)):
            namespace.check("ip", "addr", "add", f"198.51.100.{host}/24", "dev", device)
            namespace.check("ip", "addr", "add", f"2001:db8:100::{host}/64", "dev", device, "nodad")
            namespace.check("ip", "link", "set", device, "up")
        yield client, server


@contextmanager
def tcpdump(namespace: Namespace, path: Path, *options: str) -> Iterator[None]:
    """tcpdump writing ``path`` inside ``namespace`` while the block runs."""
    process = namespace.popen(
        "tcpdump", "-n", "--immediate-mode", "-B", "65536", "-U", "-w", str(path), *options, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    banner = b""
    while b"listening on" not in banner and process.poll() is None:  # "data link type ..." may come first
        banner += process.stderr.readline()
    try:
        assert b"listening on" in banner, banner
        yield
        # let tcpdump write out what is still in its ring: until the file stops growing
        size, deadline = -1, time.monotonic() + 10
        while time.monotonic() < deadline and path.stat().st_size != size:
            size = path.stat().st_size
            time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=20)
    counts = dict(line.split(" packets ", 1)[::-1] for line in errors.decode().splitlines() if " packets " in line)
    assert counts["captured"] == counts["received by filter"] and counts["dropped by kernel"] == "0", errors


def kernel_session(path: Path, server_address: str, *tcpdump_options: str) -> None:
    """A kernel client uploads UPLOAD bytes to a kernel server, which answers with
    their SHA-256 and REPLY known bytes; tcpdump records it on the server's side."""
    with veth_namespaces() as (client, server):
        with tcpdump(server, path, *tcpdump_options):
            listener = hash_server(server, server_address, 8080, REPLY)
            uploader = half_close_client(client, server_address, 8080, UPLOAD, REPLY)
            out, err = uploader.communicate(timeout=60)
            assert out == b"ok\n", err
            listener.communicate(timeout=10)


def upload() -> bytes:
    return hashlib.shake_256(b"upload").digest(UPLOAD)


def answer() -> bytes:
    return hashlib.sha256(upload()).digest() + hashlib.shake_256(b"reply").digest(REPLY)


CAPTURES = {
    # name: (tcpdump options, server address, link type)
    "ethernet-ipv4": (("-i", "vs"), "198.51.100.2", LINKTYPE_ETHERNET),
    "ethernet-ipv6-nanoseconds": (("-i", "vs", "--time-stamp-precision=nano"), "2001:db8:100::2", LINKTYPE_ETHERNET),
    "cooked-v2-any": (("-i", "any"), "198.51.100.2", LINKTYPE_LINUX_SLL2),
    "cooked-v1-any": (("-i", "any", "-y", "LINUX_SLL"), "2001:db8:100::2", LINKTYPE_LINUX_SLL),
}


@pytest.fixture(scope="module", params=list(CAPTURES))
def kernel_capture(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    options, server, linktype = CAPTURES[request.param]
    path = tmp_path_factory.mktemp("kernel") / f"{request.param}.pcap"
    kernel_session(path, server, *options)
    return path, server, linktype


def test_flows_of_a_kernel_capture(kernel_capture: tuple[Path, str, int], tmp_path: Path) -> None:
    path, server, linktype = kernel_capture
    packets = list(read_packets(path))
    assert {p.linktype for p in packets} == {linktype}
    if linktype in (LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):  # cooked headers carry the direction
        assert {p.direction for p in packets} == {Direction.INBOUND, Direction.OUTBOUND}
    exports = [export_flows(path, tmp_path / f"run{run}") for run in (1, 2)]
    export = exports[0]
    by_direction = {(str(f.flow.remote_ip), f.flow.local_port): f for f in export.files}
    to_server = next(f for f in export.files if f.flow.local_port == 8080)
    to_client = next(f for f in export.files if f.flow.remote_port == 8080)
    assert len(export.files) == 2 and len(by_direction) == 2
    assert str(to_server.flow.local_ip) == server
    assert to_server.path.read_bytes() == upload()
    assert to_client.path.read_bytes() == answer()
    assert export.stats.drops[DropReason.BAD_L4_CHECKSUM] == 0  # offloaded checksums taken as the kernel's
    # tshark's own reassembly agrees (the client sent first).
    assert follow_tcp(path, 0) == (upload(), answer())
    # deterministic: the same files, byte for byte
    again = exports[1]
    assert [f.path.name for f in again.files] == [f.path.name for f in export.files]
    assert all(a.path.read_bytes() == b.path.read_bytes() for a, b in zip(export.files, again.files))


def test_replay_a_kernel_capture_is_byte_identical(kernel_capture: tuple[Path, str, int], tmp_path: Path) -> None:
    """The stack plays the server of a kernel capture: it is fed the client's packets
    (inbound by destination), adopts the connection, and echoes; twice, the same bytes."""
    path, server, _ = kernel_capture
    outputs = []
    for run in (1, 2):
        output = tmp_path / f"replayed{run}.pcapng"
        collect = Collect()
        statistics = replay(
            path, Stack(Config(secret=SECRET)), f"[{server}]:8080", output=output, handler=collect, adopt=True
        )
        assert statistics.fed > 0 and statistics.not_inbound > 0 and statistics.rewritten > 0
        [(flow, data)] = collect.data.items()
        assert (str(flow.local_ip), flow.local_port) == (server, 8080)
        assert bytes(data) == upload()
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]
    assert tshark_problems(tmp_path / "replayed1.pcapng") == []


def test_checksum_modes_on_a_kernel_capture(kernel_capture: tuple[Path, str, int]) -> None:
    """A capture on the sending host holds checksums left to the NIC: "verify" drops
    exactly those, "offload" (the default) takes them as the kernel vouched for them."""
    path, _, _ = kernel_capture
    drops = {}
    for mode in ("verify", "offload", "trust"):
        stack = Stack(Config(secret=SECRET))
        replay(path, stack, "all", checksums=mode)
        drops[mode] = stack.stats.drops[DropReason.BAD_L4_CHECKSUM]
    partial = sum(1 for p in read_packets(path) if (ip := p.ip()) is not None and partial_checksum(ip))
    assert drops == {"verify": partial, "offload": 0, "trust": 0}


# -- captures from a Debian package --------------------------------------------------


def test_debian_gopacket_http_capture_flows(tmp_path: Path) -> None:
    """gopacket's test_ethernet.pcap (Ethernet, a curl GET answered by a 302): both
    directions exported, equal to tshark's reassembly, the same on a second run."""
    path = GOPACKET / "pcap" / "test_ethernet.pcap"
    request, response = follow_tcp(path, 0)
    assert request.startswith(b"GET / HTTP/1.1\r\n") and response.startswith(b"HTTP/1.0 302 Redirect\r\n")
    runs = [export_flows(path, tmp_path / f"run{run}") for run in (1, 2)]
    for export in runs:
        files = {f.path.name: f.path.read_bytes() for f in export.files}
        assert files == {"tcp-10.1.1.2.44644-10.1.1.1.80": request, "tcp-10.1.1.1.80-10.1.1.2.44644": response}
        assert export.replay.connected == 1 and export.stats.dropped == 0


def test_debian_gopacket_http_capture_replayed_with_echo(tmp_path: Path) -> None:
    path = GOPACKET / "pcap" / "test_ethernet.pcap"
    outputs = []
    for run in (1, 2):
        output = tmp_path / f"echo{run}.pcapng"
        replay(path, Stack(Config(secret=SECRET)), "10.1.1.1:80", output=output, handler=Echo(), adopt=True, linger=1.0)
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]
    assert tshark_problems(tmp_path / "echo1.pcapng") == []
    request, _ = follow_tcp(path, 0)
    # In the output the client (10.1.1.2) sent the request and the stack echoed it.
    assert follow_tcp(tmp_path / "echo1.pcapng", 0) == (request, request)


def test_debian_gopacket_loopback_capture() -> None:
    """test_loopback.pcap: BSD loopback link type, IPv6 on ::1, starting in the middle
    of one connection and holding the handshake of another."""
    path = GOPACKET / "pcap" / "test_loopback.pcap"
    packets = list(read_packets(path))
    assert {p.linktype for p in packets} == {LINKTYPE_NULL}
    collect = Collect()
    stack = Stack(Config(secret=SECRET))
    statistics = replay(path, stack, "all", handler=collect, adopt=True)
    assert statistics.fed == len(packets) == 24 and statistics.not_ip == 0
    # Both ends of the connection whose handshake is there; the other one (already
    # open when the capture began) is answered with resets and counted.
    assert sorted(f.local_port for f in collect.opened) == [8080, 58806]
    assert stack.stats.drops[DropReason.TCP_NO_CONNECTION] == 20


def test_debian_gopacket_dns_capture() -> None:
    path = GOPACKET / "pcap" / "test_dns.pcap"
    collect = Collect()
    stack = Stack(Config(secret=SECRET))
    replay(path, stack, ":53", handler=collect)
    queries = [p.ip() for p in read_packets(path)]
    assert len(collect.data) == 10
    assert sorted(bytes(d) for d in collect.data.values()) == sorted(bytes(q[28:]) for q in queries if q is not None)


# -- the real use: a recorded l3l4 session, replayed exactly --------------------------


def test_recorded_tun_session_replays_exactly(tmp_path: Path) -> None:
    """A session recorded from the TUN loop (the field), replayed with the same config,
    secret and application: the stack answers the kernel's SYN with the very SYN-ACK it
    sent in the field (same initial sequence number), accepts every recorded packet as
    it did then (no drops), and echoes the same bytes; two replays are identical."""
    size = 200_000
    field = tmp_path / "field.pcapng"
    config = Config(secret=SECRET, tcp_tso_packet=65535)
    with tun_namespace() as (namespace, devices):
        recorder = Recorder(field)
        loop = Loop(Stack(config), devices, Echo(), recorder=recorder)
        client = python_tcp_clients(namespace, "203.0.113.9", 7, size, 1)
        serve_until_exit(loop, [client], 60.0)
        out, err = client.communicate()
        assert client.returncode == 0, (out, err)
        loop.run_until(lambda: not loop.stack.flows(), 2.0)
        recorder.close()
    recorded = list(read_packets(field))
    outputs = []
    for run in (1, 2):
        output = tmp_path / f"replay{run}.pcapng"
        stack = Stack(config)
        statistics = replay(field, stack, "marked", output=output, handler=Echo(), linger=5.0)
        assert statistics.fed == sum(1 for p in recorded if p.direction is Direction.INBOUND)
        assert stack.stats.dropped == 0
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]
    replayed = list(read_packets(tmp_path / "replay1.pcapng"))
    first_sent = next(p.data for p in recorded if p.direction is Direction.OUTBOUND)
    assert next(p.data for p in replayed if p.direction is Direction.OUTBOUND) == first_sent
    sent = hashlib.shake_256(b"0").digest(size)
    assert follow_tcp(tmp_path / "replay1.pcapng", 0) == (sent, sent)


# -- selectors -------------------------------------------------------------------------


def test_inbound_selectors() -> None:
    stack = Stack(Config(secret=SECRET))
    packets = {}
    for local, remote, port in (
        ("198.51.100.1", "203.0.113.7", 80),
        ("198.51.100.1", "203.0.113.7", 443),
        ("198.51.100.1", "192.0.2.9", 80),
        ("2001:db8::1", "2001:db8:5::5", 443),
    ):
        flow = Flow(Proto.UDP, ip_address(local), 40000, ip_address(remote), port)
        stack.connect(flow, 0.0)
        [packets[(remote, port)]] = stack.l4_tx(flow, b"x", 0.0).packets

    def chosen(*specs: str) -> set[tuple[str, int]]:
        inbound = Inbound.parse(list(specs))
        from l3l4_pcap import CapturedPacket
        from l3l4_pcap._ip import transport

        return {
            key
            for key, packet in packets.items()
            if inbound.matches(CapturedPacket(0.0, bytes(packet), 101), bytes(packet), transport(packet))
        }

    assert chosen("all") == set(packets)
    assert chosen("203.0.113.7") == {("203.0.113.7", 80), ("203.0.113.7", 443)}
    assert chosen("203.0.113.0/24:443") == {("203.0.113.7", 443)}
    assert chosen(":80") == {("203.0.113.7", 80), ("192.0.2.9", 80)}
    assert chosen("[2001:db8::/32]:443") == {("2001:db8:5::5", 443)}
    assert chosen("2001:db8:5::5", "192.0.2.9:80") == {("2001:db8:5::5", 443), ("192.0.2.9", 80)}
    assert chosen("marked") == set()  # nothing in these packets says "inbound"
    for bad in ("203.0.113.7:99999", "not-an-address", "[2001:db8::1]x", ""):
        with pytest.raises(ValueError, match="inbound selector"):
            Inbound.parse(bad)
