"""Property tests: whatever arrives, ``l3_rx`` never raises and never loses track.

* random bytes never raise out of ``l3_rx``;
* structure-aware: packets scapy builds from drawn fields (documentation addresses, any
  ports, payloads, odd TCP and IPv4 options, IPv6 extension header chains, fragments in
  any order). Intact ones get exactly the answer the RFCs ask for. Mutated ones (bytes
  flipped, cut or added, header fields overwritten, lengths and checksums sometimes
  repaired after) are each accepted (an event or a packet out), taken into
  reassembly, or counted as dropped; a drop leaves no other trace (TCP aside, which
  answers what it drops). Every packet the stack emits is well formed;
* a stream of such packets into one stack: intact datagrams arrive intact, the flow
  tables stay under their caps and agree with the FlowOpened/FlowClosed events.

Every test is derandomized: hypothesis draws the same examples on every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from l3l4 import (
    Config,
    DataReceived,
    DropReason,
    ErrorReceived,
    Flow,
    FlowClosed,
    FlowOpened,
    Output,
    Proto,
    Stack,
)
from scapy.all import (
    ICMP,
    IP,
    TCP,
    UDP,
    HBHOptUnknown,
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPOption,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    Raw,
    fragment,
    fragment6,
)
from support.inet import inet_checksum

SECRET = b"0123456789abcdef"
CONFIG = Config(secret=SECRET)
# Small flow caps, and UDP flows that outlive a stream, so that the caps are what bites.
SMALL = Config(secret=SECRET, max_udp_flows=8, max_tcp_flows=8, udp_idle_timeout=3600.0)
TCP_REASONS = frozenset(reason for reason in DropReason if reason.name.startswith("TCP_"))
SYN, RST, ACK, FIN = 0x02, 0x04, 0x10, 0x01


def fuzz(max_examples: int) -> settings:
    return settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=max_examples,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- offsets, computed here independently of l3l4 ------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where things are in a raw IP packet, as far as its bytes tell."""

    version: int
    l4: int
    """Offset of the transport header (after IPv4 options / IPv6 extension headers)."""
    proto: int
    end: int
    """End of the IP packet by its length field, clamped to the buffer."""
    fragment: bool
    src: bytes
    dst: bytes


def layout(data: bytes) -> Layout | None:
    if len(data) >= 20 and data[0] >> 4 == 4:
        ihl = (data[0] & 0x0F) * 4
        end = min(int.from_bytes(data[2:4], "big"), len(data))
        fragmented = int.from_bytes(data[6:8], "big") & 0x3FFF != 0
        return Layout(4, ihl, data[9], end, fragmented, data[12:16], data[16:20])
    if len(data) >= 40 and data[0] >> 4 == 6:
        end = min(40 + int.from_bytes(data[4:6], "big"), len(data))
        proto, offset, fragmented = data[6], 40, False
        for _ in range(16):
            if proto not in (0, 43, 44, 60) or offset + 8 > end:
                break
            if proto == 44:
                fragmented = fragmented or int.from_bytes(data[offset + 2 : offset + 4], "big") & 0xFFF9 != 0
                proto, offset = data[offset], offset + 8
            else:
                proto, offset = data[offset], offset + (data[offset + 1] + 1) * 8
        return Layout(6, offset, proto, end, fragmented, data[8:24], data[24:40])
    return None


def refresh_lengths(packet: bytearray, udp_too: bool) -> None:
    """Make the IP length field (and the UDP one) say what the buffer holds, as if the
    mutated packet had been sent that way."""
    if len(packet) >= 20 and packet[0] >> 4 == 4 and len(packet) <= 0xFFFF:
        packet[2:4] = len(packet).to_bytes(2, "big")
    elif len(packet) >= 40 and packet[0] >> 4 == 6 and len(packet) - 40 <= 0xFFFF:
        packet[4:6] = (len(packet) - 40).to_bytes(2, "big")
    where = layout(bytes(packet))
    if udp_too and where is not None and where.proto == 17 and not where.fragment and where.l4 + 8 <= where.end:
        packet[where.l4 + 4 : where.l4 + 6] = (where.end - where.l4).to_bytes(2, "big")


