"""Random segment sequences against a live connection: honest bytes, hostile framing.

A peer opens a connection, then sends whatever hypothesis draws: any flags, sequence
numbers around (and far from) the window, ACKs good and bad, random windows, random
option lists (timestamps, SACK blocks, garbage), time jumps; the stack sends data back
meanwhile. The content is the one thing the peer does not lie about: the byte at
stream offset ``i`` is always ``STREAM[i]``. So whatever the framing, after every
packet:

* the bytes delivered are exactly ``STREAM[:n]``: in order, none twice, none invented;
* RCV.NXT has moved by exactly the bytes delivered (plus one for the FIN);
* every packet fed is counted once, and dropped at most once;
* the buffers held stay within the connection's caps and return to zero when it ends;
* every packet the stack sends is a well-formed TCP segment with correct checksums.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.inet import inet_checksum
from support.spoof import ACK, FIN, PSH, RST, SYN, tcp_packet

from l3l4 import (
    Config,
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowClosed,
    FlowOpened,
    Proto,
    Stack,
    Writable,
)

MASK = 0xFFFFFFFF
PEER, LOCAL = "192.0.2.1", "203.0.113.80"
FLOW = Flow(Proto.TCP, ip_address(LOCAL), 80, ip_address(PEER), 40000)
PEER_ISN = 0x7FFFFF00  # close to a sign change of the 32-bit space
STREAM = random.Random(2024).randbytes(200_000)
CONFIG = Config(secret=b"live-flow-secret", tcp_receive_buffer=32 * 1024, tcp_send_buffer=16 * 1024, tcp_max_ooo_ranges=8)
URG, ECE, CWR = 0x20, 0x40, 0x80


@dataclass(frozen=True)
class Seg:
    offset: int
    """Stream offset of the first byte, relative to RCV.NXT (the peer's view of it)."""
    length: int
    flags: int
    ack: str
    ack_delta: int
    window: int
    options: bytes
    advance: float
    send: int
    """Bytes the application hands the stack before this segment."""


def option() -> st.SearchStrategy[bytes]:
    u32 = st.integers(0, MASK)
    return st.one_of(
        st.just(b"\x01"),
        st.integers(0, 0xFFFF).map(lambda v: b"\x02\x04" + v.to_bytes(2, "big")),
        st.integers(0, 255).map(lambda v: bytes((3, 3, v))),
        st.just(b"\x04\x02"),
        st.tuples(u32, u32).map(lambda t: b"\x08\x0a" + struct.pack("!II", *t)),
        st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(
            lambda blocks: bytes((5, 2 + 8 * len(blocks))) + b"".join(struct.pack("!II", *b) for b in blocks)
        ),
        st.binary(min_size=0, max_size=6).map(lambda v: bytes((254, 2 + len(v))) + v),
    )


@st.composite
def options(draw: st.DrawFn) -> bytes:
    raw = b""
    for item in draw(st.lists(option(), max_size=4)):
        if len(raw) + len(item) <= 40:
            raw += item
    return raw + b"\x00" * (-len(raw) % 4)


segments = st.builds(
    Seg,
    st.one_of(st.just(0), st.just(0), st.integers(-1500, 3000), st.integers(-3000, 40_000), st.integers(-(1 << 31), 1 << 31)),
    st.one_of(st.integers(0, 1460), st.just(0)),
    st.one_of(
        st.sampled_from((ACK, ACK | PSH, ACK | PSH, ACK | FIN, ACK | PSH | FIN)),
        st.integers(0, 0xFF).map(lambda flags: flags & ~RST),
        st.integers(0, 0xFF).filter(lambda flags: flags & RST == 0 or flags & 0x0F == 0x0F),
        st.sampled_from((RST, RST | ACK)),
    ),
    st.sampled_from(("nxt", "nxt", "una", "inside", "future", "past", "random")),
    st.integers(0, MASK),
    st.one_of(st.just(65535), st.integers(0, 0xFFFF)),
    st.one_of(st.just(b""), options()),
    st.sampled_from((0.0, 0.0, 0.01, 0.3, 2.0, 30.0)),
    st.sampled_from((0, 0, 0, 100, 3000, 20_000)),
)


def check_well_formed(packet: bytes) -> None:
    """An IPv4 TCP packet from LOCAL to PEER, lengths and checksums right."""
    assert packet[0] == 0x45 and int.from_bytes(packet[2:4], "big") == len(packet)
    assert inet_checksum(packet[:20]) == 0
    assert packet[12:16] == ip_address(LOCAL).packed and packet[16:20] == ip_address(PEER).packed
    segment = packet[20:]
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 6, len(segment))
    assert inet_checksum(pseudo + segment) == 0
    assert 20 <= (segment[12] >> 4) * 4 <= len(segment)


