"""A scapy peer talking to one stack over TCP, with a clock the test drives.

The peer builds its segments with scapy, feeds them to ``stack.l3_rx`` and parses every
packet the stack sends back with scapy: each reply must be TCP between the two ends of
the flow, and scapy's recomputed checksums must equal the stack's. It keeps the little
state a real peer would (its own sequence number, how far it has received, the last
timestamp to echo) so that tests only spell out what they are about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from l3l4 import Config, DataReceived, Event, Flow, FlowOpened, Output, Proto, Stack
from scapy.all import IP, TCP, IPv6, Raw

__all__ = ["MASK", "SECRET", "Options", "Peer", "Result", "Segment", "data_of", "make_stack", "parse", "syn_options"]

MASK = 0xFFFFFFFF
SECRET = b"0123456789abcdef"


def make_stack(**overrides: Any) -> Stack[bytearray]:
    """A stack with a fixed secret (reproducible ISNs; ``secret`` overrides it too) and
    the given Config fields."""
    return Stack(Config(**{"secret": SECRET, **overrides}))

Options = list[tuple[str, Any]]
"""TCP options as scapy spells them: ``[("MSS", 1460), ("NOP", None), ...]``."""


@dataclass(frozen=True)
class Segment:
    """One TCP segment the stack sent, as scapy parsed it."""

    version: int
    src: str
    dst: str
    sport: int
    dport: int
    flags: str
    """scapy's flag letters in header order, e.g. ``"SA"``, ``"A"``, ``"PA"``, ``"FA"``, ``"R"``."""
    seq: int
    ack: int
    window: int
    """The raw 16-bit window field (unscaled)."""
    options: tuple[tuple[str, Any], ...]
    payload: bytes
    df: bool
    """IPv4 Don't Fragment (always False over IPv6)."""
    hop_limit: int
    """IPv4 TTL or IPv6 hop limit."""
    raw: bytes
    """The packet as the stack sent it."""

    def option(self, name: str) -> Any:
        """The value of the first option called ``name`` (scapy's name), else None."""
        for kind, value in self.options:
            if kind == name:
                return value
        return None

    @property
    def option_kinds(self) -> list[str]:
        """The options present, in wire order, without padding (NOP, EOL)."""
        return [kind for kind, _ in self.options if kind not in ("NOP", "EOL")]

    @property
    def mss(self) -> int | None:
        value = self.option("MSS")
        return None if value is None else int(value)

    @property
    def wscale(self) -> int | None:
        value = self.option("WScale")
        return None if value is None else int(value)

    @property
    def sack_permitted(self) -> bool:
        return "SAckOK" in self.option_kinds

    @property
    def ts(self) -> tuple[int, int] | None:
        """(TSval, TSecr), or None without a timestamps option."""
        value = self.option("Timestamp")
        return None if value is None else (int(value[0]), int(value[1]))

    @property
    def sack(self) -> list[tuple[int, int]]:
        """SACK blocks as (left edge, right edge) pairs."""
        value = self.option("SAck")
        if value is None:
            return []
        edges = [int(v) for v in value]
        return list(zip(edges[::2], edges[1::2], strict=True))

    @property
    def seg_len(self) -> int:
        """Sequence space used: payload plus one for SYN and for FIN."""
        return len(self.payload) + ("S" in self.flags) + ("F" in self.flags)


def _same_checksums(expected: bytes, data: bytes, tcp_offset: int) -> bool:
    """``data`` is ``expected``, or differs only by a TCP checksum of 0xFFFF where 0x0000
    was computed: the same number in one's complement (RFC 1624 §3), which Linux writes
    when it completes a zero checksum in software (``CSUM_MANGLED_0``)."""
    if expected == data:
        return True
    at = tcp_offset + 16
    return (
        expected[at : at + 2] == b"\0\0" and data[at : at + 2] == b"\xff\xff"
        and expected[:at] == data[:at] and expected[at + 2 :] == data[at + 2 :]
    )