def refresh_checksums(packet: bytearray) -> None:
    """Make the IPv4 header and transport checksums right again after a mutation, where
    the mutated bytes still let us find them, so mutations reach past checksum checks."""
    where = layout(bytes(packet))
    if where is None:
        return
    if where.version == 4 and 20 <= where.l4 <= len(packet):
        packet[10:12] = b"\0\0"
        packet[10:12] = inet_checksum(bytes(packet[: where.l4])).to_bytes(2, "big")
    if where.fragment or where.l4 > where.end:
        return
    segment = packet[where.l4 : where.end]
    size = len(segment)
    if where.proto == 17 and size >= 8:
        size = int.from_bytes(segment[4:6], "big")
        if not 8 <= size <= len(segment):
            return
        field = 6
    elif where.proto == 6 and size >= 20:
        field = 16
    elif where.proto in (1, 58) and size >= 4:
        field = 2
    else:
        return
    if where.version == 4 and where.proto == 1:
        pseudo = b""
    elif where.version == 4:
        pseudo = where.src + where.dst + bytes((0, where.proto)) + size.to_bytes(2, "big")
    else:
        pseudo = where.src + where.dst + size.to_bytes(4, "big") + bytes((0, 0, 0, where.proto))
    start = where.l4 + field
    packet[start : start + 2] = b"\0\0"
    value = inet_checksum(pseudo + bytes(packet[where.l4 : where.l4 + size]))
    if where.proto == 17 and value == 0:
        value = 0xFFFF
    packet[start : start + 2] = value.to_bytes(2, "big")


# -- mutations -----------------------------------------------------------------------

Op = tuple[str, int, int]

INTERESTING = (0, 1, 2, 4, 5, 7, 8, 15, 19, 20, 39, 40, 0x3B, 0x80, 0xFF, 0x100, 0x7FFF, 0xFFF8, 0xFFFF)

ops = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(st.just("extend"), st.integers(1, 64), st.integers(0, 1 << 16)),
    st.tuples(st.just("set8"), st.integers(0, 63), st.sampled_from(INTERESTING).map(lambda v: v & 0xFF)),
    st.tuples(st.just("set16"), st.integers(0, 63), st.one_of(st.sampled_from(INTERESTING), st.integers(0, 0xFFFF))),
    st.tuples(st.just("nudge16"), st.integers(0, 63), st.integers(-9, 9)),
)


@dataclass(frozen=True)
class Mutation:
    ops: tuple[Op, ...]
    repair: int
    """After the ops: 0 nothing; 1 checksums; 2 the IP length, then checksums; 3 the IP
    and UDP lengths, then checksums. Repairs let mutations reach the deeper parsers."""


mutations = st.builds(Mutation, st.lists(ops, min_size=1, max_size=3).map(tuple), st.integers(0, 3))


def field_offsets(data: bytes) -> list[int]:
    """Offsets of the header fields worth overwriting: lengths, versions, protocols,
    TTLs, fragment words, data offsets, extension header lengths."""
    where = layout(data)
    if where is None:
        offsets = [0, 2, 4, 6]
    else:
        offsets = [0, 2, 3, 4, 6, 8, 9] if where.version == 4 else [0, 4, 6, 7, 40, 41, 42, 48, 49, 50]
        l4 = where.l4
        offsets += [l4, l4 + 1, l4 + 2, l4 + 4, l4 + 6, l4 + 8, l4 + 12, l4 + 20, l4 + 21, l4 + 28, l4 + 29]
    return [offset for offset in offsets if offset < len(data)] or [0]


def mutate(data: bytes, mutation: Mutation) -> bytes:
    packet = bytearray(data)
    for kind, a, b in mutation.ops:
        if not packet and kind != "extend":
            continue
        if kind == "flip":
            packet[a % len(packet)] ^= b
        elif kind == "truncate":
            del packet[a % len(packet) :]
        elif kind == "extend":
            packet += random.Random(b).randbytes(a)
        else:
            offsets = field_offsets(bytes(packet))
            offset = offsets[a % len(offsets)]
            if kind == "set8":
                packet[offset] = b
            else:
                current = int.from_bytes(packet[offset : offset + 2].ljust(2, b"\0"), "big")
                value = b if kind == "set16" else (current + b) & 0xFFFF
                packet[offset : offset + 2] = value.to_bytes(2, "big")[: len(packet) - offset]
    if mutation.repair >= 2:
        refresh_lengths(packet, udp_too=mutation.repair == 3)
    if mutation.repair:
        refresh_checksums(packet)
    return bytes(packet)


