"""``Replay``: feed a capture's packets into a ``Stack``, with their timestamps as ``now``.

The packets chosen as inbound (by destination, or by the capture's own direction marks)
go to ``stack.l3_rx``; the stack's timers run at their deadlines in between; an
application (a handler, as for the TUN loop) answers the events; what the stack sends
can be written to a capture. Nothing random is involved beyond ``Config.secret``: the
same capture, configuration and secret give the same output, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import IO, Literal

from l3l4 import Flow, Output, Proto, Stack, UnknownFlowError
from l3l4.apps import Handler, Sink

from ._ip import PROTO_TCP, Transport, complete_checksum, partial_checksum, ports, transport, verify_checksum
from .formats import CapturedPacket, CaptureWriter, PathLike, detect_format, open_source
from .linktypes import Direction

__all__ = ["Checksums", "Inbound", "Replay", "ReplayStatistics", "replay"]

Checksums = Literal["verify", "offload", "trust"]
"""How a replay treats the TCP/UDP checksums of the packets it feeds:

- ``"verify"``: the stack verifies every one (as ``Config`` says);
- ``"offload"``: packets whose checksum field holds only the pseudo-header sum (a
  capture taken on a host with checksum offload) have it completed, as the NIC would,
  and go in as verified (as the TUN driver passes such packets); the others are
  verified;
