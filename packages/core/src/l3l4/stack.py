"""``Stack``: the dispatcher. It owns the flow tables, the timers and the counters."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any, Generic, TypeVar, overload

from .buffers import ReadableBuffer
from .config import IPV6_MIN_MTU, Config
from .errors import (
    FlowExistsError,
    FlowLimitError,
    InvalidStateError,
    PayloadTooLargeError,
    SendClosedError,
    UnknownFlowError,
)
from .events import CloseReason, DataReceived, ErrorReceived, FlowClosed, FlowOpened, Output, Writable
from .flow import Flow, Proto, flow_key
from .info import FlowInfo, Usage
from .ip.icmp_errors import error_kind, read_icmp_error
from .ip.output import PacketWriter
from .ip.reassembly import Reassembler
from .stats import DropReason, Stats
from .tcp.budget import BufferBudget
from .tcp.connection import ChallengeAckLimiter, Connection, State
from .tcp.cookies import SynCookies
from .tcp.isn import IsnGenerator
from .tcp.seq import MASK, seq_gt
from .timers import TimerQueue
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
from .wire.tcp import ACK, FIN, RST, SYN, TCP_HEADER, TcpSegment, parse_tcp
from .wire.udp import UDP_HEADER, parse_udp

__all__ = ["Stack"]

P = TypeVar("P")
W = TypeVar("W", bytearray, memoryview)

_ZERO_PORT = b"\0\0"
_UDP_BYTE = bytes((PROTO_UDP,))
_TCP_BYTE = bytes((PROTO_TCP,))
# RFC 792 / RFC 4443 §3.3: code 1 of time exceeded is "fragment reassembly time exceeded".
_REASSEMBLY_TIME_EXCEEDED = 1
# RFC 1812 §4.3.2.3 / RFC 792: an ICMPv4 error quotes the IP header and 8 bytes of data;
# RFC 4443 §2.4(c): ICMPv6 quotes as much as fits in the minimum MTU.
_ICMP4_QUOTE_DATA = 8
_ICMP6_QUOTE = IPV6_MIN_MTU - IPV6_HEADER - 8
# Connections not yet established that a peer's SYN opened (Config.max_tcp_half_open).
_HALF_OPEN = frozenset((State.SYN_RECEIVED, State.AWAITING_ACCEPT))


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
    them every packet is a new ``bytearray``. A TCP segment (or an ACK) that finds no
    buffer is not lost: it waits, and goes out at the next ``l3_rx``, ``l4_tx`` or
    ``l4_poll`` that finds one (``next_deadline()`` comes ``Config.tx_retry_interval``
    later); a datagram is dropped and counted.

    ``transmit(buffer, length)`` takes each packet as soon as it is written, before the
    next buffer is asked for (``Output.packets`` stays empty): a pool of one buffer that
    ``transmit`` returns to is enough. The view may then be longer than the packet (an
    mbuf): the packet fills its start and ``length`` says how much. With ``tx_errors``
    (a list), whatever these callables raise is appended there instead of raised in
    the middle of the stack's work; the packet is not sent (``TX_CALLBACK_FAILED``).
    :class:`~l3l4.CallbackStack` uses both.
    """

    __slots__ = (
        "config",
        "stats",
        "_writer",
        "_udp",
        "_tcp",
        "_time_wait",
        "_timers",
        "_isn",
        "_limiter",
        "_reassembler",
        "_verify",
        "_default_mtu",
        "_half_open",
        "_cookies",
        "_budget",
        "_budget_waiters",
        "_tx_waiting",
        "_tx_retry_at",
    )

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
        transmit: Callable[[P, int], None] | None = None,
        tx_errors: list[Exception] | None = None,
    ) -> None: ...

    def __init__(
        self,
        config: Config | None = None,
        *,
        tx_buffer: Callable[[int], object] | None = None,
        tx_buffer_view: Callable[[Any], memoryview] | None = None,
        transmit: Callable[[Any, int], None] | None = None,
        tx_errors: list[Exception] | None = None,
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
            config.tcp_checksum_offload,
            transmit,
            tx_errors,
        )
        self._udp = UdpTable(config.udp_idle_timeout)
        self._tcp: dict[bytes, Connection] = {}
        # TIME_WAIT connections in the order they entered it, oldest first.
        self._time_wait: dict[bytes, Connection] = {}
        self._timers = TimerQueue()
        self._isn = IsnGenerator(key)
        self._limiter = ChallengeAckLimiter(config.tcp_challenge_ack_limit, key)
        self._reassembler = Reassembler(config)
        self._verify = not config.rx_checksum_verified
        self._default_mtu = {4: config.mtu, 6: max(config.mtu, IPV6_MIN_MTU)}
        # Connections a peer's SYN opened that are not established yet, oldest first.
        self._half_open: dict[bytes, Connection] = {}
        self._cookies = SynCookies(key, config)
        self._budget = BufferBudget(config.max_tcp_buffer_bytes)
        # Flows whose l4_tx the budget cut short: told Writable once it has room again.
        self._budget_waiters: dict[bytes, Flow] = {}
        # Connections with a segment or an ACK that found no tx buffer, oldest first,
        # and when to try again at the latest.
        self._tx_waiting: dict[bytes, Connection] = {}
        self._tx_retry_at: float | None = None

    # -- the packet side ---------------------------------------------------------------

    def l3_rx(self, packet: ReadableBuffer, now: float, checksum_verified: bool = False) -> Output[P]:
        """Take one incoming IPv4 or IPv6 packet.

        Never raises for bad input: a packet that cannot be used is dropped and counted
        in :attr:`stats` under its :class:`~l3l4.DropReason`. ``Output.flow`` is the flow
        the packet belonged to, if any.

        ``checksum_verified`` says a driver has already verified this packet's checksums,
        or that they are partial by agreement (checksum offload: a TUN device's virtio-net
        header flags); they are then not checked. A TCP or UDP packet larger than the MTU
        (a GSO/GRO super-segment from such a device) is taken whole.
        """
        out: Output[P] = Output()
        if self._tx_waiting:
            self._resume_waiting(now, out)
        stats = self.stats
        stats.rx_packets += 1
        stats.rx_bytes += len(packet)
        verify = self._verify and not checksum_verified
        try:
            ip = parse_ip(packet, verify, self.config.max_extension_headers)
            if ip.is_fragment:
                whole = self._reassembler.add(ip, now)
                stats.fragments_received += 1
                if whole is None:
                    return out
                stats.fragments_reassembled += 1
                ip = whole
            proto = ip.proto
            if proto == PROTO_UDP:
                self._udp_rx(ip, verify, now, out)
            elif proto == PROTO_TCP:
                self._tcp_rx(ip, verify, now, out)
            elif proto == (PROTO_ICMP if ip.version == 4 else PROTO_ICMPV6):
                self._icmp_rx(ip, verify, now, out)
            else:
                raise Malformed(DropReason.UNSUPPORTED_PROTOCOL)
        except Malformed as error:
            stats.drops[error.reason] += 1
        if self._budget_waiters:
            self._wake_writers(out)
        return out

    def _udp_rx(self, ip: IpPacket, verify: bool, now: float, out: Output[P]) -> None:
        payload = parse_udp(ip, verify)
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

    def _tcp_rx(self, ip: IpPacket, verify: bool, now: float, out: Output[P]) -> None:
        segment = parse_tcp(ip, verify)
        if segment.sport == 0 or segment.dport == 0:
            raise Malformed(DropReason.ZERO_PORT)
        ports = bytes(ip.payload[:4])
        key = _TCP_BYTE + ip.dst + ports[2:] + ip.src + ports[:2]
        connection = self._tcp.get(key)
        if connection is None:
            waiting = self._time_wait.get(key)
            if waiting is not None:
                # RFC 9293 §3.10.7.4 (and RFC 6191): a new SYN beyond the old connection's
                # sequence space may reuse the pair at once; anything else meets TIME_WAIT.
                if segment.flags & (SYN | ACK | RST) == SYN and seq_gt(segment.seq, waiting.info().rcv_nxt):
                    del self._time_wait[key]
                    waiting.closed = True
                else:
                    waiting.on_segment(segment, now, out)
                    self._settle(key, waiting)
                    return
        if connection is None:
            flags = segment.flags
            if flags & (SYN | ACK | RST | FIN) != SYN:
                if flags & (SYN | ACK | RST) == ACK and self._cookies.in_use(now):
                    connection = self._open_from_cookie(key, ip, segment, now, out)
                else:
                    self._reset_closed(ip, segment, out)
                if connection is None:
                    return
            else:
                connection = self._open_passive(key, ip, segment, now, out)
                if connection is None:
                    return
        else:
            connection.on_segment(segment, now, out)
        out.flow = connection.flow
        self._settle(key, connection)

    def _reset_closed(self, ip: IpPacket, segment: TcpSegment, out: Output[P]) -> None:
        self.stats.drops[DropReason.TCP_NO_CONNECTION] += 1
        # RFC 9293 §3.10.7.1: a segment for no connection is answered with a reset,
        # unless it is a reset itself.
        if not segment.flags & RST:
            self._reply_reset(ip, segment, out)

    def _reply_reset(self, ip: IpPacket, segment: TcpSegment, out: Output[P]) -> None:
        flags = segment.flags
        if flags & ACK:
            seq, ack, reply = segment.ack, 0, RST
        else:
            length = len(segment.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            seq, ack, reply = 0, (segment.seq + length) & 0xFFFFFFFF, RST | ACK
        self.stats.tcp_resets_sent += 1
        self._writer.send_tcp(
            out.packets, ip.dst, ip.src, segment.dport, segment.sport, seq, ack, reply, 0, b"", b"",
            self._default_mtu[ip.version],
        )

    def _open_passive(
        self, key: bytes, ip: IpPacket, syn: TcpSegment, now: float, out: Output[P]
    ) -> Connection | None:
        """A SYN for no connection (RFC 9293 §3.10.7.2): a new half-open connection, or
        a reset past ``max_tcp_flows``, or a SYN cookie past
        ``tcp_syn_cookie_threshold`` half-open ones."""
        config = self.config
        if len(self._tcp) >= config.max_tcp_flows:
            self.stats.drops[DropReason.TCP_FLOW_LIMIT] += 1
            self._reply_reset(ip, syn, out)
            return None
        threshold = config.tcp_syn_cookie_threshold
        if threshold is not None and config.accept == "auto" and len(self._half_open) >= threshold:
            self._send_cookie(key, ip, syn, now, out)
            return None
        if len(self._half_open) >= config.max_tcp_half_open:
            # The oldest makes room, as in BSD's syncache: a flood then only shortens how
            # long a handshake may take, and new clients still get in.
            oldest_key, oldest = next(iter(self._half_open.items()))
            self.stats.tcp_half_open_evicted += 1
            oldest.evict(out)
            self._settle(oldest_key, oldest)
        connection = self._new_connection(Flow.from_key(key), now)
        connection.open_passive(syn, now, out)
        self._half_open[key] = connection
        return connection

    def _send_cookie(self, key: bytes, ip: IpPacket, syn: TcpSegment, now: float, out: Output[P]) -> None:
        """RFC 4987 §3.6: answer a SYN with a SYN cookie and keep nothing."""
        mtu = self._default_mtu[ip.version]
        our_mss = mtu - (IPV4_HEADER if ip.version == 4 else IPV6_HEADER) - TCP_HEADER
        iss, window, options = self._cookies.syn_ack(key, syn, ip.version, our_mss, self._ts_clock(key, now), now)
        self.stats.tcp_syn_cookies_sent += 1
        self._writer.send_tcp(
            out.packets, ip.dst, ip.src, syn.dport, syn.sport, iss, (syn.seq + 1) & MASK, SYN | ACK, window, options,
            b"", mtu,
        )

    def _open_from_cookie(
        self, key: bytes, ip: IpPacket, ack: TcpSegment, now: float, out: Output[P]
    ) -> Connection | None:
        """An ACK for no connection while SYN cookies are in use: the connection its
        cookie completes (RFC 4987 §3.6), or None once the ACK has been reset."""
        cookie = self._cookies.check(key, ack, self._ts_clock(key, now), now)
        if cookie is None:
            self.stats.tcp_syn_cookies_failed += 1
            self._reset_closed(ip, ack, out)
            return None
        if len(self._tcp) >= self.config.max_tcp_flows:
            self.stats.drops[DropReason.TCP_FLOW_LIMIT] += 1
            self._reply_reset(ip, ack, out)
            return None
        self.stats.tcp_syn_cookies_accepted += 1
        connection = self._new_connection(Flow.from_key(key), now)
        connection.open_from_cookie(ack, cookie, now, out)
        return connection

    def _ts_clock(self, key: bytes, now: float) -> int:
        """A flow's TCP timestamp clock (RFC 7323 §5.4), as its connection will run it:
        milliseconds, from the flow's own offset."""
        return (int(now * 1000) + self._isn.timestamp_offset(key)) & MASK

    def _new_connection(self, flow: Flow, now: float) -> Connection:
        key = flow.key
        connection = Connection(
            flow,
            flow.local_ip.packed,
            flow.remote_ip.packed,
            self._writer,
            self.config,
            self.stats,
            self._limiter,
            self._budget,
            self._isn.isn(key, now),
            self._isn.timestamp_offset(key),
            self._default_mtu[flow.version],
            now,
        )
        self._tcp[key] = connection
        return connection

    def _settle(self, key: bytes, connection: Connection) -> None:
        """After a connection has run: forget it if it ended, move it to the TIME_WAIT
        table if it entered that state, keep its timer in the queue, and remember it if
        something it had to send found no buffer."""
        if self._half_open and self._half_open.get(key) is connection and (
            connection.closed or connection.state not in _HALF_OPEN
        ):
            del self._half_open[key]
        if connection.closed:
            if self._tcp.get(key) is connection:
                del self._tcp[key]
            elif self._time_wait.get(key) is connection:
                del self._time_wait[key]
            return
        if connection.state is State.TIME_WAIT and self._tcp.get(key) is connection:
            del self._tcp[key]
            if len(self._time_wait) >= self.config.max_time_wait:
                oldest = next(iter(self._time_wait))
                self._time_wait.pop(oldest).closed = True
                self.stats.tcp_time_wait_evicted += 1
            self._time_wait[key] = connection
        self._timers.schedule(connection)
        retry_at = connection.tx_retry_at
        if retry_at is not None and self._tx_waiting.get(key) is not connection:
            self._tx_waiting.pop(key, None)
            self._tx_waiting[key] = connection
            if self._tx_retry_at is None or retry_at < self._tx_retry_at:
                self._tx_retry_at = retry_at

    def _resume_waiting(self, now: float, out: Output[P]) -> None:
        """Give the connections that found no tx buffer their turn, oldest first, until
        one finds none again (the pool is still empty: the rest keep their place)."""
        waiting = self._tx_waiting
        self._tx_retry_at = None
        while waiting:
            key = next(iter(waiting))
            connection = waiting.pop(key)
            if connection.closed or connection.tx_retry_at is None:
                continue
            connection.resume(now, out)
            self._settle(key, connection)
            if connection.tx_retry_at is not None:
                break
        if waiting and self._tx_retry_at is None:
            self._tx_retry_at = now + self.config.tx_retry_interval

    def _icmp_rx(self, ip: IpPacket, verify: bool, now: float, out: Output[P]) -> None:
        message = parse_icmp(ip, verify)
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
        connection = self._tcp.get(error.key)
        state = self._udp.get(error.key)
        if connection is not None:
            if not connection.quotes(error.quoted_seq):
                raise Malformed(DropReason.BAD_ICMP)
            flow = connection.flow
        elif state is not None:
            if error.mtu is not None and error.mtu < state.mtu:
                state.mtu = error.mtu
            flow = state.flow
        else:
            raise Malformed(DropReason.ICMP_NO_FLOW)
        self.stats.icmp_errors_received += 1
        out.flow = flow
        out.events.append(ErrorReceived(flow, error.kind, icmp_type, message.code, error.mtu, ip_address(ip.src)))
        if connection is not None:
            connection.on_icmp(error.kind, error.mtu, now, out)
            self._settle(error.key, connection)

    # -- the application side ----------------------------------------------------------

    def l4_tx(self, flow: Flow, data: ReadableBuffer, now: float) -> Output[P]:
        """Send application data on a flow. For UDP, one call sends one datagram.

        ``Output.accepted`` is the number of bytes taken: all of them, or 0 when the
        ``tx_buffer`` allocator had no buffer (the datagram is dropped and counted).
        For TCP, bytes are queued up to the free send-buffer space and sent as the
        windows allow; when less than offered was taken, ``Writable`` follows once
        room opens.

        Raises :class:`~l3l4.UnknownFlowError` for a flow that is not open,
        :class:`~l3l4.SendClosedError` after ``close`` and
        :class:`~l3l4.PayloadTooLargeError` for a datagram IP cannot carry.
        """
        if flow.proto is Proto.TCP:
            connection = self._connection(flow)
            if not connection.can_send():
                raise SendClosedError(f"{flow} has been closed for sending")
            out: Output[P] = Output()
            if self._tx_waiting:
                self._resume_waiting(now, out)
            out.accepted = connection.send(data, now, out)
            if out.accepted < len(data) and self._budget.free() == 0:
                self._budget_waiters[flow.key] = flow
            self._settle(flow.key, connection)
            return out
        state = self._udp_state(flow)
        header = IPV4_HEADER if flow.version == 4 else IPV6_HEADER
        if len(data) > 65535 - header - UDP_HEADER:
            raise PayloadTooLargeError(f"{len(data)} bytes do not fit one UDP datagram over IPv{flow.version}")
        out = Output()
        if self._tx_waiting:
            self._resume_waiting(now, out)
        if self._writer.send_udp(
            out.packets, state.local, state.remote, flow.local_port, flow.remote_port, data, state.mtu
        ):
            out.accepted = len(data)
        self._udp.touch(flow.key, state, now)
        return out

    def connect(self, flow: Flow, now: float) -> Output[P]:
        """Open a flow from this side, from any local address and port.

        For UDP the flow exists at once (``FlowOpened``). For TCP a SYN goes out;
        ``FlowOpened`` follows the handshake, or ``FlowClosed`` with ``REFUSED``,
        ``UNREACHABLE`` or ``TIMED_OUT``. Data may be queued with ``l4_tx`` at once.

        Raises :class:`~l3l4.FlowExistsError` if it is already open and
        :class:`~l3l4.FlowLimitError` past ``Config.max_tcp_flows``.
        """
        out: Output[P] = Output()
        out.flow = flow
        key = flow.key
        if flow.proto is Proto.TCP:
            if key in self._tcp:
                raise FlowExistsError(f"{flow} is already open")
            if len(self._tcp) >= self.config.max_tcp_flows:
                raise FlowLimitError(f"{self.config.max_tcp_flows} TCP connections are open")
            waiting = self._time_wait.pop(key, None)
            if waiting is not None:
                waiting.closed = True
            connection = self._new_connection(flow, now)
            connection.open_active(now, out)
            self._settle(key, connection)
            return out
        if self._udp.get(key) is not None:
            raise FlowExistsError(f"{flow} is already open")
        self._open_udp(flow, now, out)
        return out

    def accept(self, flow: Flow, now: float) -> Output[P]:
        """Answer a ``FlowRequested`` SYN with a SYN-ACK (``Config(accept="manual")``)."""
        connection = self._awaiting(flow)
        out: Output[P] = Output()
        connection.accept(now, out)
        self._settle(flow.key, connection)
        return out

    def reject(self, flow: Flow, now: float) -> Output[P]:
        """Refuse a ``FlowRequested`` SYN with a reset; ``FlowClosed(REFUSED)`` follows."""
        connection = self._awaiting(flow)
        out: Output[P] = Output()
        connection.reject(now, out)
        self._settle(flow.key, connection)
        return out

    def consumed(self, flow: Flow, count: int, now: float) -> Output[P]:
        """With ``Config(rx_manual_consume=True)``: the application has processed
        ``count`` more delivered bytes, so the receive window may reopen by as much.
        On a connection in TIME_WAIT (its last data and its ``FlowClosed`` may be in the
        very Output being handled) it does nothing."""
        out: Output[P] = Output()
        if flow.key in self._time_wait:
            return out
        connection = self._connection(flow)
        connection.consumed(count, now, out)
        self._settle(flow.key, connection)
        return out

    def set_nagle(self, flow: Flow, enabled: bool) -> None:
        """Turn Nagle's algorithm (RFC 896) on or off for one TCP flow."""
        self._connection(flow).nagle = enabled

    def flow_info(self, flow: Flow) -> FlowInfo:
        """A snapshot of a TCP flow's state: windows, RTT, congestion control, buffers."""
        return self._connection(flow).info()

    def tso_segment_size(self, packet: ReadableBuffer) -> int:
        """The payload per segment of a TCP packet this stack built larger than the path
        MTU (``Config.tcp_tso_packet``): what a device doing TCP segmentation offload must
        cut it into. Looked up by the packet's own addresses and ports, so a driver needs
        no :class:`Flow` for it.

        Raises :class:`UnknownFlowError` if the packet's connection is gone.
        """
        view = memoryview(packet)
        if view[0] >> 4 == 4:
            ip_header = (view[0] & 0x0F) * 4
            src, dst = bytes(view[12:16]), bytes(view[16:20])
        else:
            ip_header = IPV6_HEADER
            src, dst = bytes(view[8:24]), bytes(view[24:40])
        ports = bytes(view[ip_header : ip_header + 4])
        # The stack sent it: its source is the flow's local end.
        connection = self._tcp.get(flow_key(PROTO_TCP, src, ports[:2], dst, ports[2:]))
        if connection is None:
            raise UnknownFlowError("no TCP connection sent this packet")
        return connection.tso_segment_size((view[ip_header + 12] >> 4) * 4 - TCP_HEADER)

    def tcp_states(self) -> dict[str, int]:
        """How many TCP connections are in each state, TIME_WAIT included."""
        counts: dict[str, int] = {}
        for connection in (*self._tcp.values(), *self._time_wait.values()):
            counts[connection.state.name] = counts.get(connection.state.name, 0) + 1
        return counts

    def close(self, flow: Flow, now: float) -> Output[P]:
        """Close a flow gracefully.

        A UDP flow is forgotten at once (``FlowClosed(CLOSED)``). A TCP connection
        sends a FIN after the queued data and can still receive until the peer's FIN;
        ``FlowClosed`` follows when both sides are done. Closing again, or once the
        connection has reached TIME_WAIT (its ``FlowClosed`` may be in the very Output
        being handled), does nothing.
        """
        if flow.proto is Proto.TCP:
            out: Output[P] = Output()
            if flow.key in self._time_wait:
                return out
            connection = self._connection(flow)
            connection.close(now, out)
            self._settle(flow.key, connection)
            if self._budget_waiters:
                self._wake_writers(out)
            return out
        return self._forget(flow, CloseReason.CLOSED)

    def abort(self, flow: Flow, now: float) -> Output[P]:
        """Abort a flow at once: a TCP connection is reset. ``FlowClosed(ABORTED)``.
        A connection already in TIME_WAIT is done: aborting it does nothing."""
        if flow.proto is Proto.TCP:
            out: Output[P] = Output()
            if flow.key in self._time_wait:
                return out
            connection = self._connection(flow)
            connection.abort(now, out)
            self._settle(flow.key, connection)
            if self._budget_waiters:
                self._wake_writers(out)
            return out
        return self._forget(flow, CloseReason.ABORTED)

    def flows(self) -> list[Flow]:
        """Every open flow (TCP connections in TIME_WAIT are done and not listed)."""
        return [state.flow for state in self._udp] + [c.flow for c in self._tcp.values()]

    def usage(self) -> Usage:
        """What the stack holds right now, against the caps of its ``Config``."""
        return Usage(
            tcp_flows=len(self._tcp),
            tcp_half_open=len(self._half_open),
            tcp_time_wait=len(self._time_wait),
            udp_flows=len(self._udp),
            timers=len(self._timers),
            tcp_buffer_bytes=self._budget.used,
            reassembly_datagrams=len(self._reassembler),
            reassembly_bytes=self._reassembler.bytes_held,
        )

    def path_mtu(self, flow: Flow) -> int:
        """The largest packet the stack sends on ``flow``, as lowered by ICMP."""
        if flow.proto is Proto.TCP:
            return self._connection(flow).path_mtu
        return self._udp_state(flow).mtu

    # -- time --------------------------------------------------------------------------

    def l4_poll(self, now: float) -> Output[P]:
        """Run every timer due at ``now``: retransmissions, delayed ACKs, probes,
        TIME_WAIT and idle expiry, stale fragments."""
        out: Output[P] = Output()
        if self._tx_waiting:
            self._resume_waiting(now, out)
        for connection in self._timers.pop_due(now):
            connection.on_timer(now, out)
            self._settle(connection.flow.key, connection)
        while (state := self._udp.pop_idle(now)) is not None:
            self._closed(state.flow, CloseReason.IDLE, out)
        for expired in self._reassembler.expire(now):
            self.stats.drops[DropReason.FRAGMENT_TIMEOUT] += 1
            first = expired.first
            if first is not None and self.config.icmp_errors:
                self._send_reassembly_timeout(first, out)
        if self._budget_waiters:
            self._wake_writers(out)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`l4_poll` next has work, or ``None`` if no timer is set."""
        deadlines = [
            d
            for d in (
                self._udp.next_deadline(),
                self._reassembler.next_deadline(),
                self._timers.next_deadline(),
                self._tx_retry_at,
            )
            if d is not None
        ]
        return min(deadlines) if deadlines else None

    # -- internals ---------------------------------------------------------------------

    def _connection(self, flow: Flow) -> Connection:
        connection = self._tcp.get(flow.key)
        if connection is None:
            raise UnknownFlowError(flow)
        return connection

    def _awaiting(self, flow: Flow) -> Connection:
        connection = self._connection(flow)
        if connection.state is not State.AWAITING_ACCEPT:
            raise InvalidStateError(f"{flow} is not awaiting accept (it is {connection.state.name})")
        return connection

    def _udp_state(self, flow: Flow) -> UdpFlow:
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

    def _wake_writers(self, out: Output[P]) -> None:
        """``Writable`` for the flows whose ``l4_tx`` the stack-wide buffer budget cut
        short, once an eighth of it is free again (waking them for every few bytes freed
        would cost a round of calls per packet)."""
        budget = self._budget
        if budget.free() < max(budget.limit // 8, 1):
            return
        for key, flow in self._budget_waiters.items():
            connection = self._tcp.get(key)
            if connection is not None and connection.can_send():
                out.events.append(Writable(flow))
        self._budget_waiters.clear()

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