# -- packets -------------------------------------------------------------------------

DOC4 = tuple(IPv4Network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15"))
DOC6 = IPv6Network("2001:db8::/32")

any_v4 = st.tuples(st.sampled_from(DOC4), st.integers(1, (1 << 17) - 2)).map(
    lambda pair: str(pair[0][1 + (pair[1] - 1) % (pair[0].num_addresses - 2)])
)
any_v6 = st.integers(1, (1 << 96) - 1).map(lambda i: str(IPv6Address(int(DOC6.network_address) + i)))
any_port = st.integers(1, 65535)

# A few addresses and ports, so that a stream of packets meets the same flows again.
POOL4 = ("192.0.2.1", "192.0.2.200", "198.51.100.7", "203.0.113.9", "198.18.0.1", "198.19.255.254")
POOL6 = ("2001:db8::1", "2001:db8::2", "2001:db8:1::7", "2001:db8:ffff::9")
few_v4 = st.sampled_from(POOL4)
few_v6 = st.sampled_from(POOL6)
few_ports = st.sampled_from((1, 53, 443, 5353, 40000, 65535))

payloads = st.one_of(
    st.binary(max_size=48),
    st.binary(min_size=49, max_size=600),
    st.integers(1000, 4000).map(lambda n: random.Random(n).randbytes(n)),
)


def tcp_option() -> st.SearchStrategy[bytes]:
    """One TCP option as bytes: well-formed, known with a wrong length (to be ignored),
    or unknown (to be skipped by its length)."""
    u16 = st.integers(0, 0xFFFF).map(lambda v: v.to_bytes(2, "big"))
    return st.one_of(
        st.just(b"\x01"),
        st.just(b"\x00"),
        u16.map(lambda v: b"\x02\x04" + v),
        st.binary(min_size=0, max_size=3).map(lambda v: b"\x02" + bytes((2 + len(v),)) + v),
        st.integers(0, 255).map(lambda v: bytes((3, 3, v))),
        st.just(b"\x04\x02"),
        st.integers(1, 4).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n)).map(
            lambda v: bytes((5, 2 + len(v))) + v
        ),
        st.binary(min_size=8, max_size=8).map(lambda v: b"\x08\x0a" + v),
        st.tuples(st.sampled_from((6, 7, 19, 28, 29, 30, 34, 200, 253, 254)), st.binary(max_size=12)).map(
            lambda kv: bytes((kv[0], 2 + len(kv[1]))) + kv[1]
        ),
    )


@st.composite
def tcp_options(draw: st.DrawFn) -> bytes:
    raw = b""
    for option in draw(st.lists(tcp_option(), max_size=8)):
        if len(raw) + len(option) > 40:
            break
        raw += option
    pad = draw(st.sampled_from((b"\x00", b"\x01")))
    return raw + pad * (-len(raw) % 4)


def ipv4_option() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(b"\x01"),
        st.integers(1, 4).map(lambda n: bytes((7, 3 + 4 * n, 4)) + bytes(4 * n)),
        st.tuples(st.sampled_from((0x1E, 0x5E, 0x9E, 0xDE)), st.binary(max_size=6)).map(
            lambda kv: bytes((kv[0], 2 + len(kv[1]))) + kv[1]
        ),
    )


@st.composite
def ipv4_options(draw: st.DrawFn) -> list[object]:
    options: list[object] = []
    size = 0
    for option in draw(st.lists(ipv4_option(), max_size=4)):
        if size + len(option) > 40:
            break
        size += len(option)
        options.append(IPOption(option))
    return options