def parse(packet: bytes | bytearray, version: int) -> Segment:
    """Parse a packet the stack sent, and check its checksums against scapy's."""
    data = bytes(packet)
    parsed = IP(data) if version == 4 else IPv6(data)
    assert TCP in parsed, f"not a TCP packet: {parsed!r}"
    rebuilt = parsed.copy()
    if version == 4:
        del rebuilt[IP].chksum
    del rebuilt[TCP].chksum
    assert _same_checksums(bytes(rebuilt), data, len(data) - len(parsed[TCP])), (
        "scapy's recomputed checksums differ from the stack's"
    )
    tcp = parsed[TCP]
    if version == 4:
        assert parsed.len == len(data)
        df, hop_limit = bool(parsed.flags.DF), int(parsed.ttl)
    else:
        assert parsed.plen + 40 == len(data)
        df, hop_limit = False, int(parsed.hlim)
    return Segment(
        version=version,
        src=str(parsed.src),
        dst=str(parsed.dst),
        sport=int(tcp.sport),
        dport=int(tcp.dport),
        flags=str(tcp.flags),
        seq=int(tcp.seq),
        ack=int(tcp.ack),
        window=int(tcp.window),
        options=tuple((str(kind), value) for kind, value in tcp.options),
        payload=bytes(tcp.payload),
        df=df,
        hop_limit=hop_limit,
        raw=data,
    )


def syn_options(
    tsval: int | None, *, mss: int | None = 1460, sack: bool = True, wscale: int | None = 0
) -> Options:
    """The options of a Linux-like SYN: MSS, SACK-permitted, timestamps, window scale."""
    options: Options = []
    if mss is not None:
        options.append(("MSS", mss))
    if sack:
        options.append(("SAckOK", b""))
    if tsval is not None:
        options.append(("Timestamp", (tsval, 0)))
    if wscale is not None:
        options += [("NOP", None), ("WScale", wscale)]
    return options


@dataclass
class Result:
    """What one call into the stack produced, with the packets parsed."""

    events: list[Event]
    segments: list[Segment]
    accepted: int = 0

    @property
    def only(self) -> Segment:
        """The one segment sent (fails unless exactly one was)."""
        assert len(self.segments) == 1, f"expected one segment, got {self.segments}"
        return self.segments[0]


