"""``Stack``: the dispatcher. It owns the flow tables, the timers and the counters."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any, Generic, TypeVar, overload

from .buffers import ReadableBuffer, WritableBuffer
from .config import IPV6_MIN_MTU, Config
from .errors import FlowExistsError, PayloadTooLargeError, UnknownFlowError, UnsupportedError
from .events import CloseReason, DataReceived, ErrorReceived, FlowClosed, FlowOpened, Output
from .flow import Flow, Proto
from .ip.icmp_errors import error_kind, read_icmp_error
from .ip.output import PacketWriter
from .ip.reassembly import Reassembler
from .stats import DropReason, Stats
from .udp import UdpFlow, UdpTable
from .wire.icmp import (
    ICMP4_ECHO_REPLY,
    ICMP4_ECHO_REQUEST,
    ICMP4_TIME_EXCEEDED,
    ICMP6_ECHO_REPLY,
    ICMP6_ECHO_REQUEST,
    ICMP6_TIME_EXCEEDED,
    parse_icmp,
)
from .wire.ip import IPV4_HEADER, IPV6_HEADER, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, IpPacket, parse_ip
from .wire.malformed import Malformed
from .wire.tcp import ACK, FIN, RST, SYN, parse_tcp
from .wire.udp import UDP_HEADER, parse_udp

__all__ = ["Stack"]

P = TypeVar("P")
W = TypeVar("W", bytearray, memoryview)

_ZERO_PORT = b"\0\0"
_UDP_BYTE = bytes((PROTO_UDP,))
# RFC 792 / RFC 4443 §3.3: code 1 of time exceeded is "fragment reassembly time exceeded".
_REASSEMBLY_TIME_EXCEEDED = 1
# RFC 1812 §4.3.2.3 / RFC 792: an ICMPv4 error quotes the IP header and 8 bytes of data;
# RFC 4443 §2.4(c): ICMPv6 quotes as much as fits in the minimum MTU.
_ICMP4_QUOTE_DATA = 8
_ICMP6_QUOTE = IPV6_MIN_MTU - IPV6_HEADER - 8


def _memoryview(buffer: W) -> memoryview:
    return memoryview(buffer)


class Stack(Generic[P]):
    """A TCP/UDP/IP stack for any address, with no IO of its own.

    Feed it packets with :meth:`l3_rx`, application data with :meth:`l4_tx`, and time
    with :meth:`l4_poll`; every call returns an :class:`~l3l4.Output` of events and
    packets to transmit. Time is the caller's: ``now`` is a float in seconds on any
    monotonic clock.

    ``tx_buffer(size)`` lets outgoing packets be written straight into the caller's
    buffers (a pool, a device ring): it returns a writable buffer of exactly ``size``
    bytes, or ``None`` when none is free. ``tx_buffer_view(buffer)`` gives a writable
    memoryview of it, for buffer objects that are not themselves bytes-like. Without
    them every packet is a new ``bytearray``.
    """

    __slots__ = ("config", "stats", "_writer", "_udp", "_reassembler", "_verify", "_default_mtu")

    @overload
    def __init__(self: Stack[bytearray], config: Config | None = None) -> None: ...

    @overload
    def __init__(self: Stack[W], config: Config | None = None, *, tx_buffer: Callable[[int], W | None]) -> None: ...

    @overload
    def __init__(
        self,
        config: Config | None = None,
        *,
        tx_buffer: Callable[[int], P | None],
        tx_buffer_view: Callable[[P], memoryview],
    ) -> None: ...

    def __init__(
        self,
        config: Config | None = None,
        *,
        tx_buffer: Callable[[int], object] | None = None,
        tx_buffer_view: Callable[[Any], memoryview] | None = None,
    ) -> None:
        self.config = config = config if config is not None else Config()
        self.stats = Stats()
        key = hashlib.blake2s(config.secret if config.secret is not None else secrets.token_bytes(32)).digest()
        self._writer: PacketWriter[P] = PacketWriter(
            tx_buffer if tx_buffer is not None else bytearray,  # type: ignore[arg-type]
            tx_buffer_view if tx_buffer_view is not None else _memoryview,
            self.stats,
            config.ttl,
            key,
        )
        self._udp = UdpTable(config.udp_idle_timeout)
        self._reassembler = Reassembler(config)
        self._verify = not config.rx_checksum_verified
        self._default_mtu = {4: config.mtu, 6: max(config.mtu, IPV6_MIN_MTU)}

    # -- the packet side ---------------------------------------------------------------

    def l3_rx(self, packet: ReadableBuffer, now: float) -> Output[P]:
        """Take one incoming IPv4 or IPv6 packet.

        Never raises for bad input: a packet that cannot be used is dropped and counted
        in :attr:`stats` under its :class:`~l3l4.DropReason`. ``Output.flow`` is the flow
        the packet belonged to, if any.
        """
        out: Output[P] = Output()
        stats = self.stats
        stats.rx_packets += 1
        stats.rx_bytes += len(packet)
        try:
            ip = parse_ip(packet, self._verify, self.config.max_extension_headers)
            if ip.is_fragment:
                whole = self._reassembler.add(ip, now)
                stats.fragments_received += 1
                if whole is None:
                    return out
                stats.fragments_reassembled += 1
                ip = whole
            proto = ip.proto
            if proto == PROTO_UDP:
                self._udp_rx(ip, now, out)
            elif proto == PROTO_TCP:
                self._tcp_rx(ip, out)
            elif proto == (PROTO_ICMP if ip.version == 4 else PROTO_ICMPV6):
                self._icmp_rx(ip, out)
            else:
                raise Malformed(DropReason.UNSUPPORTED_PROTOCOL)
        except Malformed as error:
            stats.drops[error.reason] += 1
        return out

    def _udp_rx(self, ip: IpPacket, now: float, out: Output[P]) -> None:
        payload = parse_udp(ip, self._verify)
        ports = bytes(ip.payload[:4])
        sport = ports[:2]
        dport = ports[2:]
        if sport == _ZERO_PORT or dport == _ZERO_PORT:
            raise Malformed(DropReason.ZERO_PORT)
        key = _UDP_BYTE + ip.dst + dport + ip.src + sport
        state = self._udp.get(key)
        if state is None:
            state = self._open_udp(Flow.from_key(key), now, out)
        else:
            self._udp.touch(key, state, now)
        out.flow = state.flow
        out.events.append(DataReceived(state.flow, bytes(payload)))

    def _tcp_rx(self, ip: IpPacket, out: Output[P]) -> None:
        segment = parse_tcp(ip, self._verify)
        if segment.sport == 0 or segment.dport == 0:
            raise Malformed(DropReason.ZERO_PORT)
        self.stats.drops[DropReason.TCP_NO_CONNECTION] += 1
        flags = segment.flags
        # RFC 9293 §3.10.7.1: a segment for no connection is answered with a reset,
        # unless it is a reset itself.
        if flags & RST:
            return
        if flags & ACK:
            seq, ack, reply = segment.ack, 0, RST
        else:
            length = len(segment.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            seq, ack, reply = 0, (segment.seq + length) & 0xFFFFFFFF, RST | ACK
        self._writer.send_tcp(
            out.packets, ip.dst, ip.src, segment.dport, segment.sport, seq, ack, reply, 0, b"", b"",
            self._default_mtu[ip.version],
        )

    def _icmp_rx(self, ip: IpPacket, out: Output[P]) -> None:
        message = parse_icmp(ip, self._verify)
        icmp_type = message.icmp_type
        version = ip.version
        if icmp_type == (ICMP4_ECHO_REQUEST if version == 4 else ICMP6_ECHO_REQUEST):
            if not self.config.icmp_echo:
                raise Malformed(DropReason.ICMP_UNHANDLED)
            # RFC 792 (echo) and RFC 4443 §4.2: the reply returns identifier, sequence
            # number and data unchanged, from the address the request was sent to.
            if self._writer.send_icmp(
                out.packets,
                ip.dst,
                ip.src,
                ICMP4_ECHO_REPLY if version == 4 else ICMP6_ECHO_REPLY,
                0,
                message.rest,
                message.body,
                self._default_mtu[version],
            ):
                self.stats.icmp_echo_replied += 1
            return
        kind = error_kind(version, icmp_type)
        if kind is None:
            raise Malformed(DropReason.ICMP_UNHANDLED)
        error = read_icmp_error(ip, message, kind)
        state = self._udp.get(error.key)
        if state is None:
            raise Malformed(DropReason.ICMP_NO_FLOW)
        if error.mtu is not None and error.mtu < state.mtu:
            state.mtu = error.mtu
        self.stats.icmp_errors_received += 1
        out.flow = state.flow
        out.events.append(
            ErrorReceived(state.flow, error.kind, icmp_type, message.code, error.mtu, ip_address(ip.src))
        )

    # -- the application side ----------------------------------------------------------

    def l4_tx(self, flow: Flow, data: ReadableBuffer, now: float) -> Output[P]:
        """Send application data on a flow. For UDP, one call sends one datagram.

        ``Output.accepted`` is the number of bytes taken: all of them, or 0 when the
        ``tx_buffer`` allocator had no buffer (the datagram is dropped and counted).
        Raises :class:`~l3l4.UnknownFlowError` for a flow that is not open and
        :class:`~l3l4.PayloadTooLargeError` for a datagram IP cannot carry.
        """
        state = self._udp_state(flow)
        header = IPV4_HEADER if flow.version == 4 else IPV6_HEADER
        if len(data) > 65535 - header - UDP_HEADER:
            raise PayloadTooLargeError(f"{len(data)} bytes do not fit one UDP datagram over IPv{flow.version}")
        out: Output[P] = Output()
        if self._writer.send_udp(
            out.packets, state.local, state.remote, flow.local_port, flow.remote_port, data, state.mtu
        ):
            out.accepted = len(data)
        self._udp.touch(flow.key, state, now)
        return out

    def connect(self, flow: Flow, now: float) -> Output[P]:
        """Open a flow from this side. For UDP the flow exists at once (``FlowOpened``).

        Raises :class:`~l3l4.FlowExistsError` if it is already open.
        """
        if flow.proto is Proto.TCP:
            raise UnsupportedError("TCP connections are not available in this version")
        if self._udp.get(flow.key) is not None:
            raise FlowExistsError(f"{flow} is already open")
        out: Output[P] = Output()
        self._open_udp(flow, now, out)
        out.flow = flow
        return out

    def close(self, flow: Flow, now: float) -> Output[P]:
        """Close a flow. A UDP flow is forgotten at once (``FlowClosed(CLOSED)``)."""
        return self._forget(flow, CloseReason.CLOSED)

    def abort(self, flow: Flow, now: float) -> Output[P]:
        """Abort a flow. A UDP flow is forgotten at once (``FlowClosed(ABORTED)``)."""
        return self._forget(flow, CloseReason.ABORTED)

    def flows(self) -> list[Flow]:
        """Every open flow."""
        return [state.flow for state in self._udp]

    def path_mtu(self, flow: Flow) -> int:
        """The largest packet the stack sends on ``flow``, as lowered by ICMP."""
        return self._udp_state(flow).mtu

    # -- time --------------------------------------------------------------------------

    def l4_poll(self, now: float) -> Output[P]:
        """Run every timer due at ``now``: idle flows close, stale fragments go."""
        out: Output[P] = Output()
        while (state := self._udp.pop_idle(now)) is not None:
            self._closed(state.flow, CloseReason.IDLE, out)
        for expired in self._reassembler.expire(now):
            self.stats.drops[DropReason.FRAGMENT_TIMEOUT] += 1
            first = expired.first
            if first is not None and self.config.icmp_errors:
                self._send_reassembly_timeout(first, out)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`l4_poll` next has work, or ``None`` if no timer is set."""
        deadlines = [d for d in (self._udp.next_deadline(), self._reassembler.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    # -- internals ---------------------------------------------------------------------

    def _udp_state(self, flow: Flow) -> UdpFlow:
        if flow.proto is Proto.TCP:
            raise UnsupportedError("TCP connections are not available in this version")
        state = self._udp.get(flow.key)
        if state is None:
            raise UnknownFlowError(flow)
        return state

    def _open_udp(self, flow: Flow, now: float, out: Output[P]) -> UdpFlow:
        if len(self._udp) >= self.config.max_udp_flows:
            self._closed(self._udp.pop_oldest().flow, CloseReason.EVICTED, out)
        state = UdpFlow(flow, now, self._default_mtu[flow.version])
        self._udp.add(state)
        self.stats.flows_opened += 1
        out.events.append(FlowOpened(flow))
        return state

    def _forget(self, flow: Flow, reason: CloseReason) -> Output[P]:
        self._udp_state(flow)
        self._udp.remove(flow.key)
        out: Output[P] = Output()
        self._closed(flow, reason, out)
        return out

    def _closed(self, flow: Flow, reason: CloseReason, out: Output[P]) -> None:
        self.stats.flows_closed += 1
        out.events.append(FlowClosed(flow, reason))

    def _send_reassembly_timeout(self, first: IpPacket, out: Output[P]) -> None:
        """RFC 792 and RFC 8200 §4.5: tell the source its datagram was given up on, when
        its first fragment came (the quote then names the transport ports)."""
        if first.version == 4:
            quote = bytes(first.header) + bytes(first.payload[:_ICMP4_QUOTE_DATA])
            icmp_type = ICMP4_TIME_EXCEEDED
        else:
            quote = (bytes(first.header) + bytes(first.payload))[:_ICMP6_QUOTE]
            icmp_type = ICMP6_TIME_EXCEEDED
        self._writer.send_icmp(
            out.packets, first.dst, first.src, icmp_type, _REASSEMBLY_TIME_EXCEEDED, 0, quote,
            self._default_mtu[first.version],
        )