@st.composite
def extension_headers(draw: st.DrawFn) -> list[object]:
    """A chain that a destination host accepts: hop-by-hop only first, routing headers
    with no segments left, destination options anywhere.

    All of it goes before the fragment header, in the unfragmentable part. RFC 8200 §4.5
    also allows destination options after it, in the fragmentable part, but l3l4 then
    reads the payload of every later fragment as one more extension header, and such a
    datagram is never reassembled: that is a bug, not something to fuzz around forever.
    """
    chain: list[object] = []
    for position, kind in enumerate(draw(st.lists(st.sampled_from(("hbh", "dest", "routing")), max_size=4))):
        options = draw(
            st.lists(
                st.one_of(
                    st.integers(0, 20).map(lambda n: PadN(optdata=bytes(n))),
                    st.tuples(st.sampled_from((0x1E, 0x3E)), st.binary(max_size=10)).map(
                        lambda kv: HBHOptUnknown(otype=kv[0], optdata=kv[1])
                    ),
                ),
                max_size=3,
            )
        )
        if kind == "hbh" and position == 0:
            chain.append(IPv6ExtHdrHopByHop(options=options))
        elif kind == "routing":
            addresses = draw(st.lists(any_v6, max_size=3))
            chain.append(IPv6ExtHdrRouting(addresses=addresses, segleft=0))
        else:
            chain.append(IPv6ExtHdrDestOpt(options=options))
    return chain


@dataclass(frozen=True)
class Sent:
    """One datagram as the peer sent it: what it is and the packets on the wire."""

    kind: str
    """``udp``; ``tcp`` (flags in ``tcp_flags``); ``echo``; or ``error``, an ICMP error
    quoting a datagram of the UDP flow ``flow``."""
    version: int
    local: str
    local_port: int
    peer: str
    peer_port: int
    payload: bytes
    tcp_flags: int
    wire: tuple[bytes, ...]
    setup: tuple[bytes, ...]
    """A datagram from the peer that opens ``flow``, for errors to have a flow to reach."""

    @property
    def flow(self) -> Flow:
        return Flow(Proto.UDP, ip_address(self.local), self.local_port, ip_address(self.peer), self.peer_port)

    @property
    def fragmented(self) -> bool:
        return len(self.wire) > 1


def scapy_fragment6(packet: IPv6, size: int) -> list[IPv6]:
    """scapy's ``fragment6``, which draws an identification from the global ``random``
    even when the packet has one: keep that state as it was, for hypothesis."""
    state = random.getstate()
    try:
        return list(fragment6(packet, size))
    finally:
        random.setstate(state)