- ``"trust"``: none is verified.
"""

_SYN, _ACK = 0x02, 0x10
_OPT_END, _OPT_NOP, _OPT_SACK, _OPT_TIMESTAMP = 0, 1, 5, 8


@dataclass(frozen=True, slots=True)
class _Rule:
    network: IPv4Network | IPv6Network | None
    port: int | None

    def matches(self, dst: bytes, dport: int | None) -> bool:
        if self.network is not None:
            if len(dst) != (4 if self.network.version == 4 else 16):
                return False
            if ip_address(dst) not in self.network:
                return False
        return self.port is None or dport is None or dport == self.port


def _parse_rule(spec: str) -> _Rule:
    text = spec.strip()
    if not text:
        raise ValueError("empty")
    port: int | None = None
    address = text
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad inbound selector {spec!r}: expected [address]:port")
            port = int(rest[1:])
    elif text.startswith(":"):
        address, port = "", int(text[1:])
    elif text.count(":") == 1:  # IPv4 (or prefix) and a port
        address, _, port_text = text.partition(":")
        port = int(port_text)
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"bad inbound selector {spec!r}: port {port} is outside 1..65535")
    network = ip_network(address, strict=False) if address else None
    return _Rule(network, port)


class Inbound:
    """Which captured packets a replay feeds to the stack.

    ``Inbound.parse(specs)`` takes one selector or several (a packet matching any is
    taken):

    - ``"all"``: every IP packet;
    - ``"marked"``: the packets the capture marks as received (pcapng direction flags,
      as :class:`~l3l4_pcap.Recorder` writes them; Linux cooked "to us" packets);
    - a destination: ``"203.0.113.7"``, ``"203.0.113.0/24"``, ``"2001:db8::/32"``,
      ``":80"`` (any address), ``"203.0.113.0/24:80"``, ``"[2001:db8::1]:443"``.

    A port applies to TCP and UDP packets that carry one: fragments after the first
    match on their address alone.
    """

    def __init__(self, rules: Sequence[_Rule] = (), *, everything: bool = False, marked: bool = False) -> None:
        self.rules = tuple(rules)
        self.everything = everything
        self.marked = marked

    @classmethod
    def parse(cls, specs: str | Sequence[str]) -> Inbound:
        if isinstance(specs, str):
            specs = [specs]
        if not specs:
            raise ValueError("no inbound selector")
        rules: list[_Rule] = []
        everything = marked = False
        for spec in specs:
            word = spec.strip().lower()
            if word == "all":
                everything = True
            elif word == "marked":
                marked = True
            else:
                try:
                    rules.append(_parse_rule(spec))
                except ValueError as error:
                    raise ValueError(f"bad inbound selector {spec!r}: {error}") from None
        return cls(rules, everything=everything, marked=marked)

    def matches(self, captured: CapturedPacket, packet: bytes | memoryview, where: Transport | None) -> bool:
        if self.everything:
            return True
        if self.marked and captured.direction is Direction.INBOUND:
            return True
        if not self.rules or where is None:
            return False
        found = ports(packet, where)
        dport = found[1] if found is not None else None
        return any(rule.matches(where.dst, dport) for rule in self.rules)


@dataclass(slots=True)
class ReplayStatistics:
    """What a replay did."""

    packets: int = 0
    """Packets read from the capture."""
    not_ip: int = 0
    """Frames with no IP packet in them (ARP, LLDP, unknown link types)."""
    not_inbound: int = 0
    """IP packets the ``Inbound`` selector left out."""
    fed: int = 0
    """Packets handed to ``stack.l3_rx``."""
    truncated: int = 0
    """Of those, packets the capture had cut short (the stack drops them)."""
    sent: int = 0
    """Packets the stack sent."""
    rewritten: int = 0
    """``adopt``: TCP segments whose acknowledgment was rewritten."""
    connected: int = 0
    """``adopt``: connections opened to take a SYN-ACK from a capture."""
    first: float | None = None
    """Timestamp of the first packet fed (the stack's clock starts there)."""
    last: float | None = None

    def as_dict(self) -> dict[str, int]:
        return {
            "packets": self.packets,
            "not_ip": self.not_ip,
            "not_inbound": self.not_inbound,
            "fed": self.fed,
            "truncated": self.truncated,
            "sent": self.sent,
            "rewritten": self.rewritten,
            "connected": self.connected,
        }


class Replay:
    """Feeds captured packets to a stack and keeps its clock.

    - ``inbound``: an :class:`Inbound`, or selector text for ``Inbound.parse``.
    - ``handler``: the application (``on_event(replay, event)``, as for the TUN loop);
      :class:`~l3l4_pcap.Sink` by default. It acts through this object's
      :meth:`send`, :meth:`close` and the rest.
    - ``output``: a :class:`~l3l4_pcap.CaptureWriter` that gets every packet fed
      (marked inbound, as fed) and every packet the stack sends (outbound).
    - ``adopt``: for captures between two other hosts. The stack answers a SYN with
      its own initial sequence number, so the peer's later acknowledgments would not
      fit; with ``adopt`` each inbound TCP segment's acknowledgment number is rewritten
      to what the stack has sent (``SND.NXT``), its timestamp echo to the stack's last
      timestamp and its SACK blocks blanked, and a SYN-ACK for which the stack has no
      connection first makes it ``connect``. The stack then receives both ends of every
      connection whose handshake is in the capture, as two flows, and reassembles each.
    - ``checksums``: see :data:`Checksums`.
    - ``time_shift``: added to every timestamp to make ``now``.

    Timestamps that go backwards (captures merged from several interfaces) are taken
    as the latest seen so far: the stack's clock never goes back.
    """

    def __init__(
        self,
        stack: Stack[bytearray],
        inbound: Inbound | str | Sequence[str],
        *,
        handler: Handler | None = None,
        output: CaptureWriter | None = None,
        adopt: bool = False,
        checksums: Checksums = "offload",
        time_shift: float = 0.0,
    ) -> None:
        if checksums not in ("verify", "offload", "trust"):
            raise ValueError(f"checksums must be 'verify', 'offload' or 'trust', not {checksums!r}")
        self._stack = stack
        self.inbound = inbound if isinstance(inbound, Inbound) else Inbound.parse(inbound)
        self.handler: Handler = handler if handler is not None else Sink()
        self.output = output
        self.adopt = adopt
        self.checksums: Checksums = checksums
        self.time_shift = time_shift
        self.now = 0.0
        self.statistics = ReplayStatistics()
        self._started = False
        self._timestamps: dict[bytes, bytes] = {}

    @property
    def stack(self) -> Stack[bytearray]:
        return self._stack

    # -- the application's calls (as on l3l4_tun.Loop) ----------------------------------

    def send(self, flow: Flow, data: bytes | bytearray | memoryview) -> int:
        out = self._stack.l4_tx(flow, data, self.now)
        self.dispatch(out)
        return out.accepted

    def connect(self, flow: Flow) -> None:
        self.dispatch(self._stack.connect(flow, self.now))

    def close(self, flow: Flow) -> None:
        self.dispatch(self._stack.close(flow, self.now))

    def abort(self, flow: Flow) -> None:
        self.dispatch(self._stack.abort(flow, self.now))

    def accept(self, flow: Flow) -> None:
        self.dispatch(self._stack.accept(flow, self.now))

    def reject(self, flow: Flow) -> None:
        self.dispatch(self._stack.reject(flow, self.now))

    def consumed(self, flow: Flow, count: int) -> None:
        self.dispatch(self._stack.consumed(flow, count, self.now))

    # -- driving ------------------------------------------------------------------------

    def dispatch(self, out: Output[bytearray]) -> None:
        """Write an Output's packets to the output capture, then hand its events to
        the handler."""
        if out.packets:
            self.statistics.sent += len(out.packets)
            for packet in out.packets:
                if self.output is not None:
                    self.output.write(packet, self.now, True)
                if self.adopt:
                    self._note_timestamp(packet)
        for event in out.events:
            self.handler.on_event(self, event)

    def advance(self, until: float) -> None:
        """Run the stack's timers that fall due up to ``until``, each at its deadline,
        and move the clock to ``until``."""
        stack = self._stack
        stuck = 0
        while True:
            deadline = stack.next_deadline()
            if deadline is None or deadline > until:
                break
            self.now = max(self.now, deadline)
            self.dispatch(stack.l4_poll(self.now))
            if stack.next_deadline() == deadline:
                stuck += 1
                if stuck > 1000:  # a timer that keeps itself due: leave it to the next packet
                    break
            else:
                stuck = 0
        self.now = max(self.now, until)

    def feed(self, captured: CapturedPacket) -> None:
        """Take one captured packet: feed it to the stack if it is inbound."""
        statistics = self.statistics
        statistics.packets += 1
        view = captured.ip()
        if view is None:
            statistics.not_ip += 1
            return
        packet = bytes(view)
        where = transport(packet)
        if not self.inbound.matches(captured, packet, where):
            statistics.not_inbound += 1
            return
        timestamp = captured.timestamp + self.time_shift
        if not self._started:
            self._started = True
            self.now = timestamp
            statistics.first = timestamp
        self.advance(timestamp)
        statistics.last = self.now
        statistics.fed += 1
        if captured.truncated:
            statistics.truncated += 1
        checksums = self.checksums
        trusted = checksums == "trust"
        if checksums == "offload" and where is not None and partial_checksum(packet, where):
            mutable = bytearray(packet)
            complete_checksum(mutable, where)  # what the NIC would have done
            packet, trusted = bytes(mutable), True
        if self.adopt and where is not None and where.proto == PROTO_TCP and not where.fragment:
            packet, trusted = self._adopt(packet, where, trusted)
        if self.output is not None:
            self.output.write(packet, self.now, False)
        self.dispatch(self._stack.l3_rx(packet, self.now, trusted))

    def run(
        self, packets: Iterable[CapturedPacket], *, linger: float = 0.0, progress: Callable[[int], None] | None = None
    ) -> ReplayStatistics:
        """Feed every packet, then run the timers for ``linger`` more seconds.
        ``progress(count)`` is called every 1024 packets."""
        count = 0
        for captured in packets:
            self.feed(captured)
            count += 1
            if progress is not None and not count & 1023:
                progress(count)
        self.finish(linger)
        return self.statistics

    def finish(self, linger: float = 0.0) -> None:
        """Run the timers that fall due within ``linger`` seconds of the clock."""
        self.advance(self.now + linger)

    # -- adopt ---------------------------------------------------------------------------

    def _note_timestamp(self, packet: bytearray) -> None:
        """Remember the last TSval the stack sent on each TCP flow (key: local
        address and port, remote address and port, as the packet names them)."""
        where = transport(packet)
        if where is None or where.proto != PROTO_TCP or not where.first:
            return
        tcp = where.offset
        end = tcp + (packet[tcp + 12] >> 4) * 4
        position = tcp + 20
        while position < end:
            kind = packet[position]
            if kind == _OPT_END:
                break
            if kind == _OPT_NOP:
                position += 1
                continue
            if position + 1 >= end or packet[position + 1] < 2:
                break
            length = packet[position + 1]
            if kind == _OPT_TIMESTAMP and length == 10:
                key = where.src + bytes(packet[tcp : tcp + 2]) + where.dst + bytes(packet[tcp + 2 : tcp + 4])
                self._timestamps[key] = bytes(packet[position + 2 : position + 6])
                return
            position += length

    def _adopt(self, packet: bytes, where: Transport, trusted: bool) -> tuple[bytes, bool]:
        tcp = where.offset
        if where.end - tcp < 20:
            return packet, trusted
        flags = packet[tcp + 13]
        if not flags & _ACK:
            return packet, trusted
        if not trusted and not verify_checksum(packet, where):
            return packet, trusted  # corrupt in the capture: the stack will drop it
        sport = int.from_bytes(packet[tcp : tcp + 2], "big")
        dport = int.from_bytes(packet[tcp + 2 : tcp + 4], "big")
        if not sport or not dport:
            return packet, trusted
        flow = Flow(Proto.TCP, ip_address(where.dst), dport, ip_address(where.src), sport)
        try:
            info = self._stack.flow_info(flow)
        except UnknownFlowError:
            if not flags & _SYN:
                return packet, trusted
            self.connect(flow)  # a SYN-ACK from the capture: be the end that sent the SYN
            self.statistics.connected += 1
            info = self._stack.flow_info(flow)
        mutable = bytearray(packet)
        mutable[tcp + 8 : tcp + 12] = info.snd_nxt.to_bytes(4, "big")
        echo = self._timestamps.get(where.dst + packet[tcp + 2 : tcp + 4] + where.src + packet[tcp : tcp + 2])
        end = min(tcp + (packet[tcp + 12] >> 4) * 4, where.end)
        position = tcp + 20
        while position < end:
            kind = mutable[position]
            if kind == _OPT_END:
                break
            if kind == _OPT_NOP:
                position += 1
                continue
            if position + 1 >= end or mutable[position + 1] < 2 or position + mutable[position + 1] > end:
                break
            length = mutable[position + 1]
            if kind == _OPT_SACK:
                mutable[position : position + length] = bytes((_OPT_NOP,)) * length
            elif kind == _OPT_TIMESTAMP and length == 10 and echo is not None:
                mutable[position + 6 : position + 10] = echo
            position += length
        complete_checksum(mutable, where)
        self.statistics.rewritten += 1
        return bytes(mutable), False


def replay(
    capture: PathLike | IO[bytes] | Iterable[CapturedPacket],
    stack: Stack[bytearray],
    inbound: Inbound | str | Sequence[str],
    *,
    output: PathLike | CaptureWriter | None = None,
    handler: Handler | None = None,
    adopt: bool = False,
    checksums: Checksums = "offload",
    linger: float = 0.0,
    time_shift: float = 0.0,
) -> ReplayStatistics:
    """Replay a capture (a file, or packets) through ``stack``; see :class:`Replay`.
    ``output`` may be a file name: pcapng unless it ends in ``.pcap``."""
    writer: CaptureWriter | None
    if output is None or isinstance(output, CaptureWriter):
        writer = output
    else:
        writer = CaptureWriter(output, detect_format(output), interfaces=["replay"])
    session = Replay(
        stack, inbound, handler=handler, output=writer, adopt=adopt, checksums=checksums, time_shift=time_shift
    )
    packets, reader = open_source(capture)
    try:
        return session.run(packets, linger=linger)
    finally:
        if reader is not None:
            reader.close()
        if writer is not None and writer is not output:
            writer.close()