@dataclass
class Peer:
    """The remote end of one TCP flow, played with scapy against ``stack``.

    ``addr``/``port`` are the peer's, ``stack_addr``/``stack_port`` the stack's end.
    ``seq`` is the peer's next sequence number, ``rcv_nxt`` the next one it expects
    from the stack (``None`` before the stack's SYN). ``window`` is the window field the
    peer's segments carry unless told otherwise.
    """

    stack: Stack[bytearray]
    addr: str = "192.0.2.1"
    port: int = 40000
    stack_addr: str = "203.0.113.80"
    stack_port: int = 80
    now: float = 0.0
    isn: int = 0x10000000
    window: int = 65535
    ts_base: int = 500_000
    seq: int = field(init=False)
    rcv_nxt: int | None = field(init=False, default=None)
    stack_isn: int | None = field(init=False, default=None)
    version: int = field(init=False)
    timestamps: bool = field(init=False, default=False)
    ts_recent: int = field(init=False, default=0)
    """The last TSval the stack sent, echoed in our TSecr."""
    events: list[Event] = field(init=False, default_factory=list)
    """Every event of every call made through this peer."""
    sent: list[Segment] = field(init=False, default_factory=list)
    """Every segment the stack sent through this peer's calls."""
    received: bytearray = field(init=False, default_factory=bytearray)
    """The stack's data in order, as far as ``rcv_nxt``."""

    def __post_init__(self) -> None:
        self.seq = self.isn
        self.version = ip_address(self.addr).version
        assert ip_address(self.stack_addr).version == self.version

    @property
    def flow(self) -> Flow:
        """The flow as the stack names it (its end is the local one)."""
        return Flow(Proto.TCP, ip_address(self.stack_addr), self.stack_port, ip_address(self.addr), self.port)

    # -- the clock ---------------------------------------------------------------------

    def at(self, now: float) -> Peer:
        """Move the clock to ``now`` (never back)."""
        assert now >= self.now, f"time runs forward: {now} < {self.now}"
        self.now = now
        return self

    def tsval(self) -> int:
        """The peer's timestamp clock: one tick per millisecond."""
        return (self.ts_base + int(self.now * 1000)) & MASK

    # -- building and sending segments -------------------------------------------------

    def build(
        self,
        flags: str = "A",
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        options: Options | None = None,
        tsval: int | None = None,
    ) -> Any:
        """A scapy packet from the peer. Defaults: our ``seq``, ACK of ``rcv_nxt`` when
        the A flag is set, our ``window``, and a timestamps option if negotiated."""
        if options is None:
            options = []
            if self.timestamps:
                stamp = self.tsval() if tsval is None else tsval
                options = [("NOP", None), ("NOP", None), ("Timestamp", (stamp, self.ts_recent))]
        if ack is None:
            ack = (self.rcv_nxt or 0) if "A" in flags else 0
        tcp = TCP(
            sport=self.port,
            dport=self.stack_port,
            flags=flags,
            seq=self.seq if seq is None else seq,
            ack=ack,
            window=self.window if window is None else window,
            options=options,
        )
        ip = IP(src=self.addr, dst=self.stack_addr) if self.version == 4 else IPv6(src=self.addr, dst=self.stack_addr)
        packet = ip / tcp
        if payload:
            packet = packet / Raw(payload)
        return packet

    def send(
        self,
        flags: str = "A",
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        options: Options | None = None,
        tsval: int | None = None,
    ) -> Result:
        """Send one segment (see :meth:`build`). With the default ``seq``, our sequence
        number then moves past the payload, SYN and FIN."""
        packet = self.build(flags, payload, seq=seq, ack=ack, window=window, options=options, tsval=tsval)
        if seq is None:
            self.seq = (self.seq + len(payload) + ("S" in flags) + ("F" in flags)) & MASK
        return self.inject(packet)

    def inject(self, packet: Any) -> Result:
        """Feed any scapy packet to the stack at the current time."""
        return self.collect(self.stack.l3_rx(bytes(packet), self.now))

    def collect(self, out: Output[bytearray]) -> Result:
        """Parse and check what a call produced, and follow the stack's sequence space."""
        segments = [parse(packet, self.version) for packet in out.packets]
        for segment in segments:
            assert (segment.src, segment.sport) == (self.stack_addr, self.stack_port), segment
            assert (segment.dst, segment.dport) == (self.addr, self.port), segment
            self.sent.append(segment)
            if "R" in segment.flags:
                continue
            if "S" in segment.flags and self.rcv_nxt is None:
                self.stack_isn = segment.seq
                self.rcv_nxt = segment.seq
            stamp = segment.ts
            if stamp is not None:
                self.ts_recent = stamp[0]
            if self.rcv_nxt is not None and segment.seq == self.rcv_nxt and segment.seg_len:
                self.received += segment.payload
                self.rcv_nxt = (self.rcv_nxt + segment.seg_len) & MASK
        self.events += out.events
        return Result(list(out.events), segments, out.accepted)

    # -- opening -----------------------------------------------------------------------

    def syn(self, options: Options | None = None, *, window: int | None = None, flags: str = "S") -> Result:
        """Send our SYN (default options: see :func:`syn_options`; ``flags="SEC"`` for
        an ECN-setup SYN)."""
        if options is None:
            options = syn_options(self.tsval())
        self.timestamps = any(kind == "Timestamp" for kind, _ in options)
        self.seq = self.isn
        return self.send(flags, options=options, window=window)

    def handshake(
        self, options: Options | None = None, *, window: int | None = None, rtt: float = 0.0, flags: str = "S"
    ) -> Segment:
        """SYN, SYN-ACK, then ACK ``rtt`` seconds later: returns the SYN-ACK, after
        checking FlowOpened came and nothing was sent in answer to the ACK."""
        syn_ack = self.syn(options, window=window, flags=flags).only
        assert syn_ack.flags.replace("E", "") == "SA" and syn_ack.ack == (self.isn + 1) & MASK, syn_ack
        self.at(self.now + rtt)
        done = self.send("A")
        assert done.events == [FlowOpened(self.flow)], done.events
        assert done.segments == []
        return syn_ack

    def connect(self) -> Result:
        """Have the stack open the flow actively (its SYN comes back)."""
        return self.collect(self.stack.connect(self.flow, self.now))

    # -- the stack's other calls -------------------------------------------------------

    def tx(self, data: bytes) -> Result:
        return self.collect(self.stack.l4_tx(self.flow, data, self.now))

    def close(self) -> Result:
        return self.collect(self.stack.close(self.flow, self.now))

    def abort(self) -> Result:
        return self.collect(self.stack.abort(self.flow, self.now))

    def consumed(self, count: int) -> Result:
        return self.collect(self.stack.consumed(self.flow, count, self.now))

    def poll(self, now: float | None = None) -> Result:
        """Run the stack's timers at ``now`` (default: the current time)."""
        if now is not None:
            self.at(now)
        return self.collect(self.stack.l4_poll(self.now))

    def poll_deadline(self) -> Result:
        """Jump to the stack's next deadline and run its timers there."""
        deadline = self.stack.next_deadline()
        assert deadline is not None, "no timer is set"
        return self.poll(deadline)

    def state(self) -> str:
        return self.stack.flow_info(self.flow).state

    def snd_nxt(self) -> int:
        """The stack's SND.NXT, as the peer should expect it in our ACK field."""
        return self.stack.flow_info(self.flow).snd_nxt


def data_of(events: Sequence[Event]) -> bytes:
    """The bytes of every DataReceived among ``events``, in order."""
    return b"".join(event.data for event in events if isinstance(event, DataReceived))