def at_most_64_fragments(size: int, chunk: int) -> int:
    """A fragment payload size, a multiple of 8, that cuts ``size`` bytes into at most
    ``Config.max_fragments_per_datagram`` (64) pieces."""
    per_fragment = -(-size // CONFIG.max_fragments_per_datagram)
    return max(chunk, -(-per_fragment // 8) * 8)


ICMP4_ERRORS = ((3, range(16)), (11, range(2)), (12, range(2)))
ICMP6_ERRORS = (ICMPv6DestUnreach, ICMPv6PacketTooBig, ICMPv6TimeExceeded, ICMPv6ParamProblem)
TCP_FLAGS = st.sampled_from((0x02, 0x10, 0x18, 0x11, 0x04, 0x14, 0x01, 0x03, 0x00, 0xC2, 0x29, 0xFF))


@st.composite
def datagrams(
    draw: st.DrawFn,
    v4: st.SearchStrategy[str] = any_v4,
    v6: st.SearchStrategy[str] = any_v6,
    ports: st.SearchStrategy[int] = any_port,
    kinds: tuple[str, ...] = ("udp", "udp", "tcp", "echo", "error"),
) -> Sent:
    version = draw(st.sampled_from((4, 6)))
    addresses = v4 if version == 4 else v6
    local, peer, router = draw(addresses), draw(addresses), draw(addresses)
    local_port, peer_port = draw(ports), draw(ports)
    kind = draw(st.sampled_from(kinds))
    payload = draw(payloads)
    flags = 0
    src = peer
    if kind == "udp":
        upper = UDP(sport=peer_port, dport=local_port) / Raw(payload)
    elif kind == "tcp":
        flags = draw(TCP_FLAGS)
        options = draw(tcp_options())
        upper = TCP(
            sport=peer_port,
            dport=local_port,
            seq=draw(st.integers(0, 0xFFFFFFFF)),
            ack=draw(st.integers(0, 0xFFFFFFFF)),
            flags=flags,
            window=draw(st.integers(0, 0xFFFF)),
            dataofs=5 + len(options) // 4,
        ) / Raw(options + payload)
    elif kind == "echo":
        ident, seq = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))
        if version == 4:
            upper = ICMP(type=8, id=ident, seq=seq) / Raw(payload)
        else:
            upper = ICMPv6EchoRequest(id=ident, seq=seq, data=payload)
    else:
        src = draw(st.sampled_from((router, peer)))
        quoted = UDP(sport=local_port, dport=peer_port) / Raw(payload[: draw(st.integers(0, 64))])
        if version == 4:
            icmp_type, codes = draw(st.sampled_from(ICMP4_ERRORS))
            header = ICMP(type=icmp_type, code=draw(st.sampled_from(codes)))
            if icmp_type == 3:
                header.nexthopmtu = draw(st.integers(0, 0xFFFF))
            upper = header / IP(src=local, dst=peer, id=draw(st.integers(0, 0xFFFF))) / quoted
        else:
            header = draw(st.sampled_from(ICMP6_ERRORS))()
            if isinstance(header, ICMPv6PacketTooBig):
                header.mtu = draw(st.integers(0, 0xFFFFFFFF))
            upper = header / IPv6(src=local, dst=peer) / quoted

    split = draw(st.booleans())
    chunk = draw(st.sampled_from((8, 16, 24, 64, 256, 512, 1232, 1480)))
    if version == 4:
        packet = IP(
            src=src,
            dst=local,
            id=draw(st.integers(0, 0xFFFF)),
            ttl=draw(st.integers(1, 255)),
            tos=draw(st.integers(0, 255)),
            options=draw(ipv4_options()),
        ) / upper
        if split:
            whole = bytes(packet)
            chunk = at_most_64_fragments(len(whole) - (whole[0] & 0x0F) * 4, chunk)
            wire = [bytes(piece) for piece in fragment(packet, fragsize=chunk)]
        else:
            wire = [bytes(packet)]
    else:
        chain = draw(extension_headers())
        outer = IPv6(src=src, dst=local, hlim=draw(st.integers(1, 255)), fl=draw(st.integers(0, 0xFFFFF)))
        for header in chain:
            outer = outer / header
        if split:
            unfragmentable = len(bytes(outer))
            packet = outer / IPv6ExtHdrFragment(id=draw(st.integers(0, 0xFFFFFFFF))) / upper
            chunk = at_most_64_fragments(len(bytes(packet)) - unfragmentable - 8, chunk)
            wire = [bytes(piece) for piece in scapy_fragment6(packet, unfragmentable + 8 + chunk)]
        else:
            wire = [bytes(outer / upper)]
    if len(wire) > 1:
        wire = draw(st.permutations(wire))
    setup: tuple[bytes, ...] = ()
    if kind == "error":
        opener = (IP(src=peer, dst=local) if version == 4 else IPv6(src=peer, dst=local)) / UDP(
            sport=peer_port, dport=local_port
        )
        setup = (bytes(opener),)
    return Sent(kind, version, local, local_port, peer, peer_port, payload, flags, tuple(wire), setup)


# -- checks --------------------------------------------------------------------------

# What a fresh stack may say about a packet l3l4 emitted: nothing about its form.
# (BAD_ICMP: a reassembly time exceeded may quote the first fragment of an echo.)
NOT_ABOUT_FORM = {
    DropReason.TCP_NO_CONNECTION,
    DropReason.ICMP_UNHANDLED,
    DropReason.ICMP_NO_FLOW,
    DropReason.BAD_ICMP,
}


def assert_well_formed(packets: list[bytearray]) -> None:
    """Every packet the stack emits is one a fresh stack takes apart without complaint."""
    for packet in packets:
        checker = Stack(CONFIG)
        checker.l3_rx(bytes(packet), 0.0)
        complaints = {reason for reason, count in checker.stats.drops.items() if count} - NOT_ABOUT_FORM
        assert not complaints, f"emitted a malformed packet ({complaints}): {bytes(packet).hex()}"


def feed(stack: Stack[bytearray], packet: bytes, now: float) -> Output[bytearray]:
    """Feed one packet and check "accepted or counted": it produced an event or a packet,
    was taken into reassembly, or was counted as dropped (and then left no other trace)."""
    drops = dict(stack.stats.drops)
    fragments = stack.stats.fragments_received
    rx = stack.stats.rx_packets
    out = stack.l3_rx(packet, now)
    delta = {reason: stack.stats.drops[reason] - drops[reason] for reason in DropReason}
    dropped = sum(delta.values())
    taken = stack.stats.fragments_received - fragments
    assert stack.stats.rx_packets == rx + 1
    assert dropped + taken >= 1 or out.events or out.packets, f"silently ignored: {packet.hex()}"
    assert dropped <= 1 and taken <= 1
    if dropped:
        [reason] = [reason for reason, count in delta.items() if count]
        assert not any(isinstance(event, DataReceived) for event in out.events)
        if reason not in TCP_REASONS:
            # Only TCP answers what it drops (resets, ACKs); anything else leaves no trace.
            assert not out.events and not out.packets and out.flow is None, f"dropped but acted on: {packet.hex()}"
    where = layout(packet)
    for event in out.events:
        if isinstance(event, DataReceived) and not taken and where is not None:
            # Not reassembled: the data is this packet's, from its addresses.
            assert event.flow.remote_ip.packed == where.src and event.flow.local_ip.packed == where.dst
            assert event.data in packet[where.l4 + 8 :]
        if isinstance(event, (DataReceived, ErrorReceived)):
            assert out.flow == event.flow
    assert_well_formed(out.packets)
    return out


def data_events(outs: list[Output[bytearray]]) -> list[DataReceived]:
    return [event for out in outs for event in out.events if isinstance(event, DataReceived)]


def check_intact(
    sent: Sent, outs: list[Output[bytearray]], drops: dict[DropReason, int], flow_open: bool, tcp_full: bool = False
) -> None:
    """What an intact datagram must produce, over all its packets, from a stack that
    has no TCP connection for it (and has ``Config.max_tcp_flows`` others if
    ``tcp_full``)."""
    events = [event for out in outs for event in out.events]
    packets = [packet for out in outs for packet in out.packets]
    dropped = {reason: count for reason, count in drops.items() if count}
    if sent.kind == "udp":
        assert data_events(outs) == [DataReceived(sent.flow, sent.payload)]
        assert dropped == {}
    elif sent.kind == "tcp" and sent.tcp_flags & (SYN | ACK | RST | FIN) == SYN and not tcp_full:
        # Any address, any port: a SYN is answered with a SYN-ACK (FlowOpened waits for
        # the handshake to complete).
        assert dropped == {} and events == [] and len(packets) == 1
    elif sent.kind == "tcp":
        reason = DropReason.TCP_FLOW_LIMIT if sent.tcp_flags & (SYN | ACK | RST | FIN) == SYN else DropReason.TCP_NO_CONNECTION
        assert dropped == {reason: 1} and events == []
        assert len(packets) == (0 if sent.tcp_flags & RST else 1)
    elif sent.kind == "echo":
        assert dropped == {} and events == [] and packets
    elif flow_open:
        assert dropped == {}
        errors = [event for event in events if isinstance(event, ErrorReceived)]
        assert [event.flow for event in errors] == [sent.flow]
    else:
        assert dropped == {DropReason.ICMP_NO_FLOW: 1} and events == []


# -- the properties ------------------------------------------------------------------


@fuzz(600)
@given(
    st.one_of(
        st.binary(max_size=1600),
        st.tuples(st.sampled_from(b"\x45\x46\x4f\x60\x6f"), st.binary(max_size=1600)).map(
            lambda pair: bytes((pair[0],)) + pair[1]
        ),
    ),
    st.sampled_from((bytes, bytearray, memoryview)),
)
def test_random_bytes_never_raise(data: bytes, container: type[bytes] | type[bytearray] | type[memoryview]) -> None:
    stack = Stack(CONFIG)
    out = stack.l3_rx(container(data), 0.0)
    assert stack.stats.rx_packets == 1 and stack.stats.rx_bytes == len(data)
    assert stack.stats.dropped + stack.stats.fragments_received >= 1 or out.events or out.packets


@fuzz(400)
@given(st.binary(min_size=20, max_size=1600), st.sampled_from((4, 6)), st.sampled_from((1, 6, 17, 58, 0, 44, 60)))
def test_random_transport_behind_a_valid_header_never_raises(data: bytes, version: int, proto: int) -> None:
    """Random bytes behind a header that passes: lengths, checksums and addresses fixed,
    so the transport and ICMP parsers see the garbage."""
    packet = bytearray(data)
    if version == 4:
        packet[0], packet[9] = 0x45, proto
        packet[2:4] = len(packet).to_bytes(2, "big")
        packet[6:8] = b"\0\0"
        packet[8] = packet[8] or 1
        packet[12:20] = bytes((192, 0, 2, 1, 203, 0, 113, 5))
    else:
        packet[:8] = bytes((0x60, 0, 0, 0)) + max(len(packet) - 40, 0).to_bytes(2, "big") + bytes((proto, 64))
        packet += bytes(max(40 - len(packet), 0))
        packet[8:40] = IPv6Address("2001:db8::1").packed + IPv6Address("2001:db8::5").packed
    refresh_checksums(packet)
    stack = Stack(CONFIG)
    feed(stack, bytes(packet), 0.0)


def run(stack: Stack[bytearray], sent: Sent, wire: list[bytes]) -> list[Output[bytearray]]:
    """Feed a datagram's setup, then ``wire``; then check the reassembly timer."""
    for packet in sent.setup:
        feed(stack, packet, 0.0)
    outs = [feed(stack, packet, 0.0) for packet in wire]
    assert stack.stats.rx_packets == len(sent.setup) + len(wire)
    # Whatever is still held for reassembly goes in time: afterwards no timer is due
    # (fragments were all due at fragment_timeout), and each datagram given up on held
    # at least one fragment.
    timeouts = stack.stats.drops[DropReason.FRAGMENT_TIMEOUT]
    out = stack.l4_poll(CONFIG.fragment_timeout)
    assert_well_formed(out.packets)
    deadline = stack.next_deadline()
    assert deadline is None or deadline > CONFIG.fragment_timeout
    expired = stack.stats.drops[DropReason.FRAGMENT_TIMEOUT] - timeouts
    assert expired <= stack.stats.fragments_received - stack.stats.fragments_reassembled
    return outs


@pytest.mark.parametrize("kind", ["udp", "tcp", "echo", "error"])
@fuzz(50)
@given(data=st.data())
def test_intact_packets_get_their_answer(kind: str, data: st.DataObject) -> None:
    """Valid packets, whole or in fragments in any order: a UDP datagram is delivered
    once, intact; a SYN gets a SYN-ACK and other TCP a reset (unless it is one); echo
    is answered; an error reaches its flow."""
    sent = data.draw(datagrams(kinds=(kind,)), label="sent")
    stack = Stack(CONFIG)
    outs = run(stack, sent, list(sent.wire))
    # An error's setup has opened the flow it quotes; nothing else is ever dropped.
    check_intact(sent, outs, stack.stats.drops, flow_open=bool(sent.setup))
    assert stack.stats.fragments_received == (len(sent.wire) if sent.fragmented else 0)
    assert stack.stats.fragments_reassembled == int(sent.fragmented)


@fuzz(300)
@given(datagrams(), st.data())
def test_every_packet_is_accepted_or_counted(sent: Sent, data: st.DataObject) -> None:
    """The same packets, some mutated (bytes flipped, cut, extended, header fields
    overwritten, sometimes with lengths and checksums repaired after), fragments
    sometimes duplicated: each is accepted, taken for reassembly, or counted."""
    wire = list(sent.wire)
    plan = data.draw(st.lists(st.one_of(st.none(), mutations), min_size=len(wire), max_size=len(wire)))
    if all(mutation is None for mutation in plan):
        plan[data.draw(st.integers(0, len(wire) - 1))] = data.draw(mutations)
    wire = [packet if mutation is None else mutate(packet, mutation) for packet, mutation in zip(wire, plan)]
    if data.draw(st.booleans(), label="duplicate"):
        wire.insert(data.draw(st.integers(0, len(wire))), wire[data.draw(st.integers(0, len(wire) - 1))])
    run(Stack(CONFIG), sent, wire)


@dataclass(frozen=True)
class Step:
    sent: Sent
    mutation: tuple[Mutation | None, ...] | None
    """None: sent intact. Else one optional mutation per packet on the wire."""
    advance: float
    poll: bool


@st.composite
def steps(draw: st.DrawFn) -> Step:
    sent = draw(datagrams(few_v4, few_v6, few_ports))
    mutation = None
    if draw(st.booleans()):
        size = len(sent.wire)
        mutation = tuple(draw(st.lists(st.one_of(st.none(), mutations), min_size=size, max_size=size)))
    return Step(sent, mutation, draw(st.sampled_from((0.0, 0.5, 5.0, 90.0))), draw(st.booleans()))


@fuzz(45)
@given(st.lists(steps(), min_size=12, max_size=30))
def test_a_stream_into_one_stack(stream: list[Step]) -> None:
    """Intact and mutated datagrams from a few addresses and ports into one stack with
    small flow caps, time moving on and timers run: nothing raises, every intact UDP
    datagram is delivered once with exactly its payload on its flow, and the flow
    tables stay within their caps and agree with the events announcing them."""
    stack = Stack(SMALL)
    now = 0.0
    fed = 0
    open_flows: set[Flow] = set()

    def track(out: Output[bytearray]) -> None:
        for event in out.events:
            if isinstance(event, FlowOpened):
                assert event.flow not in open_flows
                open_flows.add(event.flow)
            elif isinstance(event, FlowClosed):
                open_flows.remove(event.flow)
            elif isinstance(event, (DataReceived, ErrorReceived)):
                assert event.flow in open_flows or event.flow.proto is Proto.TCP
        flows = stack.flows()
        udp = {flow for flow in flows if flow.proto is Proto.UDP}
        tcp = {flow for flow in flows if flow.proto is Proto.TCP}
        # Every UDP flow was announced; TCP ones are listed from the SYN on, but
        # announced only once the handshake completes.
        assert udp == {flow for flow in open_flows if flow.proto is Proto.UDP}
        assert {flow for flow in open_flows if flow.proto is Proto.TCP} <= tcp
        assert len(flows) == len(udp) + len(tcp)
        assert len(udp) <= SMALL.max_udp_flows and len(tcp) <= SMALL.max_tcp_flows

    def poll() -> None:
        out = stack.l4_poll(now)
        assert_well_formed(out.packets)
        track(out)

    for step in stream:
        now += step.advance
        if step.poll:
            poll()
        sent = step.sent
        if step.mutation is None and sent.fragmented:
            # Let stale fragments of mutated datagrams (which may share this one's
            # identification) time out, so that only this datagram's pieces meet.
            now += SMALL.fragment_timeout
            poll()
        flow_open = sent.flow in open_flows
        tcp_flow = Flow(Proto.TCP, sent.flow.local_ip, sent.local_port, sent.flow.remote_ip, sent.peer_port)
        tcp_flows = [flow for flow in stack.flows() if flow.proto is Proto.TCP]
        fresh = tcp_flow not in tcp_flows and "TIME_WAIT" not in stack.tcp_states()
        before = dict(stack.stats.drops)
        outs = []
        for index, packet in enumerate(sent.wire):
            mutation = step.mutation[index] if step.mutation is not None else None
            if mutation is not None:
                packet = mutate(packet, mutation)
            out = feed(stack, packet, now)
            fed += 1
            track(out)
            outs.append(out)
        if step.mutation is None and (sent.kind != "tcp" or fresh):
            drops = {reason: stack.stats.drops[reason] - before[reason] for reason in DropReason}
            check_intact(sent, outs, drops, flow_open, tcp_full=len(tcp_flows) >= SMALL.max_tcp_flows)
    assert stack.stats.rx_packets == fed