class Live:
    """The peer's side: what it sent, what the stack delivered, the invariants."""

    def __init__(self) -> None:
        self.stack = Stack(CONFIG)
        self.now = 0.0
        self.fed = 0
        self.delivered = bytearray()
        self.eof = False
        self.closed = False
        self.sent_by_stack = 0
        syn_ack = self.feed(tcp_packet(PEER, LOCAL, 40000, 80, PEER_ISN, 0, SYN, options=b"\x02\x04\x05\xb4"))[0]
        self.stack_isn = struct.unpack_from("!I", syn_ack, 24)[0]
        self.feed(tcp_packet(PEER, LOCAL, 40000, 80, PEER_ISN + 1, self.stack_isn + 1, ACK))
        assert self.stack.flow_info(FLOW).state == "ESTABLISHED"

    def feed(self, packet: bytes) -> list[bytes]:
        stats = self.stack.stats
        dropped = stats.dropped
        out = self.stack.l3_rx(packet, self.now)
        self.fed += 1
        assert stats.rx_packets == self.fed
        assert stats.dropped - dropped <= 1
        return self.take(out.events, out.packets)

    def take(self, events: Sequence[Event], packets: list[bytearray]) -> list[bytes]:
        for event in events:
            assert not self.closed, f"{event} after FlowClosed"
            if isinstance(event, DataReceived):
                assert not self.eof
                self.delivered += event.data
                assert self.delivered == STREAM[: len(self.delivered)], "delivered bytes differ from the stream"
            elif isinstance(event, EndOfStream):
                assert not self.eof
                self.eof = True
            elif isinstance(event, FlowClosed):
                self.closed = True
            else:
                assert isinstance(event, (FlowOpened, Writable))
        raw = [bytes(packet) for packet in packets]
        for packet in raw:
            check_well_formed(packet)
        self.check()
        return raw

    def gone(self) -> bool:
        """Whether the connection has ended (a reset, a timeout)."""
        return self.closed

    def check(self) -> None:
        usage = self.stack.usage()
        assert 0 <= usage.tcp_buffer_bytes <= CONFIG.tcp_receive_buffer + CONFIG.tcp_send_buffer
        if self.closed:
            assert usage.tcp_buffer_bytes == 0
            return
        info = self.stack.flow_info(FLOW)
        expected = (PEER_ISN + 1 + len(self.delivered) + (1 if self.eof else 0)) & MASK
        assert info.rcv_nxt == expected
        assert 0 <= info.bytes_in_flight <= info.bytes_queued + 2
        assert info.bytes_queued <= CONFIG.tcp_send_buffer

    def step(self, seg: Seg) -> None:
        self.now += seg.advance
        deadline = self.stack.next_deadline()
        if deadline is not None and deadline <= self.now:
            out = self.stack.l4_poll(self.now)
            self.take(out.events, out.packets)
        if self.gone():
            return
        if seg.send:
            out = self.stack.l4_tx(FLOW, STREAM[: seg.send], self.now)
            self.take(out.events, out.packets)
        if self.gone():
            return
        info = self.stack.flow_info(FLOW)
        start = len(self.delivered) + (1 if self.eof else 0) + seg.offset
        # Honest content wherever the stream has some; before its first byte (the SYN
        # and earlier) any filler, which must never be delivered. Offsets stay within
        # 2**31 of RCV.NXT, so no sequence number aliases into the window.
        payload = (bytes(max(0, -start)) + STREAM[max(0, start) : max(0, start + seg.length)])[: seg.length]
        acks = {
            "una": info.snd_una,
            "nxt": info.snd_nxt,
            "inside": info.snd_una + seg.ack_delta % max(1, info.bytes_in_flight + 1),
            "future": info.snd_nxt + 1 + seg.ack_delta % 100_000,
            "past": info.snd_una - 1 - seg.ack_delta % (1 << 31),
            "random": seg.ack_delta,
        }
        seq = PEER_ISN + 1 + start
        self.feed(
            tcp_packet(
                PEER, LOCAL, 40000, 80, seq & MASK, acks[seg.ack] & MASK, seg.flags, window=seg.window,
                options=seg.options, payload=payload,
            )
        )


@settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(segments, min_size=10, max_size=80))
def test_random_segments_against_a_live_flow_keep_the_stream_whole(plan: list[Seg]) -> None:
    live = Live()
    for seg in plan:
        live.step(seg)
        if live.closed:
            # A reset (or a timeout) ended it: everything held is given back.
            assert live.stack.usage().tcp_buffer_bytes == 0 and live.stack.tcp_states() == {}
            live = Live()
    live.stack.abort(FLOW, live.now)
    assert live.stack.usage().tcp_buffer_bytes == 0 and live.stack.tcp_states() == {}


def test_an_honest_peer_in_random_order_delivers_the_whole_stream() -> None:
    """A control for the property: the same machinery, segments of the first 60 KB in a
    shuffled order with duplicates, delivers every byte once, in order."""
    live = Live()
    rng = random.Random(5)
    pieces = [(offset, min(1000, 60_000 - offset)) for offset in range(0, 60_000, 1000)]
    order = pieces + rng.sample(pieces, 20)
    rng.shuffle(order)
    for offset, length in order + pieces:
        seq = PEER_ISN + 1 + offset
        live.feed(tcp_packet(PEER, LOCAL, 40000, 80, seq, live.stack_isn + 1, ACK, payload=STREAM[offset : offset + length]))
        live.now += 0.001
    assert bytes(live.delivered) == STREAM[:60_000]
