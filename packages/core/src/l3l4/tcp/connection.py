"""One TCP connection: the event processing of RFC 9293 §3.10, with the options of
RFC 7323 and RFC 2018, loss recovery of RFC 5681/6582/6675, and RFC 5961's defences.

The connection knows its own flow and nothing else of the stack: the stack hands it
segments, calls and the time, and it appends events and packets to an ``Output``.
Sequence numbers on the wire become stream offsets inside (``*_off``: bytes since the
ISS or IRS), so buffers and the scoreboard never see wrap-around.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..events import (
    CloseReason,
    DataReceived,
    EndOfStream,
    FlowClosed,
    FlowOpened,
    FlowRequested,
    IcmpErrorKind,
    Output,
    Writable,
)
from ..flow import Flow
from ..info import FlowInfo
from ..stats import DropReason, Stats
from ..wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, encode_options
from .budget import BufferBudget
from .congestion import CONTROLLERS, Cubic, HyStart, NewReno
from .recovery import Prr, Rack, RetransmitLog
from .recv import Assembler
from .rtt import RttEstimator
from .send import Scoreboard, SendBuffer
from .seq import MASK, seq_sub

if TYPE_CHECKING:
    from ..ip.output import PacketWriter
    from .cookies import CookieOptions

__all__ = ["State", "Connection", "ChallengeAckLimiter", "syn_window", "window_shift"]


class State(enum.IntEnum):
    """RFC 9293 §3.3.2 connection states, plus the wait for the application's verdict
    on a SYN under ``Config(accept="manual")``."""

    SYN_SENT = 1
    SYN_RECEIVED = 2
    AWAITING_ACCEPT = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10
    CLOSED = 11


_SYNCHRONIZED = frozenset(
    (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK, State.TIME_WAIT)
)
# States in which we may still send data (RFC 9293 §3.10.2 SEND).
_CAN_SEND = frozenset((State.SYN_SENT, State.SYN_RECEIVED, State.AWAITING_ACCEPT, State.ESTABLISHED, State.CLOSE_WAIT))
# States whose segments may carry data for us (RFC 9293 §3.10.7.4, seventh step).
_RECEIVES = frozenset((State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2))
# States with our data or FIN in flight that a tail loss probe may repair (RFC 8985 §7).
_TAIL_PROBED = frozenset((State.ESTABLISHED, State.FIN_WAIT_1, State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK))
# States that report data received twice with a D-SACK block (RFC 2883).
_REPORTS_DUPLICATES = frozenset(
    (State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT, State.CLOSING, State.LAST_ACK)
)
# States in which our FIN has been queued.
_FIN_QUEUED = frozenset((State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING, State.LAST_ACK, State.TIME_WAIT))

# RFC 9293 §3.7.1: the MSS assumed when the peer sends none (RFC 8200 §5 for IPv6).
_DEFAULT_MSS = {4: 536, 6: 1220}
_HEADERS = {4: 40, 6: 60}
_DUP_THRESHOLD = 3  # RFC 5681 §3.2, RFC 6675 §2
_WORST_DELAYED_ACK = 0.2  # RFC 8985 §7.2 WCDelAckT
_PTO_MARGIN = 0.002  # Linux: TCP_TIMEOUT_MIN, two jiffies at HZ=1000
_TIMESTAMP = struct.Struct("!BBBBII")
_ECT0 = 2  # RFC 3168 §5: the ECN field of an ECN-capable packet
_MAX_WINDOW_SHIFT = 14  # RFC 7323 §2.3


def syn_window(config: Config) -> int:
    """The window a SYN or SYN-ACK offers: never scaled (RFC 7323 §2.2)."""
    return min(config.tcp_receive_buffer, 0xFFFF)


def window_shift(buffer: int) -> int:
    """The smallest shift that lets a 16-bit window field describe ``buffer`` bytes."""
    shift = 0
    while (buffer >> shift) > 0xFFFF and shift < _MAX_WINDOW_SHIFT:
        shift += 1
    return shift


class ChallengeAckLimiter:
    """RFC 5961 §7: challenge ACKs per second, across the stack, ``limit`` on average.

    A fixed budget shared by every connection is a side channel (CVE-2016-5696): an
    off-path attacker spends it with guesses at someone else's connection, then counts
    the challenge ACKs its own connection still gets. So, as Linux does since, each
    second's budget is drawn from [limit / 2, limit * 3 / 2), here by a keyed hash of the
    second: unpredictable without the stack's secret, reproducible with it.
    """

    __slots__ = ("limit", "_key", "_second", "_sent", "_budget")

    def __init__(self, limit: int, key: bytes) -> None:
        self.limit = limit
        self._key = key
        self._second = -1
        self._sent = 0
        self._budget = 0

    def allow(self, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._second = second
            self._sent = 0
            self._budget = self._draw(second)
        if self._sent >= self._budget:
            return False
        self._sent += 1
        return True

    def _draw(self, second: int) -> int:
        if self.limit == 0:
            return 0
        message = b"challenge" + second.to_bytes(8, "big", signed=True)
        digest = hashlib.blake2s(message, key=self._key, digest_size=4).digest()
        return max(self.limit // 2 + int.from_bytes(digest, "big") % self.limit, 1)


class Connection:
    """The state of one TCP connection and the rules that move it."""

    __slots__ = (
        "flow", "state", "closed", "deadline", "scheduled", "tx_retry_at", "_syn_unsent",
        "_local", "_remote", "_lport", "_rport", "_version",
        "_writer", "_config", "_stats", "_limiter",
        # send side (RFC 9293 §3.3.1), as offsets from the ISS
        "iss", "una_off", "nxt_off", "max_off", "snd_wnd", "max_snd_wnd", "_wl1", "_wl2",
        "snd_wscale", "mss", "path_mtu", "buffer", "_fin_off", "_want_writable", "nagle", "_syn_options",
        # receive side, as offsets from the IRS
        "irs", "rcv_off", "rcv_wscale", "_rcv_buffer", "_rcv_adv", "unconsumed", "_assembler",
        "_peer_fin_off", "_eof_delivered", "_ack_pending", "_ack_now", "_quick_acks",
        # options
        "_ts_ok", "_ts_recent", "_ts_offset", "_sack_ok", "_ws_ok",
        # reliability and congestion
        "rtt", "cc", "_rtt_off", "_rtt_time", "_retries", "_in_recovery", "_recovery_point",
        "_recover", "_dupacks", "_high_rxt", "_rxt_pending", "_rxt_log", "_resend", "_tlp_at", "_tlp", "_lost_to",
        "_scoreboard", "_probing", "_first_unacked_time", "_ts_floor", "_rack", "_prr", "_reo_at", "_after_timeout", "_last_sent",
        "_hystart", "_dsack", "_undo_from", "_undo_to", "_undo_bytes", "_undo_ranges", "_prior_cwnd", "_prior_ssthresh",
        # per-connection statistics (FlowInfo)
        "_total_retrans", "_dsacks", "_delivered", "_delivery_rate",
        # ECN (RFC 3168)
        "_ecn_ok", "_ece_pending", "_cwr_pending", "_ecn_recover",
        # timers
        "_rtx_at", "_ack_at", "_tw_at", "_last_rx", "_keepalive_sent",
        "_opened",
    )

    def __init__(
        self,
        flow: Flow,
        local: bytes,
        remote: bytes,
        writer: PacketWriter[Any],
        config: Config,
        stats: Stats,
        limiter: ChallengeAckLimiter,
        budget: BufferBudget,
        iss: int,
        ts_offset: int,
        mtu: int,
        now: float,
    ) -> None:
        self.flow = flow
        self.state = State.CLOSED
        self.closed = False
        self.deadline: float | None = None
        self.scheduled: float | None = None
        # When a send found no buffer: the stack retries then (or at its next call).
        self.tx_retry_at: float | None = None
        self._syn_unsent = False
        self._local = local
        self._remote = remote
        self._lport = flow.local_port
        self._rport = flow.remote_port
        self._version = flow.version
        self._writer = writer
        self._config = config
        self._stats = stats
        self._limiter = limiter
        self.iss = iss
        self.una_off = 0
        self.nxt_off = 0
        self.max_off = 0
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self._wl1 = 0
        self._wl2 = 0
        self.snd_wscale = 0
        self.path_mtu = mtu
        self.mss = mtu - _HEADERS[self._version]
        self.buffer = SendBuffer(config.tcp_send_buffer, budget, config.tcp_send_buffer_min)
        self._fin_off: int | None = None
        self._want_writable = False
        self.nagle = config.nagle
        # What our SYN or SYN-ACK carries, kept to resend it; dropped once established.
        self._syn_options: TcpOptions | None = None
        self.irs = 0
        self.rcv_off = 0
        self._rcv_buffer = config.tcp_receive_buffer
        self.rcv_wscale = window_shift(self._rcv_buffer) if config.tcp_window_scaling else 0
        self._rcv_adv = 0
        self.unconsumed = 0
        self._assembler = Assembler(config.tcp_max_ooo_ranges, self._rcv_buffer, budget)
        self._peer_fin_off: int | None = None
        self._eof_delivered = False
        self._ack_pending = 0
        self._ack_now = False
        self._quick_acks = config.tcp_quick_acks
        self._ts_ok = False
        self._ts_recent = 0
        self._ts_offset = ts_offset
        self._sack_ok = False
        self._ws_ok = False
        self.rtt = RttEstimator(config.tcp_min_rto, config.tcp_max_rto)
        self.cc: NewReno | Cubic = CONTROLLERS[config.tcp_congestion_control](self.mss)
        self._rtt_off: int | None = None
        self._rtt_time = 0.0
        self._retries = 0
        self._in_recovery = False
        self._recovery_point = 0
        self._recover = 0
        self._dupacks = 0
        self._high_rxt = 0
        # The fast retransmit of entering recovery found no tx buffer: it goes first.
        self._rxt_pending = False
        # Retransmissions neither delivered nor found lost yet: (start, end, when), and
        # those found lost, to send again.
        self._rxt_log = RetransmitLog()
        self._resend: list[tuple[int, int]] = []
        # RFC 8985 §7: when the tail loss probe is due, and the range the last one sent
        # (its episode lasts until that range is acknowledged).
        self._tlp_at: float | None = None
        self._tlp: tuple[int, int] | None = None
        # Everything unSACKed below this offset is lost (the probe was SACKed above it).
        self._lost_to = 0
        self._scoreboard = Scoreboard(config.tcp_max_sack_ranges)
        self._rack = Rack()
        self._prr = Prr()
        # RFC 8985 §6.3: when a segment sent before the last one delivered will have
        # waited out the reordering window.
        self._reo_at: float | None = None
        # Recovering from a retransmission timeout (Linux's loss state), not fast recovery.
        self._after_timeout = False
        # Where the newest segment of new data began (the tail loss probe resends it).
        self._last_sent = 0
        self._hystart = HyStart() if config.tcp_hystart else None
        # RFC 2883: the duplicate range the next ACK reports first (receive offsets).
        self._dsack: tuple[int, int] | None = None
        # RFC 3708 with D-SACK, as Linux's undo: the range a window reduction's
        # retransmissions covered, how many of their bytes the peer has not yet
        # reported as duplicates (-1: none resent yet), and the window from before it.
        self._undo_from: int | None = None
        self._undo_to = 0
        self._undo_bytes = 0
        self._undo_ranges: list[tuple[int, int]] = []
        self._prior_cwnd = 0.0
        self._prior_ssthresh = 0.0
        self._total_retrans = 0
        self._dsacks = 0
        self._delivered = 0
        self._delivery_rate = 0.0
        self._ecn_ok = False
        self._ece_pending = False  # a CE mark to echo until the peer's CWR (§6.1.3)
        self._cwr_pending = False  # our next new data carries CWR (§6.1.2)
        self._ecn_recover = 0  # no second reduction for an echo before this is ACKed
        self._probing = False
        self._first_unacked_time: float | None = None
        # Echoes older than this are not timed (set at each retransmission). It starts at
        # our clock now: 0 would be "in the future" of half of all clock offsets, and no
        # echo would ever be timed (serial arithmetic, RFC 7323 §5.2).
        self._ts_floor = self._ts_now(now)
        self._rtx_at: float | None = None
        self._ack_at: float | None = None
        self._tw_at: float | None = None
        self._last_rx = now
        self._keepalive_sent = 0
        self._opened = False

    # -- opening ------------------------------------------------------------------------

    def open_active(self, now: float, out: Output[Any]) -> None:
        """RFC 9293 §3.10.1 OPEN, active: send a SYN and enter SYN-SENT."""
        config = self._config
        self.state = State.SYN_SENT
        self._opened = True
        self._syn_options = TcpOptions(
            mss=self.mss,
            wscale=self.rcv_wscale if config.tcp_window_scaling else None,
            sack_permitted=config.tcp_sack,
            ts_val=0 if config.tcp_timestamps else None,
        )
        self._send_syn(now, out)
        self._update_deadline()

    def open_passive(self, syn: TcpSegment, now: float, out: Output[Any]) -> None:
        """A SYN arrived for no connection (RFC 9293 §3.10.7.2, LISTEN): take its
        options, then answer with SYN-ACK or wait for the application's verdict."""
        self.irs = syn.seq
        self.rcv_off = 1
        self._negotiate(syn.options, now)
        # RFC 3168 §6.1.1: an ECN-setup SYN (ECE and CWR) gets an ECN-setup SYN-ACK (ECE).
        self._ecn_ok = self._config.tcp_ecn != "off" and syn.flags & (ECE | CWR) == ECE | CWR
        self.snd_wnd = syn.window  # RFC 7323 §2.2: the window in a SYN is never scaled
        self.max_snd_wnd = syn.window
        self._wl1 = syn.seq
        self._last_rx = now
        if self._config.accept == "manual":
            self.state = State.AWAITING_ACCEPT
            self._opened = True
            out.events.append(FlowRequested(self.flow))
        else:
            self._accept(now, out)
        self._update_deadline()

    def accept(self, now: float, out: Output[Any]) -> None:
        """The application accepts a requested flow: send the SYN-ACK now."""
        self._accept(now, out)
        self._update_deadline()

    def reject(self, now: float, out: Output[Any]) -> None:
        """The application refuses a requested flow: reset it (RFC 9293 §3.10.7.1 form)."""
        self._emit_raw(out, 0, (self.irs + 1) & MASK, RST | ACK)
        self._finish(CloseReason.REFUSED, out)

    def _accept(self, now: float, out: Output[Any]) -> None:
        self.state = State.SYN_RECEIVED
        self._syn_options = self._syn_ack_options()
        self._send_syn(now, out)

    def open_from_cookie(self, ack: TcpSegment, cookie: CookieOptions, now: float, out: Output[Any]) -> None:
        """RFC 4987 §3.6: the ACK of a SYN-ACK sent as a SYN cookie, which left no state.
        Take the connection up where that SYN-ACK left it (SYN-RECEIVED, with the
        options the cookie encoded), then process the ACK as RFC 9293 §3.10.7.4 says."""
        self.iss = cookie.iss
        self.irs = (ack.seq - 1) & MASK
        self.rcv_off = 1
        ts_val = ack.options.ts_val if cookie.timestamps else None
        self._negotiate(
            TcpOptions(mss=cookie.mss, wscale=cookie.wscale, sack_permitted=cookie.sack, ts_val=ts_val), now
        )
        self.state = State.SYN_RECEIVED
        self._wl1 = self.irs
        self._last_rx = now
        # What _send_syn records of a SYN-ACK: our SYN's sequence space, and the window
        # offered, unscaled (RFC 7323 §2.2).
        self.nxt_off = self.max_off = 1
        self._rcv_adv = 1 + syn_window(self._config)
        self.on_segment(ack, now, out)

    def _negotiate(self, options: TcpOptions, now: float) -> None:
        """Agree on options from the peer's SYN (RFC 9293 §3.7.1, RFC 7323 §1.3, §2.2,
        RFC 2018 §2): each is used only if both sides offered it."""
        config = self._config
        self._ws_ok = options.wscale is not None and config.tcp_window_scaling
        if self._ws_ok:
            self.snd_wscale = options.wscale or 0
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self._sack_ok = options.sack_permitted and config.tcp_sack
        if options.ts_val is not None and config.tcp_timestamps:
            self._ts_ok = True
            self._ts_recent = options.ts_val
        peer_mss = options.mss if options.mss is not None else _DEFAULT_MSS[self._version]
        self._set_mss(min(self.path_mtu - _HEADERS[self._version], max(peer_mss, 64)))

    def _syn_ack_options(self) -> TcpOptions:
        """A SYN-ACK offers back exactly what the peer's SYN offered."""
        return TcpOptions(
            mss=self.path_mtu - _HEADERS[self._version],
            wscale=self.rcv_wscale if self._ws_ok else None,
            sack_permitted=self._sack_ok,
            ts_val=0 if self._ts_ok else None,
        )

    def _send_syn(self, now: float, out: Output[Any]) -> None:
        """Send (or resend) our SYN or SYN-ACK, with a fresh timestamp."""
        options = self._syn_options
        assert options is not None, "a SYN is sent only before the connection is established"
        if options.ts_val is not None:
            options.ts_val = self._ts_now(now)
            options.ts_ecr = self._ts_recent if self.state is not State.SYN_SENT else 0
        flags = SYN if self.state is State.SYN_SENT else SYN | ACK
        if flags == SYN and self._config.tcp_ecn == "on" and self._retries == 0:
            # RFC 3168 §6.1.1: an ECN-setup SYN; a retransmitted SYN goes without, in
            # case a middlebox drops them (as Linux's tcp_ecn_fallback).
            flags |= ECE | CWR
        elif flags & ACK and self._ecn_ok:
            flags |= ECE
        window = syn_window(self._config)
        ack = (self.irs + self.rcv_off) & MASK if flags & ACK else 0
        sent = self._writer.send_tcp(
            out.packets, self._local, self._remote, self._lport, self._rport,
            self.iss, ack, flags, window, encode_options(options), b"", self.path_mtu, True,
        )
        # A SYN that found no buffer is sent at the stack's next call that finds one;
        # its timers run as if it had gone (the peer cannot tell the difference).
        self._syn_unsent = not sent
        if not sent:
            self._wait_for_buffer(now)
        self._ack_now = False
        # The window counts from the peer's first data byte, offset 1, also in SYN-SENT
        # where RCV.NXT is not known yet (rcv_off is still 0).
        self._rcv_adv = 1 + window
        self.nxt_off = self.max_off = 1
        if self._rtx_at is None:
            self._rtx_at = now + self.rtt.rto
        if sent and self._rtt_off is None and self._retries == 0:
            self._rtt_off, self._rtt_time = 1, now

    # -- the application's calls ---------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview, now: float, out: Output[Any]) -> int:
        """RFC 9293 §3.10.2 SEND: queue what fits in the send buffer, send what may go."""
        taken = self.buffer.append(data)
        if taken < len(data):
            self._want_writable = True
        if taken and self.state in _SYNCHRONIZED:
            self._transmit(now, out)
            self._update_deadline()
        return taken

    def can_send(self) -> bool:
        """Whether ``send`` may be called: the application has not closed its side."""
        return self.state in _CAN_SEND and self._fin_off is None

    def close(self, now: float, out: Output[Any]) -> None:
        """RFC 9293 §3.10.4 CLOSE: a FIN follows the queued data."""
        state = self.state
        if state is State.SYN_SENT:
            self._finish(CloseReason.CLOSED, out)
            return
        if state is State.AWAITING_ACCEPT:
            self.reject(now, out)
            return
        if self._fin_off is not None:
            return
        self._fin_off = self.buffer.end
        # A FIN queued in SYN-RECEIVED waits for the handshake (RFC 9293 §3.10.4).
        if state is State.ESTABLISHED or state is State.CLOSE_WAIT:
            self.state = State.FIN_WAIT_1 if state is State.ESTABLISHED else State.LAST_ACK
            # The closing connection falls under tcp_halfopen_idle_timeout (RFC 5382
            # REQ-5's transitory idle), counted from now: a connection quiet for longer
            # must still get its FIN answered, not be reset at once as idle.
            self._last_rx = now
        self._transmit(now, out)
        self._update_deadline()

    def abort(self, now: float, out: Output[Any], reason: CloseReason = CloseReason.ABORTED) -> None:
        """RFC 9293 §3.10.5 ABORT: a reset for a synchronized connection, then gone."""
        if self.state in _SYNCHRONIZED or self.state is State.SYN_RECEIVED:
            self._emit_raw(out, self._snd_seq(self.max_off), 0, RST)
        self._finish(reason, out)

    def evict(self, out: Output[Any]) -> None:
        """The stack needs the room (``Config.max_tcp_half_open``): end the handshake
        without a word to the peer, as a full SYN queue drops an entry (a reset to a
        spoofed source would only double what a flood reflects)."""
        self._finish(CloseReason.EVICTED, out)

    def consumed(self, count: int, now: float, out: Output[Any]) -> None:
        """The application has processed ``count`` delivered bytes: reopen the window,
        and tell the peer if that moves the window edge enough to matter."""
        self.unconsumed = max(0, self.unconsumed - count)
        if self.state in _RECEIVES and self._window_update_due():
            self._ack_now = True
            self._transmit(now, out)
            self._update_deadline()

    def on_icmp(self, kind: IcmpErrorKind, mtu: int | None, now: float, out: Output[Any]) -> None:
        """An ICMP error that :meth:`quotes` this connection."""
        if kind is IcmpErrorKind.PACKET_TOO_BIG and mtu is not None:
            # RFC 1191 §6.3 / RFC 8201 §5.2: shrink the MSS, resend what no longer fits.
            if mtu < self.path_mtu:
                self.path_mtu = mtu
                self._set_mss(min(self.mss + (12 if self._ts_ok else 0), mtu - _HEADERS[self._version]))
                self.nxt_off = self.una_off
                self._transmit(now, out)
        elif kind is IcmpErrorKind.UNREACHABLE and self.state is State.SYN_SENT:
            # RFC 1122 §4.2.3.9 allows aborting on hard errors; during connect, as Linux
            # does, any unreachable ends the attempt.
            self._finish(CloseReason.UNREACHABLE, out)
            return
        self._update_deadline()

    # -- segment arrival (RFC 9293 §3.10.7) ---------------------------------------------

    def on_segment(self, seg: TcpSegment, now: float, out: Output[Any]) -> None:
        state = self.state
        if state in _RECEIVES:
            if not self._predicted(seg, now, out):
                self._on_synchronized(seg, now, out)
        elif state is State.SYN_SENT:
            self._on_syn_sent(seg, now, out)
        elif state is State.AWAITING_ACCEPT:
            if seg.flags & RST and seg.seq == (self.irs + 1) & MASK:
                self._finish(CloseReason.RESET, out)
        else:
            self._on_synchronized(seg, now, out)
        if not self.closed:
            self._transmit(now, out)
            self._update_deadline()

    def _predicted(self, seg: TcpSegment, now: float, out: Output[Any]) -> bool:
        """Header prediction (Jacobson, "4.4BSD header prediction"; Linux's
        tcp_rcv_established fast path): the next in-order segment of a connection that
        receives (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2) with nothing unusual going on,
        taken with fewer checks. The outcome
        is what RFC 9293 §3.10.7.4 would decide; anything else returns ``False``
        having changed nothing, and takes the full path."""
        if (
            seg.flags & ~PSH != ACK
            or seg.seq != (self.irs + self.rcv_off) & MASK
            or (seg.window << self.snd_wscale) != self.snd_wnd
            or self._peer_fin_off is not None
            or self._in_recovery
            or self._probing
            or self._dupacks
            or self._assembler
            or self._rxt_log
            or self._reo_at is not None
            or seg.ce
        ):
            return False
        options = seg.options
        ts_val = options.ts_val
        if options.sack_blocks or (self._ts_ok and (ts_val is None or seq_sub(ts_val, self._ts_recent) < 0)):
            return False
        una_off = self.una_off
        ack_off = una_off + seq_sub(seg.ack, (self.iss + una_off) & MASK)
        payload = seg.payload
        size = len(payload)
        if size:
            # Data, all of it inside the window we advertised.
            if not una_off <= ack_off <= self.max_off or size > self._rcv_adv - self.rcv_off:
                return False
        elif not una_off < ack_off <= self.max_off:
            return False  # a duplicate ACK, or one for data never sent
        self._last_rx = now
        self._keepalive_sent = 0
        if ts_val is not None and self._ts_ok:
            self._ts_recent = ts_val  # RFC 7323 §4.3 (2)
        # RFC 9293 §3.10.7.4 fifth step: the window is unchanged, but SND.WL1/WL2 move on.
        if seq_sub(seg.seq, self._wl1) > 0 or (seg.seq == self._wl1 and seq_sub(seg.ack, self._wl2) >= 0):
            self._wl1, self._wl2 = seg.seq, seg.ack
        if ack_off > una_off:
            self._new_ack(ack_off, seg, now, out)
            if self._fin_off is not None and self.una_off > self._fin_off:
                self._our_fin_acked(now, out)
        if size:
            # Seventh step, in order and nothing held out of order: deliver it all.
            self._deliver(bytes(payload), out)
            self._owe_ack(now, False)
        return True

    def _on_syn_sent(self, seg: TcpSegment, now: float, out: Output[Any]) -> None:
        """RFC 9293 §3.10.7.3."""
        flags = seg.flags
        if flags & ACK:
            # First: an ACK must acknowledge our SYN and nothing beyond it.
            if seg.ack != (self.iss + 1) & MASK:
                if not flags & RST:
                    self._emit_raw(out, seg.ack, 0, RST)
                self._stats.drops[DropReason.TCP_BAD_ACK] += 1
                return
        if flags & RST:
            # Second: RFC 5961 §3.2 does not apply here; an acceptable ACK with RST is
            # the peer refusing the connection.
            if flags & ACK:
                self._finish(CloseReason.REFUSED, out)
            else:
                self._stats.drops[DropReason.TCP_BAD_ACK] += 1
            return
        if not flags & SYN:
            self._stats.drops[DropReason.TCP_NO_ACK] += 1
            return
        # Fourth: the SYN.
        self._last_rx = now
        self.irs = seg.seq
        self.rcv_off = 1
        self._negotiate(seg.options, now)
        self._wl1 = seg.seq
        if flags & ACK:
            # RFC 3168 §6.1.1: the SYN-ACK agrees to ECN with ECE alone.
            self._ecn_ok = self._config.tcp_ecn == "on" and flags & (ECE | CWR) == ECE
            self._wl2 = seg.ack
            self.snd_wnd = self.max_snd_wnd = seg.window  # unscaled in a SYN-ACK
            self._ack_of_syn(now, seg)
            self.state = State.ESTABLISHED
            self._established(out)
            self._ack_now = True
            self._receive_payload(seg, now, out)
        else:
            # Simultaneous open: RFC 9293 §3.10.7.3, "Otherwise, enter SYN-RECEIVED".
            self.snd_wnd = self.max_snd_wnd = seg.window
            self.state = State.SYN_RECEIVED
            self._syn_options = self._syn_ack_options()
            self._rtx_at = None
            self._send_syn(now, out)

    def _on_synchronized(self, seg: TcpSegment, now: float, out: Output[Any]) -> None:
        """RFC 9293 §3.10.7.4, for SYN-RECEIVED and every synchronized state."""
        flags = seg.flags
        payload_len = len(seg.payload)
        stats = self._stats
        # RFC 7323 §5.3 R1: PAWS, before the sequence number check.
        if self._ts_ok and seg.options.ts_val is not None and not flags & RST:
            if seq_sub(seg.options.ts_val, self._ts_recent) < 0:
                stats.drops[DropReason.TCP_PAWS] += 1
                self._ack_now = True
                return
        seg_len = payload_len + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        offset = self.rcv_off + seq_sub(seg.seq, self._rcv_seq())
        if flags & (SYN | ACK | RST) == SYN and self.state is State.SYN_RECEIVED and seg.seq == self.irs:
            # The peer's SYN again: our SYN-ACK was lost; repeat it (same ISN).
            self._send_syn(now, out)
            return
        if self.state is State.TIME_WAIT and flags & FIN and not flags & RST and offset + seg_len == self.rcv_off:
            # RFC 9293 §3.10.7.4 eighth step: a retransmitted FIN is acknowledged and
            # restarts the 2 MSL wait.
            self._tw_at = now + self._config.tcp_time_wait
            self._ack_now = True
            return
        # First: is the segment in the window we advertised?
        window = max(self._rcv_adv - self.rcv_off, 0)
        if self.state is State.TIME_WAIT:
            # Both FINs are in: nothing more can be received, so the window is zero and
            # only a bare ACK or RST at RCV.NXT is acceptable. Anything else is "not
            # acceptable, an acknowledgment should be sent in reply" (RFC 9293
            # §3.10.7.4 first step), which also drops an in-window RST silently.
            window = 0
        if not self._acceptable(offset - self.rcv_off, seg_len, window):
            if not flags & RST:
                self._ack_now = True
                if payload_len and not flags & SYN and offset < self.rcv_off:
                    # RFC 2883 §4 (1): old data again; the ACK reports it.
                    self._note_duplicate(offset, min(offset + payload_len, self.rcv_off))
                if flags & ACK and -1 <= offset - self.rcv_off <= 0 and not flags & (SYN | FIN):
                    # A keepalive probe (SEG.SEQ = RCV.NXT - 1, RFC 9293 §3.8.4) or a
                    # probe of our zero window (RFC 9293 §3.8.6.1): unacceptable, but the
                    # peer is there, so the idle timer starts again.
                    self._last_rx = now
                    self._keepalive_sent = 0
            stats.drops[DropReason.TCP_OUT_OF_WINDOW] += 1
            return
        # Second: RST (RFC 5961 §3.2: only an exact match resets; else challenge).
        if flags & RST:
            if offset == self.rcv_off:
                # RFC 9293 §3.10.7.4: in SYN-RECEIVED from an active open, the
                # connection was refused.
                self._finish(CloseReason.REFUSED if self.state is State.SYN_RECEIVED else CloseReason.RESET, out)
            else:
                self._challenge(now, out)
            return
        # Fourth: SYN in a synchronized state (RFC 5961 §4.2: challenge ACK).
        if flags & SYN:
            self._challenge(now, out)
            return
        # Fifth: the ACK field.
        if not flags & ACK:
            stats.drops[DropReason.TCP_NO_ACK] += 1
            return
        self._last_rx = now
        self._keepalive_sent = 0
        ack_off = self.una_off + seq_sub(seg.ack, self._snd_seq(self.una_off))
        if self.state is State.SYN_RECEIVED:
            if not self.una_off < ack_off <= self.max_off:
                self._emit_raw(out, seg.ack, 0, RST)
                stats.drops[DropReason.TCP_BAD_ACK] += 1
                return
            self._ack_of_syn(now, seg)
            self.state = State.ESTABLISHED if self._fin_off is None else State.FIN_WAIT_1
            self.snd_wnd = seg.window << self.snd_wscale
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            self._wl1, self._wl2 = seg.seq, seg.ack
            self._established(out)
        # RFC 5961 §5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT], and
        # never below ISS + 1: no peer acknowledges less than our SYN once it has
        # acknowledged it (Linux bounds MAX.SND.WND by the bytes acknowledged alike).
        if ack_off > self.max_off or ack_off < max(self.una_off - self.max_snd_wnd, 1):
            self._ack_now = True
            stats.drops[DropReason.TCP_BAD_ACK] += 1
            return
        if self._ts_ok and seg.options.ts_val is not None and offset <= self.rcv_off:
            # RFC 7323 §4.3 (2): remember the timestamp of in-order segments.
            self._ts_recent = seg.options.ts_val
        if self._ecn_ok:
            self._ecn_received(seg)
        self._process_ack(seg, ack_off, payload_len, now, out)
        if self.closed:
            return
        # Seventh and eighth: data and FIN.
        if self.state in _RECEIVES or flags & FIN:
            self._receive_payload(seg, now, out, offset)

    @staticmethod
    def _acceptable(offset: int, seg_len: int, window: int) -> bool:
        """RFC 9293 §3.10.7.4, the four cases of the acceptability test; ``offset`` is
        the segment's distance past RCV.NXT."""
        if seg_len == 0:
            return offset == 0 if window == 0 else 0 <= offset < window
        if window == 0:
            return False
        end = offset + seg_len - 1
        return 0 <= offset < window or 0 <= end < window

    def _process_ack(self, seg: TcpSegment, ack_off: int, payload_len: int, now: float, out: Output[Any]) -> None:
        if self._ecn_ok and seg.flags & ECE:
            self._ecn_echoed(now)
        delivered: list[tuple[int, int]] = []
        if self._sack_ok and seg.options.sack_blocks:
            delivered = self._take_sack(seg.options.sack_blocks, ack_off)
        new_sack = bool(delivered)
        window = seg.window << self.snd_wscale
        old_window = self.snd_wnd
        # RFC 9293 §3.10.7.4: update the send window from the newest segment.
        if seq_sub(seg.seq, self._wl1) > 0 or (seg.seq == self._wl1 and seq_sub(seg.ack, self._wl2) >= 0):
            self.snd_wnd = window
            self.max_snd_wnd = max(self.max_snd_wnd, window)
            self._wl1, self._wl2 = seg.seq, seg.ack
        duplicate = False
        old_una = self.una_off
        delivered_bytes = sum(end - start for start, end in delivered)
        if delivered_bytes:
            self._note_delivered(delivered_bytes, max(end for _, end in delivered), now)
        if ack_off > self.una_off:
            delivered_bytes += self._new_ack(ack_off, seg, now, out)
        elif ack_off == self.una_off and self.max_off > self.una_off and not self._probing:
            if self._sack_ok:
                # RFC 6675 §2: with SACK, a duplicate ACK is one whose blocks SACK data
                # not SACKed before, whatever its window (a Linux receiver grows its
                # window on almost every ACK while it autotunes its buffer).
                duplicate = new_sack
            else:
                # RFC 5681 §2: without SACK, the same window, no data, no SYN or FIN.
                duplicate = (
                    payload_len == 0 and not seg.flags & (SYN | FIN) and window == old_window and window > 0
                )
            if duplicate:
                self._dupacks += 1
        if self._probing:
            # RFC 9293 §3.8.6.1: probing goes on as long as the peer answers.
            self._retries = 0
            if self.snd_wnd > 0:
                self._probing = False
                self._rtx_at = None
        elif self.max_off > self.una_off and (delivered_bytes or duplicate):
            if new_sack:
                # The SACK blocks count whether or not the ACK also moved SND.UNA (an
                # earlier ACK may have been lost, or the receiver coalesced them).
                self._rack_update(delivered, now)
                if self._tlp is not None:
                    self._probe_sacked()
            newly_lost = False
            if self._sack_ok:
                known = (self._lost_edge(), len(self._resend))
                lost = self._detect_losses(now)
                newly_lost = (self._lost_edge(), len(self._resend)) != known
            else:
                lost = newly_lost = duplicate and self._dupacks >= self._dup_threshold()
            if not self._in_recovery and lost:
                self._enter_recovery(now, out)
            if self._in_recovery and not self._after_timeout and self._config.tcp_prr:
                safe = ack_off > old_una and not newly_lost
                self.cc.cwnd = self._prr.window(delivered_bytes, self._pipe(), int(self.cc.ssthresh), self.mss, safe)
        if self._fin_off is not None and self.una_off > self._fin_off:
            self._our_fin_acked(now, out)

    def _ecn_received(self, seg: TcpSegment) -> None:
        """RFC 3168 §6.1.3: echo a Congestion Experienced mark with ECE on every ACK
        until the peer's CWR says it has reduced its window (a CE mark on the CWR
        segment itself is echoed anew)."""
        if seg.flags & CWR:
            self._ece_pending = False
        if seg.ce:
            self._stats.tcp_ecn_ce_received += 1
            self._ece_pending = True
            self._ack_now = True  # as Linux: the echo goes at once

    def _ecn_echoed(self, now: float) -> None:
        """RFC 3168 §6.1.2: the peer echoes a CE mark: reduce the window as for a loss,
        at most once per window of data, resend nothing, and say so with CWR."""
        if self._in_recovery or self.una_off < self._ecn_recover:
            return
        self._ecn_recover = self.max_off
        self.cc.on_congestion(now, self.max_off - self.una_off)
        self._cwr_pending = True
        self._stats.tcp_ecn_reductions += 1

    def _detect_losses(self, now: float) -> bool:
        """Mark what is lost by RACK's rule (RFC 8985 §6.2 step 5) or RFC 6675's count,
        and lost retransmissions by RACK's; ``True`` if any is lost. Arms the reordering
        timer for what may yet be (RFC 8985 §6.3)."""
        rack = self._rack
        board = self._scoreboard
        reo_wnd = rack.reo_wnd(self._in_recovery, board.sacked(self.una_off, self.max_off) // self.mss, self.rtt.srtt)
        timer: float | None = None
        if self._config.tcp_loss_detection == "rack":
            lost_to, timer = rack.lost_new_data(max(self._lost_to, self.una_off), now, reo_wnd)
            self._lost_to = max(self._lost_to, min(lost_to, self.max_off))
        else:
            # RFC 6675 §5: loss recovery starts as soon as the SACK information says the
            # first unacknowledged segment is lost (IsLost(HighACK + 1)), or at
            # DupThresh duplicates (RFC 5827 early retransmit lowers it).
            if self._dupacks >= self._dup_threshold():
                self._lost_to = max(self._lost_to, min(self.una_off + self.mss, self.max_off))
        if self._rxt_log:
            at = self._find_lost_retransmissions(now, reo_wnd)
            if at is not None and (timer is None or at < timer):
                timer = at
        self._reo_at = timer
        return self._lost_edge() > self.una_off or bool(self._resend)

    def _lost_edge(self) -> int:
        """Every unSACKed byte below this offset is lost."""
        if self._config.tcp_loss_detection == "rack":
            return self._lost_to
        return max(self._scoreboard.lost_below(self.mss), self._lost_to)

    def _rack_update(self, delivered: list[tuple[int, int]], now: float) -> None:
        """RFC 8985 §6.2 steps 2 and 3 for the ranges this ACK delivered: which was sent
        last (and its RTT), and whether one sent once arrived below one delivered before
        (reordering). Retransmissions delivered leave the log."""
        rack = self._rack
        resent = bool(self._rxt_log or self._resend)
        for start, end in delivered:
            if resent and self._retransmitted(start, end):
                continue
            sent = rack.sent_record(end - 1)
            if sent is not None:
                rack.delivered(sent[0], end, now)
            rack.delivered_original(start, end)
        if not self._rxt_log:
            return
        for _, end, sent_at in self._rxt_log.take_delivered(delivered, self._scoreboard, self.una_off):
            # RFC 8985 §6.2 step 2: an ACK sooner than the minimum RTT after the
            # retransmission is for the original. (Its TSecr test is not used, as in
            # Linux: a SACK for data beyond a hole echoes the timestamp of the last
            # in-order segment, RFC 7323 §4.3, older than any retransmission it SACKs.)
            if not rack.ambiguous(sent_at, now):
                rack.delivered(sent_at, end, now)

    def _retransmitted(self, start: int, end: int) -> bool:
        if self._rxt_log.overlaps(start, end):
            return True
        return any(entry_start < end and start < entry_end for entry_start, entry_end in self._resend)

    def _probe_sacked(self) -> None:
        """RFC 8985 §6.2, for the tail loss probe: a segment SACKed that was sent after
        everything still unSACKed below it means that all of that was lost (the probe
        went last, after a whole probe timeout of silence), not reordered."""
        assert self._tlp is not None
        self._lost_if_sacked(*self._tlp)

    def _lost_if_sacked(self, start: int, end: int) -> bool:
        """If ``start..end`` is SACKed above unSACKed data, mark all of that lost."""
        if self.una_off < start and self._scoreboard.sacked(start, end) == end - start:
            self._lost_to = max(self._lost_to, start)
            return True
        return False

    def _arm_tail_probe(self, now: float) -> None:
        """RFC 8985 §7.2: with data in flight and no loss recovery going on, probe the
        tail after PTO = 2 SRTT (plus the peer's worst delayed ACK if one segment is
        out), and never later than the retransmission timeout."""
        if (
            not self._config.tcp_tail_loss_probe
            or not self._sack_ok
            or self._in_recovery
            or self._tlp is not None
            or self._probing
            or self.max_off <= self.una_off
            or self.state not in _TAIL_PROBED
        ):
            self._tlp_at = None
            return
        srtt = self.rtt.srtt
        pto = 2 * srtt if srtt is not None else 1.0
        # One segment out: the peer may hold its ACK for its delayed-ACK time; more: a
        # timer granularity's margin, as Linux adds (tcp_schedule_loss_probe).
        pto += _WORST_DELAYED_ACK if self.max_off - self.una_off <= self.mss else _PTO_MARGIN
        at = now + pto
        self._tlp_at = at if self._rtx_at is None else min(at, self._rtx_at)

    def _send_tail_probe(self, now: float, out: Output[Any]) -> None:
        """RFC 8985 §7.3: one new segment if the windows allow, else the last segment
        sent again; then the retransmission timer runs anew."""
        start = self.nxt_off
        mss = self.mss - self._sack_space()
        limit = self._send_limit()
        new_data = start == self.max_off and start < limit and self.una_off + self.snd_wnd > start
        if new_data:
            end = min(limit, start + mss, self.una_off + self.snd_wnd)
        else:
            # RFC 8985 §7.3: the highest-sequence segment sent so far, as it was sent (a
            # TSO packet: the last segment the device cut from it).
            last = self._last_sent
            start, end = max(self.una_off, last + max(self.max_off - 1 - last, 0) // mss * mss), self.max_off
            if self._lost_if_sacked(start, end):
                # The peer already holds the tail, and nothing since came back: what is
                # unSACKed below it was lost (RFC 8985 §6.2). Recover now; a copy of the
                # tail would SACK nothing new.
                self._enter_recovery(now, out)
                return
        self._tlp = (start, end)  # one probe per episode (RFC 8985 §7.4), this one too
        if new_data:
            fin = self._fin_off is not None and end == self._fin_off + 1
            sent = self._send_segment(start, min(end, self.buffer.end), fin, now, out)
        else:
            sent = self._retransmit_range(start, end, now, out)
        if sent:
            self._stats.tcp_tail_loss_probes += 1
            self._rtx_at = now + self.rtt.rto
        else:
            self._tlp = None
            self._tlp_at = self.tx_retry_at  # no buffer: the probe goes at the retry

    def _our_fin_acked(self, now: float, out: Output[Any]) -> None:
        """RFC 9293 §3.10.7.4 fifth step, the states that wait for our FIN's ACK."""
        state = self.state
        if state is State.FIN_WAIT_1:
            self.state = State.FIN_WAIT_2
        elif state is State.CLOSING:
            self._enter_time_wait(now, out)
        elif state is State.LAST_ACK:
            self._finish(CloseReason.CLOSED, out)

    def _new_ack(self, ack_off: int, seg: TcpSegment, now: float, out: Output[Any]) -> int:
        """SND.UNA moves on; returns the bytes it delivered that were not SACKed before."""
        acked = ack_off - self.una_off
        self._rxt_pending = False  # what it would have resent is acknowledged, or the next hole is
        fin_acked = self._fin_off is not None and ack_off > self._fin_off
        board = self._scoreboard
        if board:
            delivered = board.holes(self.una_off, ack_off)
            newly_delivered = sum(end - start for start, end in delivered)
        else:
            delivered, newly_delivered = [(self.una_off, ack_off)], acked
        self._note_delivered(newly_delivered, ack_off, now)
        self.una_off = ack_off
        self.buffer.ack_to(min(ack_off, self.buffer.end))
        if self.nxt_off < ack_off:
            self.nxt_off = ack_off
        board.ack_to(ack_off)
        if self._sack_ok:
            self._rack_update(delivered, now)
            if board and board.blocks[0][0] <= ack_off:
                # The ACK points into data the peer SACKed: it reneged (RFC 2018 §8),
                # and what it SACKed counts for nothing (Linux's tcp_check_sack_reneging).
                board.clear()
                self._stats.tcp_sack_reneging += 1
        self._rack.forget_below(ack_off)
        self._retries = 0
        self._first_unacked_time = now if self.max_off > ack_off else None
        # RTT: RFC 7323 §4.1 with timestamps, else one timed segment (RFC 6298 §3, Karn).
        # An echo from before our last retransmission may belong to an ACK that was
        # lost and re-sent since; RFC 6298 §3's spirit (Karn) is to not sample across
        # retransmissions, so such echoes are not used.
        ts_ecr = seg.options.ts_ecr
        sample: float | None = None
        if self._ts_ok and seg.options.ts_val is not None and ts_ecr and seq_sub(ts_ecr, self._ts_floor) >= 0:
            sample = ((self._ts_now(now) - ts_ecr) & MASK) / 1000
            self._rtt_off = None
        elif self._rtt_off is not None and ack_off >= self._rtt_off:
            sample = now - self._rtt_time
            self._rtt_off = None
        if sample is not None:
            self.rtt.sample(sample)
        else:
            self.rtt.reset_backoff()
        data_acked = acked - (1 if fin_acked else 0)
        self._dupacks = 0
        fast_recovery = self._in_recovery and not self._after_timeout
        if self._in_recovery:
            if ack_off >= self._recovery_point:
                self._end_recovery()
            elif self._high_rxt < ack_off:
                self._high_rxt = ack_off
        if not fast_recovery and data_acked > 0 and not self._probing:
            # After a timeout the window grows in slow start while the holes are
            # resent (RFC 5681 §3.1); in fast recovery PRR or RFC 6675 sets it. Bytes
            # counted when they were SACKed do not count again (as Linux's acked_sacked).
            if self._hystart is not None:
                self._hystart.on_ack(self.cc, ack_off, self.max_off, sample)
            self.cc.on_ack(min(data_acked, newly_delivered), now, self.rtt.srtt)
        # RFC 6298 §5.2, §5.3: stop the timer when all is acknowledged, else restart it.
        self._rtx_at = None if self.max_off <= ack_off else now + self.rtt.rto
        if self.max_off <= ack_off:
            self._reo_at = None  # nothing left that could be lost
        if self._tlp is not None and ack_off >= self._tlp[1]:
            self._tlp = None  # RFC 8985 §7.4: the probe's episode is over
        self._arm_tail_probe(now)
        if self._want_writable and self.buffer.free() > 0 and self.state in _CAN_SEND:
            self._want_writable = False
            out.events.append(Writable(self.flow))
        return newly_delivered

    def _note_delivered(self, count: int, newest: int, now: float) -> None:
        """Bytes the peer got (ACKed or SACKed, each once, up to ``newest``): a delivery
        rate sample, what was delivered while the newest of them was in flight over the
        time it took (draft-cheng-iccrg-delivery-rate-estimation, as TCP_INFO's
        ``tcpi_delivery_rate``)."""
        self._delivered += count
        sent = self._rack.sent_record(newest - 1)
        if sent is not None and now > sent[0]:
            self._delivery_rate = (self._delivered - sent[1]) / (now - sent[0])

    def _bytes_lost(self) -> int:
        """Unsacked bytes deemed lost and not sent again since (TCP_INFO's tcpi_lost)."""
        board = self._scoreboard
        lost = min(self._lost_edge(), self.max_off) if self._sack_ok else self.una_off
        resent = max(self._high_rxt, self.una_off)
        waiting = max(lost - resent, 0) - board.sacked(resent, lost)
        return waiting + sum((end - start) - board.sacked(start, end) for start, end in self._resend)

    def _end_recovery(self) -> None:
        """RFC 6582 §3.2 step 3 / RFC 6675 §5: the ACK covers the recovery point."""
        self._in_recovery = False
        self._lost_to = 0
        self._rxt_log.clear()
        self._resend = []
        self._reo_at = None
        if self._after_timeout:
            self._after_timeout = False  # the window goes on from where slow start took it
        else:
            self.cc.cwnd = self.cc.ssthresh  # RFC 6937 §3.1: cwnd = ssthresh at the end
        if self._undo_from is not None and self._undo_bytes == 0:
            self._undo()  # every retransmission came back as a duplicate during recovery
        if self._sack_ok:
            self._rack.recovery_ended()

    def _take_sack(self, blocks: tuple[tuple[int, int], ...], ack_off: int) -> list[tuple[int, int]]:
        """Record SACK blocks; returns the ranges they SACKed that were not before."""
        una_seq = self._snd_seq(self.una_off)
        board = self._scoreboard
        fresh: list[tuple[int, int]] = []
        offsets = [(self.una_off + seq_sub(left, una_seq), self.una_off + seq_sub(right, una_seq)) for left, right in blocks]
        for index, (start, end) in enumerate(offsets):
            if index == 0 and start < end and (
                end <= ack_off or (len(offsets) > 1 and offsets[1][0] <= start and end <= offsets[1][1])
            ):
                # RFC 2883 §4: a first block below the cumulative ACK, or inside the
                # second block, reports data that arrived twice.
                self._on_dsack(start, end)
                continue
            # RFC 2018 §3 blocks must lie above SND.UNA and within what we sent.
            if self.una_off < start < end <= self.max_off:
                holes = board.holes(start, end)
                if board.add(start, end):
                    fresh += holes
                else:
                    self._stats.tcp_sack_blocks_ignored += 1
        return fresh

    def _on_dsack(self, start: int, end: int) -> None:
        """The peer got ``start..end`` twice: RACK widens its reordering window (RFC
        8985 §6.2 step 4), and once every byte resent for the last window reduction has
        come back so, the reduction was for nothing and is undone (RFC 3708 §3, as
        Linux's DSACK undo)."""
        self._stats.tcp_dsacks_received += 1
        self._dsacks += 1
        self._rack.saw_dsack(self.max_off, self.una_off)
        if self._undo_from is None or self._undo_bytes <= 0:
            return
        # Only duplicates of what was resent count (not of originals the network doubled),
        # each byte once: a range counted leaves the list, so a repeated report of the
        # same duplicate (Linux reports it again with each ACK until new data) is ignored.
        resent, left = 0, []
        for low, high in self._undo_ranges:
            if start < high and low < end:
                resent += min(end, high) - max(start, low)
                left += [(a, b) for a, b in ((low, start), (end, high)) if a < b]  # what is left of it
            else:
                left.append((low, high))
        self._undo_ranges = left
        self._undo_bytes -= min(resent, self._undo_bytes)
        if self._undo_bytes == 0 and not (self._in_recovery and not self._after_timeout):
            self._undo()

    def _undo(self) -> None:
        """Return to the window from before the reduction (Linux's
        tcp_undo_cwnd_reduction)."""
        self.cc.cwnd = max(self.cc.cwnd, self._prior_cwnd)
        self.cc.ssthresh = max(self.cc.ssthresh, self._prior_ssthresh)
        self._undo_from = None
        self._undo_ranges = []
        self._stats.tcp_undos += 1

    def _start_undo_episode(self) -> None:
        """A window reduction begins: remember the window to return to if it proves
        spurious (kept from the first reduction while one is still open)."""
        if self._undo_from is None:
            self._undo_from = self.una_off
            self._undo_bytes = -1  # nothing resent yet
            self._undo_ranges = []
            self._prior_cwnd, self._prior_ssthresh = self.cc.cwnd, self.cc.ssthresh
        self._undo_to = self.max_off

    def _dup_threshold(self) -> int:
        """RFC 5827 §3.1 early retransmit: with fewer than four segments outstanding
        and nothing new to send, one duplicate ACK fewer than are possible suffices."""
        outstanding = -(-(self.max_off - self.una_off) // self.mss)
        if outstanding < 4 and self.max_off >= self._send_limit():
            return max(outstanding - 1, 1)
        return _DUP_THRESHOLD

    def _enter_recovery(self, now: float, out: Output[Any]) -> None:
        # RFC 6582 §3.2 step 2: no new reduction for losses from before the last RTO.
        if self.una_off < self._recover:
            return
        self._in_recovery = True
        self._tlp_at = None  # RFC 8985 §7.2: no tail loss probe during recovery
        self._recovery_point = self._recover = self.max_off
        self._start_undo_episode()
        self._prr.start(int(self.cc.cwnd))  # RFC 6937 §3.1: RecoverFS
        self.cc.on_congestion(now, self.max_off - self.una_off)
        self._stats.tcp_fast_recoveries += 1
        # RFC 6675 §5 (4.2) / RFC 5681 §3.2 (4): resend the first unacknowledged segment
        # (with the transmissions that follow, once PRR has set the window for this ACK),
        # and set HighRxt to its end so that it is not resent again at once.
        self._rxt_pending = True
        self._rtt_off = None

    def _resend_first_unacked(self, now: float, out: Output[Any]) -> bool:
        """The retransmission that starts recovery; ``False`` if it found no buffer."""
        end = min(self.una_off + self.mss - self._sack_space(), self._send_limit())
        if not self._retransmit_range(self.una_off, end, now, out):
            return False
        self._high_rxt = max(self._high_rxt, end)
        return True

    def _receive_payload(self, seg: TcpSegment, now: float, out: Output[Any], offset: int | None = None) -> None:
        """RFC 9293 §3.10.7.4 seventh (text) and eighth (FIN) steps."""
        if offset is None:
            offset = self.rcv_off + seq_sub(seg.seq, self._rcv_seq())
        flags = seg.flags
        if flags & SYN:
            offset += 1
        payload = seg.payload
        if flags & FIN and self._peer_fin_off is None:
            self._peer_fin_off = offset + len(payload)
        if payload and self.state in _RECEIVES:
            # Trim to the window: nothing before RCV.NXT, nothing past the right edge.
            right = max(self._rcv_adv, self.rcv_off)
            start = offset
            end = min(offset + len(payload), right)
            if start < self.rcv_off:
                # RFC 2883 §4 (1): data below RCV.NXT arrived twice; the next ACK says so.
                self._note_duplicate(start, min(end, self.rcv_off))
                payload = payload[self.rcv_off - start :]
                start = self.rcv_off
            if end > start:
                data = bytes(payload[: end - start])
                if start == self.rcv_off:
                    self._deliver(data, out)
                    held = self._assembler.pop_ready(self.rcv_off)
                    filled = held is not None
                    while held is not None:
                        self._deliver(held, out)
                        held = self._assembler.pop_ready(self.rcv_off)
                    self._assembler.discard_below(self.rcv_off)
                    self._owe_ack(now, filled)
                    if filled and not self._assembler:
                        self._quick_acks = self._config.tcp_quick_acks
                else:
                    # RFC 2883 §4 (2): out-of-order data held already arrived twice.
                    duplicate = self._assembler.held(start, end)
                    if duplicate is not None:
                        self._note_duplicate(*duplicate)
                    refused = self._assembler.insert(start, data)
                    if refused is not None:
                        self._stats.drops[refused] += 1
                    # RFC 5681 §4.2: out-of-order data is acknowledged at once.
                    self._ack_now = True
            elif len(seg.payload):
                self._ack_now = True  # a duplicate: tell the peer where we are
        if self._peer_fin_off is not None and self.rcv_off == self._peer_fin_off and not self._eof_delivered:
            self._receive_fin(now, out)
        elif flags & FIN and not self._eof_delivered:
            # A FIN past a hole: RFC 5681 §4.2, an out-of-order segment is acknowledged
            # at once.
            self._ack_now = True

    def _note_duplicate(self, start: int, end: int) -> None:
        # The peer resent what we had: our ACKs may have been lost, so the next ones go
        # at once (Linux's tcp_send_dupack enters quick-ACK mode).
        self._quick_acks = self._config.tcp_quick_acks
        # Not before the handshake completes nor in TIME-WAIT, as Linux, whose request
        # and TIME-WAIT mini-sockets keep no SACK state (RFC 2883 leaves D-SACK to the
        # receiver: "When D-SACK is used").
        if self._sack_ok and self._config.tcp_dsack and start < end and self.state in _REPORTS_DUPLICATES:
            self._dsack = (start, end)

    def _owe_ack(self, now: float, filled: bool) -> None:
        """In-order data arrived. RFC 9293 §3.8.6.3 / RFC 5681 §4.2: ACK at least every
        second full-sized segment, and at once when a gap was (partly) filled; in
        quick-ACK mode (``Config.tcp_quick_acks``) every segment."""
        self._ack_pending += 1
        if self._quick_acks:
            self._quick_acks -= 1
            self._ack_now = True
        elif self._ack_pending >= 2 or filled or self._config.tcp_delayed_ack == 0:
            self._ack_now = True
        elif self._ack_at is None:
            self._ack_at = now + self._config.tcp_delayed_ack

    def _deliver(self, data: bytes, out: Output[Any]) -> None:
        self.rcv_off += len(data)
        if self._config.rx_manual_consume:
            self.unconsumed += len(data)
        out.events.append(DataReceived(self.flow, data))

    def _receive_fin(self, now: float, out: Output[Any]) -> None:
        self.rcv_off += 1
        self._eof_delivered = True
        self._ack_now = True
        out.events.append(EndOfStream(self.flow))
        state = self.state
        if state in (State.SYN_RECEIVED, State.ESTABLISHED):
            self.state = State.CLOSE_WAIT
        elif state is State.FIN_WAIT_1:
            if self._fin_off is not None and self.una_off > self._fin_off:
                self._enter_time_wait(now, out)
            else:
                self.state = State.CLOSING
        elif state is State.FIN_WAIT_2:
            self._enter_time_wait(now, out)

    # -- sending ------------------------------------------------------------------------

    def _transmit(self, now: float, out: Output[Any]) -> None:
        """Send whatever the windows allow, then an ACK if one is owed. A segment that
        finds no buffer stays unsent (``tx_retry_at``), and an ACK stays owed."""
        state = self.state
        if self._syn_unsent and (state is State.SYN_SENT or state is State.SYN_RECEIVED):
            return  # nothing goes before our SYN (resume sends it first)
        if (
            state in _SYNCHRONIZED
            and state is not State.TIME_WAIT
            and (self.nxt_off < self._send_limit() or self._in_recovery)
        ):
            max_off = self.max_off
            sent = self._send_data(now, out)
            if self.max_off > max_off:
                # From the newest segment, as Linux reschedules it: once per burst.
                self._arm_tail_probe(now)
            if not sent:
                return  # no buffer: the ACK waits with the data
        if self._ack_now and state not in (State.SYN_SENT, State.AWAITING_ACCEPT, State.CLOSED):
            # A pure ACK carries SND.NXT, the highest sequence number sent. In
            # SYN-RECEIVED this is what completes a simultaneous open (RFC 9293 figure 8).
            # A zero-window probe's byte does not count: the peer dropped it, and an ACK
            # past its RCV.NXT would be out of its closed window (RFC 9293 §3.10.7.4),
            # dropped unread and answered, by an ACK that may meet the same fate.
            self._emit(out, self.nxt_off if self._probing else self.max_off, ACK, b"", now)

    def _send_limit(self) -> int:
        """The highest offset we may send to: data queued, plus our FIN."""
        return self.buffer.end if self._fin_off is None else self._fin_off + 1

    def _pipe(self) -> int:
        """RFC 6675 §4 SetPipe: bytes we believe are still in the network."""
        flight = self.max_off - self.una_off
        if not self._in_recovery:
            # After a timeout everything beyond SND.NXT is taken as lost (RFC 6675
            # §5.1, as Linux's loss state does): only what was sent again is in flight.
            return self.nxt_off - self.una_off
        board = self._scoreboard
        retransmitted = max(0, self._high_rxt - self.una_off)
        if not self._sack_ok:
            # Without SACK each duplicate ACK stands for one segment that has left.
            return max(0, flight - self._dupacks * self.mss) + retransmitted
        lost = max(self._lost_edge(), self.una_off)
        in_flight = (self.max_off - lost) - board.sacked(lost, self.max_off)
        resent_low = min(self._high_rxt, lost)
        if resent_low > self.una_off:
            in_flight += (resent_low - self.una_off) - board.sacked(self.una_off, resent_low)
        for start, end in self._resend:
            # A retransmission found lost has left the network (RFC 8985 §6.2; Linux
            # takes it out of packets in flight), which leaves room to send it again.
            in_flight -= (end - start) - board.sacked(start, end)
        return max(in_flight, 0)

    def _send_data(self, now: float, out: Output[Any]) -> bool:
        """Send new data and SACK-recovery retransmissions as the windows allow;
        ``False`` if a segment found no buffer (the rest waits with it)."""
        mss = self.mss - self._sack_space()
        burst = mss
        tso = self._config.tcp_tso_packet
        if tso:
            # The driver's device splits a large segment into MSS-sized ones (TSO): new
            # data goes out in a whole number of segments per packet.
            burst = max(mss, (tso - _HEADERS[self._version] - 40) // mss * mss)
            if self._cwr_pending:
                burst = mss  # CWR goes on one segment, not on every one a device cuts
        limit = self._send_limit()
        if self._rxt_pending:
            # RFC 6675 §5 (4.2): the retransmission that starts recovery, whatever cwnd says.
            if not self._resend_first_unacked(now, out):
                return False
            self._rxt_pending = False
        while True:
            window_edge = self.una_off + self.snd_wnd
            room = int(self.cc.cwnd) - self._pipe()
            if self._dupacks and not self._in_recovery:
                # RFC 3042 §2 limited transmit: each of the first two duplicate ACKs
                # lets one new segment out beyond the congestion window.
                room += min(self._dupacks, 2) * mss
            if self._in_recovery:
                hole = self._next_resend() or self._next_hole(limit)
                if hole is not None:
                    if room < mss and room < hole[1] - hole[0]:
                        break
                    # A hole goes again in packets as large as new data's (TSO) when the
                    # window allows, as Linux resends whole GSO buffers: where loss
                    # strikes per packet, forty MSS-sized resends lose two.
                    end = min(hole[1], hole[0] + max(mss, min(burst, room) // mss * mss))
                    if not self._retransmit_range(hole[0], end, now, out):
                        return False
                    if self._resend and hole[0] == self._resend[0][0]:
                        self._resend[0] = (end, self._resend[0][1])
                    else:
                        self._high_rxt = end
                    continue
            start = self.nxt_off
            if start >= limit:
                break
            end = min(limit, start + burst, window_edge, start + max(room, 0))
            if end <= start:
                if self.snd_wnd == 0 and self.max_off <= self.una_off and not self._probing:
                    # RFC 9293 §3.8.6.1: a zero window: probe it with the persist timer.
                    self._probing = True
                    self._rtx_at = now + self.rtt.rto
                break
            size = end - start
            data_end = min(end, self.buffer.end)
            fin = self._fin_off is not None and end == self._fin_off + 1
            if size < mss and not fin and start >= self.max_off:
                # RFC 9293 §3.8.6.2.1 sender SWS avoidance, and Nagle (RFC 896) when on:
                # a short segment goes only if it empties the queue and (Nagle off, or
                # nothing is in flight), or it is at least half the largest window seen.
                empties = data_end == self.buffer.end
                idle = self.max_off == self.una_off
                if not ((empties and (not self.nagle or idle)) or size >= self.max_snd_wnd // 2):
                    if idle and self._rtx_at is None:
                        self._rtx_at = now + self.rtt.rto  # the override timeout
                        self._probing = True
                    break
            if not self._send_segment(start, data_end, fin, now, out):
                return False
        return True

    def _next_resend(self) -> tuple[int, int] | None:
        """The first retransmission found lost that is still neither acknowledged nor
        SACKed (ranges done with are dropped)."""
        resend = self._resend
        while resend:
            start, end = resend[0]
            start = max(start, self.una_off)
            if start < end and self._scoreboard.sacked(start, end) < end - start:
                resend[0] = (start, end)
                return start, end
            resend.pop(0)
        return None

    def _find_lost_retransmissions(self, now: float, reo_wnd: float) -> float | None:
        """RFC 8985 §6.2 step 5 for retransmissions: one sent before the last segment
        delivered, and not delivered a reordering window after that segment's RTT, was
        lost too, and goes again (not at the retransmission timeout). Returns when the
        next one waiting would be lost."""
        lost, timer = self._rxt_log.take_lost(self._rack, reo_wnd, now, self._scoreboard, self.una_off)
        self._resend += lost
        self._stats.tcp_lost_retransmits += len(lost)
        return timer

    def _next_hole(self, limit: int) -> tuple[int, int] | None:
        """RFC 6675 §5 NextSeg rule 1: the first lost, not yet resent range."""
        start = max(self._high_rxt, self.una_off)
        if self._sack_ok:
            lost = self._lost_edge()
            if lost <= start:
                return None
            return self._scoreboard.next_hole(start, min(lost, self.max_off))
        # NewReno (RFC 6582): after a partial ACK, the segment at SND.UNA is lost.
        if start > self.una_off:
            return None
        return (self.una_off, min(self.una_off + self.mss, self.max_off, limit)) if self.una_off < self.max_off else None

    def _retransmit_range(self, start: int, end: int, now: float, out: Output[Any]) -> bool:
        """Send ``start..end`` again; ``False`` if it found no buffer."""
        if end <= start:
            return True
        fin = self._fin_off is not None and end == self._fin_off + 1
        return self._send_segment(start, min(end, self.buffer.end), fin, now, out)

    def _send_segment(self, start: int, data_end: int, fin: bool, now: float, out: Output[Any]) -> bool:
        """Send one data (or FIN) segment and account for it; ``False`` if it found no
        buffer: then it was not sent and nothing counts it as in flight."""
        payload = self.buffer.chunk(start, data_end - start) if data_end > start else b""
        flags = ACK | (FIN if fin else 0) | (PSH if data_end == self.buffer.end and payload else 0)
        new = start >= self.max_off
        cwr = self._cwr_pending and new and bool(payload)
        if cwr:
            flags |= CWR  # RFC 3168 §6.1.2: the first new data after the reduction
        # RFC 3168 §6.1.5: ECT on new data only, never on a retransmission (nor, §6.1.4,
        # on a pure ACK or a window probe).
        if not self._emit(out, start, flags, payload, now, self._ecn_ok and new and bool(payload)):
            return False
        if cwr:
            self._cwr_pending = False
        end = data_end + (1 if fin else 0)
        if start < self.max_off:
            self._stats.tcp_retransmits += 1
            self._total_retrans += 1
            self._rtt_off = None  # Karn: never time a retransmission
            self._ts_floor = self._ts_now(now)
            if self._sack_ok:
                self._rxt_log.add(start, end, now)
            if self._undo_from is not None and start < self._undo_to:
                self._undo_bytes = max(self._undo_bytes, 0) + min(end, self._undo_to) - start
                self._undo_ranges.append((start, min(end, self._undo_to)))
        else:
            self._rack.sent(end, now, self._delivered)
            self._last_sent = start
            if self._rtt_off is None and not self._ts_ok:
                self._rtt_off, self._rtt_time = end, now
        if self._in_recovery:
            self._prr.out += end - start  # RFC 6937 §3.1: prr_out
        if self.nxt_off < end:
            self.nxt_off = end
        if self.max_off < end:
            self.max_off = end
            if self._first_unacked_time is None:
                self._first_unacked_time = now
        if self._rtx_at is None or self._probing:
            self._probing = False
            self._rtx_at = now + self.rtt.rto
        return True

    def _emit(
        self, out: Output[Any], offset: int, flags: int, payload: bytes | bytearray, now: float, ect: bool = False
    ) -> bool:
        """Send one segment of a synchronized connection: ACK, window and options.
        ``False`` if the stack's ``tx_buffer`` had no buffer: nothing was sent, and an
        ACK it would have carried is still owed. ``ect``: mark it ECN-capable."""
        window = self._advertise()
        if self._ece_pending:
            flags |= ECE
        options = b""
        if self._ts_ok:
            options = _TIMESTAMP.pack(1, 1, 8, 10, self._ts_now(now), self._ts_recent)
        ranges = self._sack_ranges()
        if ranges:
            blocks = tuple(((self.irs + s) & MASK, (self.irs + e) & MASK) for s, e in ranges)
            options += encode_options(TcpOptions(sack_blocks=blocks))
        if not self._writer.send_tcp(
            out.packets, self._local, self._remote, self._lport, self._rport,
            self._snd_seq(offset), self._rcv_seq(), flags, window, options, payload,
            max(self.path_mtu, self._config.tcp_tso_packet), True, _ECT0 if ect else 0,
        ):
            self._wait_for_buffer(now)
            return False
        self._ack_now = False
        self._ack_pending = 0
        self._ack_at = None
        if self._dsack is not None and ranges:
            self._dsack = None
            self._stats.tcp_dsacks_sent += 1
        return True

    def _wait_for_buffer(self, now: float) -> None:
        """A send found no buffer: the stack calls :meth:`resume` at its next call, or
        at ``tx_retry_at`` if none comes sooner (not at the retransmission timeout:
        nothing was lost)."""
        if self.tx_retry_at is None:
            self.tx_retry_at = now + self._config.tx_retry_interval

    def resume(self, now: float, out: Output[Any]) -> None:
        """Send what waited for a buffer: a SYN or SYN-ACK, data, an owed ACK."""
        self.tx_retry_at = None
        if self._syn_unsent and self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            self._send_syn(now, out)
        else:
            self._transmit(now, out)
        if self.tx_retry_at is None:
            self._stats.tcp_tx_resumed += 1
        self._update_deadline()

    def _emit_raw(self, out: Output[Any], seq: int, ack: int, flags: int) -> None:
        """A reset with explicit numbers (RFC 9293 §3.10.7.1 forms)."""
        self._stats.tcp_resets_sent += 1
        self._writer.send_tcp(
            out.packets, self._local, self._remote, self._lport, self._rport, seq, ack, flags, 0, b"", b"", self.path_mtu
        )

    def _challenge(self, now: float, out: Output[Any]) -> None:
        """RFC 5961 §3.2, §4.2: answer with an ACK the real peer can act on, rate-limited
        (§7)."""
        self._stats.drops[DropReason.TCP_CHALLENGED] += 1
        if self._limiter.allow(now):
            self._stats.tcp_challenge_acks += 1
            self._emit(out, self.max_off, ACK, b"", now)

    def _advertise(self) -> int:
        """The window field to send, with receiver SWS avoidance (RFC 9293 §3.8.6.2.2):
        the right edge moves on only by at least min(buffer / 2, MSS), and never back."""
        space = self._rcv_buffer - self.unconsumed
        right = self.rcv_off + space
        if right > self._rcv_adv and right - self._rcv_adv < min(self._rcv_buffer // 2, self.mss):
            right = self._rcv_adv
        right = max(right, self._rcv_adv)
        field = min((right - self.rcv_off) >> self.rcv_wscale, 0xFFFF)
        self._rcv_adv = max(self._rcv_adv, self.rcv_off + (field << self.rcv_wscale))
        return field

    def tso_segment_size(self, options: int) -> int:
        """Payload bytes per segment of a packet sent with ``options`` bytes of TCP
        options: the MSS (already net of timestamps) less the SACK blocks beside them."""
        return self.mss - (options - (12 if self._ts_ok else 0))

    def _sack_space(self) -> int:
        """Option bytes the SACK blocks of the next segment take from its payload."""
        ranges = self._sack_ranges()
        return 4 + 8 * len(ranges) if ranges else 0

    def _sack_ranges(self) -> list[tuple[int, int]]:
        """The SACK blocks to send, as offsets: RFC 2018 §3, as many as fit beside the
        timestamps, the most recent first (§4). A FIN held beyond a hole occupies one
        sequence number of "contiguous sequence space" (§3) and is reported too, with
        the data it ends or alone, as Linux does: the sender need not resend it."""
        if not self._sack_ok:
            return []
        limit = 3 if self._ts_ok else 4
        ranges = self._assembler.sack_ranges(limit) if self._assembler else []
        fin = self._peer_fin_off
        if fin is not None and not self._eof_delivered and fin > self.rcv_off:
            for index, (start, end) in enumerate(ranges):
                if end == fin:
                    ranges[index] = (start, fin + 1)
                    break
            else:
                ranges = [(fin, fin + 1), *ranges][:limit]
        if self._dsack is not None:
            # RFC 2883 §4: the duplicate goes first, once, then the blocks as usual.
            ranges = [self._dsack, *ranges][:limit]
        return ranges

    def _window_update_due(self) -> bool:
        space = self._rcv_buffer - self.unconsumed
        return self.rcv_off + space - self._rcv_adv >= min(self._rcv_buffer // 2, self.mss)

    # -- timers -------------------------------------------------------------------------

    def on_timer(self, now: float, out: Output[Any]) -> None:
        """Run whatever of this connection's timers is due."""
        config = self._config
        if self._tw_at is not None and now >= self._tw_at:
            self._finish(CloseReason.CLOSED, out)
            return
        idle_limit = self._idle_limit()
        if idle_limit is not None and now >= self._last_rx + idle_limit:
            self.abort(now, out, CloseReason.IDLE)
            return
        user_timeout_at = self._user_timeout_at()
        if user_timeout_at is not None and now >= user_timeout_at:
            # RFC 9293 §3.10.8: the user timeout ends the connection when it expires, not
            # at the next retransmission (which backoff may have put much later).
            self._finish(CloseReason.TIMED_OUT, out)
            return
        if self._reo_at is not None and now >= self._reo_at:
            # RFC 8985 §6.3: the reordering window has passed; what is still missing is lost.
            self._reo_at = None
            if self._detect_losses(now) and not self._in_recovery:
                self._enter_recovery(now, out)
        if self._tlp_at is not None and now >= self._tlp_at:
            self._tlp_at = None
            self._send_tail_probe(now, out)
        if self._rtx_at is not None and now >= self._rtx_at:
            self._on_retransmit_timer(now, out)
            if self.closed:
                return
        if self._ack_at is not None and now >= self._ack_at:
            self._ack_now = True
            self._ack_at = None
        keepalive_at = self._keepalive_at()
        if keepalive_at is not None and now >= keepalive_at:
            if self._keepalive_sent >= config.tcp_keepalive_count:
                self._finish(CloseReason.TIMED_OUT, out)
                return
            # RFC 9293 §3.8.4: a probe carrying SND.NXT - 1, no data, invites an ACK.
            # One that found no buffer is sent again at the retry; it does not count.
            if self._emit(out, self.max_off - 1, ACK, b"", now):
                self._keepalive_sent += 1
        self._transmit(now, out)
        self._update_deadline()

    def _on_retransmit_timer(self, now: float, out: Output[Any]) -> None:
        config = self._config
        self._rtx_at = None
        if self._probing:
            self._probe(now, out)
            return
        self._retries += 1
        limit = config.tcp_syn_retries if self.state in (State.SYN_SENT, State.SYN_RECEIVED) else config.tcp_max_retries
        if self._retries > limit:
            self._finish(CloseReason.TIMED_OUT, out)
            return
        self._stats.tcp_timeouts += 1
        # RFC 6298 §5.5: back off; §5.4: retransmit the earliest unacknowledged segment.
        self.rtt.back_off()
        self._rtt_off = None
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            self._stats.tcp_retransmits += 1
            self._send_syn(now, out)
            self._rtx_at = now + self.rtt.rto
            return
        # RFC 5681 §3.1 eq. (4) and §5 of RFC 6582: collapse the window, remember how
        # far we had sent, and go back to SND.UNA. SACK information is kept no longer
        # (RFC 6675 §5.1 lets the sender discard it after a timeout).
        self._start_undo_episode()
        self.cc.on_timeout(self.max_off - self.una_off)
        self._recover = self.max_off
        self._rxt_pending = False
        self._tlp_at, self._tlp, self._reo_at = None, None, None
        self._rxt_log.clear()
        self._resend = []
        self._dupacks = 0
        self._high_rxt = self.una_off
        # RFC 9293 §3.7.1: "if there are any IP or TCP options to be sent in a packet,
        # then the sender must decrease the size of the TCP data accordingly": the SACK
        # blocks of what we hold out of order, or the segment outgrows the path's MTU.
        end = min(self.una_off + self.mss - self._sack_space(), self._send_limit(), self.max_off)
        if self._sack_ok:
            # Everything not SACKed is lost, and is resent hole by hole as the window
            # grows in slow start; what the peer SACKed is not sent again unless it
            # reneges (as Linux's loss state: RFC 2018 §8 lets the sender keep SACK
            # information, RFC 6675 §5.1 to clear it).
            self._in_recovery = self._after_timeout = True
            self._recovery_point = self.max_off
            self._lost_to = self.max_off
            hole = self._scoreboard.next_hole(self.una_off, self.max_off)
            if hole is not None:
                end = min(hole[1], hole[0] + self.mss - self._sack_space())
                if self._retransmit_range(hole[0], end, now, out):
                    self._high_rxt = end
        else:
            # RFC 5681 §3.1, go-back-N from SND.UNA.
            self._in_recovery = False
            self._lost_to = 0
            self.nxt_off = self.una_off
            self._retransmit_range(self.una_off, end, now, out)
        self._rtx_at = now + self.rtt.rto

    def _probe(self, now: float, out: Output[Any]) -> None:
        """RFC 9293 §3.8.6.1: a zero-window probe carries one byte of new data, sent
        on the persist timer with exponential backoff for as long as the peer answers."""
        if self._retries >= self._config.tcp_max_retries:
            self._finish(CloseReason.TIMED_OUT, out)
            return
        self._probing = True
        if self.una_off < self.buffer.end:
            # The byte counts as sent (its ACK is acceptable) but SND.NXT stays: a
            # receiver with a closed window drops it, so sending resumes at SND.UNA.
            sent = self._emit(out, self.una_off, ACK, self.buffer.chunk(self.una_off, 1), now)
            if sent:
                self.max_off = max(self.max_off, self.una_off + 1)
        else:
            # Nothing but a FIN waits: an empty segment below the window asks for an ACK.
            sent = self._emit(out, self.max_off - 1, ACK, b"", now)
        if sent:  # one that found no buffer is not a try: the persist timer runs again
            self._retries += 1
            self.rtt.back_off()
        self._rtx_at = now + self.rtt.rto

    def _idle_limit(self) -> float | None:
        config = self._config
        if self.state is State.ESTABLISHED:
            return config.tcp_idle_timeout
        if self.state is State.TIME_WAIT:
            return None
        return config.tcp_halfopen_idle_timeout

    def _user_timeout_at(self) -> float | None:
        """When unacknowledged data will have waited ``tcp_user_timeout`` (RFC 9293 §3.8.3)."""
        timeout = self._config.tcp_user_timeout
        if timeout is None or self._first_unacked_time is None:
            return None
        return self._first_unacked_time + timeout

    def _keepalive_at(self) -> float | None:
        idle = self._config.tcp_keepalive_idle
        if idle is None or self.state is not State.ESTABLISHED or self.max_off > self.una_off:
            return None
        return self._last_rx + idle + self._keepalive_sent * self._config.tcp_keepalive_interval

    def _update_deadline(self) -> None:
        if self.closed:
            self.deadline = None
            return
        # The earliest of the connection's timers (the single slot the stack's heap
        # watches); written out rather than min() over a list: this runs per segment.
        deadline = self._rtx_at
        tlp_at = self._tlp_at
        if tlp_at is not None and (deadline is None or tlp_at < deadline):
            deadline = tlp_at
        reo_at = self._reo_at
        if reo_at is not None and (deadline is None or reo_at < deadline):
            deadline = reo_at
        ack_at = self._ack_at
        if ack_at is not None and (deadline is None or ack_at < deadline):
            deadline = ack_at
        if self.state is State.TIME_WAIT:
            tw_at = self._tw_at
            if tw_at is not None and (deadline is None or tw_at < deadline):
                deadline = tw_at
            self.deadline = deadline
            return
        config = self._config
        if config.tcp_keepalive_idle is not None or config.tcp_user_timeout is not None:
            for candidate in (self._keepalive_at(), self._user_timeout_at()):
                if candidate is not None and (deadline is None or candidate < deadline):
                    deadline = candidate
        idle = self._idle_limit()
        if idle is not None and (deadline is None or self._last_rx + idle < deadline):
            deadline = self._last_rx + idle
        self.deadline = deadline

    # -- endings ------------------------------------------------------------------------

    def _established(self, out: Output[Any]) -> None:
        if self._ecn_ok:
            self._stats.tcp_ecn_negotiated += 1
        self._opened = True
        self._syn_options = None
        self._stats.tcp_established += 1
        self._stats.flows_opened += 1
        out.events.append(FlowOpened(self.flow))

    def _ack_of_syn(self, now: float, seg: TcpSegment) -> None:
        self.una_off = 1
        self.nxt_off = max(self.nxt_off, 1)
        self._syn_unsent = False
        timed_out = self._retries > 0
        self._retries = 0
        if self._ts_ok and seg.options.ts_ecr:
            self.rtt.sample(((self._ts_now(now) - seg.options.ts_ecr) & MASK) / 1000)
        elif self._rtt_off == 1:
            self.rtt.sample(now - self._rtt_time)
        elif timed_out and self.rtt.srtt is None:
            # RFC 6298 §5.7: the handshake timed out and left no sample. (A connection
            # from a SYN cookie without timestamps has no sample either; it keeps the
            # initial RTO, RFC 6298 §2.1.)
            self.rtt.restart_after_handshake_timeout()
        self._rtt_off = None
        self._rtx_at = None
        # RFC 6928 §2 with the MSS now agreed.
        self.cc = CONTROLLERS[self._config.tcp_congestion_control](self.mss)

    def _enter_time_wait(self, now: float, out: Output[Any]) -> None:
        """RFC 9293 §3.10.7.4: both FINs are through. The application is done with the
        flow; the stack keeps it 2 MSL to answer a retransmitted FIN."""
        self.state = State.TIME_WAIT
        self._tw_at = now + self._config.tcp_time_wait
        self._rtx_at = None
        self._ack_at = None
        self._release_buffers()
        self._stats.flows_closed += 1
        out.events.append(FlowClosed(self.flow, CloseReason.CLOSED, self.info()))

    def _finish(self, reason: CloseReason, out: Output[Any]) -> None:
        """The connection is over: tell the application (once) and let the stack drop it."""
        # TIME_WAIT has told the application already; a flow it never heard of (an
        # unaccepted handshake) ends silently.
        if self.state is not State.TIME_WAIT and self._opened:
            self._stats.flows_closed += 1
            out.events.append(FlowClosed(self.flow, reason, self.info()))
        self.state = State.CLOSED
        self.closed = True
        self.deadline = None
        self._release_buffers()

    def _release_buffers(self) -> None:
        """Nothing more will be sent or reassembled: return the bytes held to the
        stack-wide budget (``Config.max_tcp_buffer_bytes``)."""
        self.buffer.release()
        self._assembler.release()

    def info(self) -> FlowInfo:
        return FlowInfo(
            state=self.state.name,
            snd_una=self._snd_seq(self.una_off),
            snd_nxt=self._snd_seq(self.max_off),
            snd_wnd=self.snd_wnd,
            rcv_nxt=self._rcv_seq(),
            rcv_wnd=max(self._rcv_adv - self.rcv_off, 0),
            mss=self.mss,
            cwnd=int(self.cc.cwnd),
            ssthresh=int(min(self.cc.ssthresh, 0x7FFFFFFF)),
            srtt=self.rtt.srtt,
            rto=self.rtt.rto,
            bytes_queued=len(self.buffer),
            bytes_in_flight=self.max_off - self.una_off,
            unconsumed=self.unconsumed,
            retransmits=self._retries,
            rttvar=self.rtt.rttvar,
            # Offsets count our SYN (offset 0) and FIN, and the peer's, as one byte each.
            bytes_acked=max(self.una_off - 1 - (self._fin_off is not None and self.una_off > self._fin_off), 0),
            bytes_received=max(self.rcv_off - 1 - self._eof_delivered, 0),
            bytes_sacked=self._scoreboard.sacked(self.una_off, self.max_off) if self._scoreboard else 0,
            in_recovery=self._in_recovery,
            min_rtt=self._rack.min_rtt,
            total_retransmits=self._total_retrans,
            bytes_lost=self._bytes_lost() if self._in_recovery else 0,
            dsacks_received=self._dsacks,
            reordering_seen=self._rack.reordering_seen,
            delivery_rate=self._delivery_rate,
            ecn=self._ecn_ok,
        )

    def quotes(self, seq: int | None) -> bool:
        """RFC 5927 §4.1: whether an ICMP error's quoted sequence number is one we have
        in flight (from SND.UNA to SND.NXT)."""
        if seq is None:
            return False
        return 0 <= seq_sub(seq, self._snd_seq(self.una_off)) <= self.max_off - self.una_off

    # -- helpers ------------------------------------------------------------------------

    def _snd_seq(self, offset: int) -> int:
        return (self.iss + offset) & MASK

    def _rcv_seq(self) -> int:
        return (self.irs + self.rcv_off) & MASK

    def _ts_now(self, now: float) -> int:
        return (int(now * 1000) + self._ts_offset) & MASK

    def _set_mss(self, mss: int) -> None:
        """Set the payload per segment from an MSS value: RFC 6691 §2, the MSS counts
        data and options beyond the fixed headers, so timestamps take 12 bytes of it."""
        self.mss = max(mss - (12 if self._ts_ok else 0), 64)
        self.cc.mss = self.mss
