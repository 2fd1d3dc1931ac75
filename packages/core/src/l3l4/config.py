"""``Config``: every limit and knob of a stack, with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Config"]

# RFC 791 §3.2: every IPv4 host must accept 576-byte datagrams; RFC 8200 §5: IPv6 links
# carry at least 1280. Path MTUs learnt from ICMP never go below these.
IPV4_MIN_MTU = 576
IPV6_MIN_MTU = 1280


@dataclass(frozen=True, slots=True)
class Config:
    """Settings for a :class:`~l3l4.Stack`. Frozen: build a new one to change anything.

    Every resource the stack holds on behalf of peers is bounded by a field here.
    Raises :class:`ValueError` for values that cannot work.
    """

    mtu: int = 1500
    """Largest L3 packet the stack emits, before any ICMP lowers a flow's path MTU."""
    ttl: int = 64
    """TTL (IPv4) and hop limit (IPv6) of outgoing packets."""
    rx_checksum_verified: bool = False
    """The driver has already verified (or offloaded) every checksum of incoming
    packets: skip verification. The IPv4 header checksum is skipped too."""
    max_udp_flows: int = 16384
    """UDP flows kept at once; one more evicts the least recently used
    (``FlowClosed(EVICTED)``)."""
    udp_idle_timeout: float = 60.0
    """Seconds without a datagram either way before a UDP flow closes
    (``FlowClosed(IDLE)``)."""
    icmp_echo: bool = True
    """Answer ICMP and ICMPv6 echo requests sent to any address."""
    icmp_errors: bool = True
    """Send the ICMP errors the RFCs ask of a destination host; today that is
    "fragment reassembly time exceeded" (RFC 792, RFC 8200 §4.5)."""
    max_extension_headers: int = 8
    """IPv6 extension headers walked before the packet is dropped."""
    fragment_timeout: float = 30.0
    """Seconds to wait for the rest of a fragmented datagram (RFC 791 §3.2 suggests 15,
    RFC 8200 §4.5 says 60; Linux uses 30 for both)."""
    max_reassembly_datagrams: int = 256
    """Fragmented datagrams being reassembled at once."""
    max_fragments_per_datagram: int = 64
    """Fragments held for one datagram."""
    max_reassembly_bytes: int = 4 * 1024 * 1024
    """Payload bytes held across all datagrams being reassembled."""
    # -- TCP ---------------------------------------------------------------------------
    accept: Literal["auto", "manual"] = "auto"
    """``"auto"``: every SYN to any address and port is answered. ``"manual"``: a SYN
    produces ``FlowRequested`` and waits for ``stack.accept``/``stack.reject``."""
    max_tcp_flows: int = 16384
    """TCP connections kept at once (TIME_WAIT not counted); a SYN beyond it is reset."""
    max_tcp_half_open: int = 1024
    """Half-open connections kept at once: those opened by a peer's SYN and not yet
    established (SYN-RECEIVED, or awaiting ``accept``). One more evicts the oldest
    (``tcp_half_open_evicted``; ``FlowClosed(EVICTED)`` if the application was told of
    it). With SYN cookies on, ``accept="auto"`` never gets this far."""
    tcp_syn_cookie_threshold: int | None = 256
    """Half-open connections beyond which a SYN is answered statelessly, with a SYN
    cookie (RFC 4987 §3.6), under ``accept="auto"``. ``None``: never. Not used under
    ``accept="manual"``: see the TCP docs."""
    max_tcp_buffer_bytes: int = 128 * 1024 * 1024
    """Bytes held for all TCP connections together: send buffers and out-of-order data.
    At the limit ``l4_tx`` accepts less (``Writable`` follows once an eighth of it is
    free again) and out-of-order segments are dropped (``TCP_BUFFER_LIMIT``); in-order
    data, which is delivered at once, always gets through."""
    tcp_send_buffer: int = 256 * 1024
    """Bytes ``l4_tx`` may queue per connection before it accepts less than offered."""
    tcp_send_buffer_min: int = 4096
    """Bytes a connection may always queue, even when ``max_tcp_buffer_bytes`` is spent
    (Linux's ``tcp_wmem[0]``, "to guarantee some progress"): a flow with nothing queued
    never has its ``l4_tx`` refused outright, so its data goes out and an ACK comes back
    to the application that waits for one. The most held is then
    ``max_tcp_buffer_bytes + max_tcp_flows * tcp_send_buffer_min``."""
    tcp_receive_buffer: int = 256 * 1024
    """Receive window per connection, and the cap on out-of-order bytes held."""
    rx_manual_consume: bool = False
    """If true, delivered bytes keep occupying the receive window until the application
    calls ``stack.consumed(flow, n)``: backpressure for slow consumers."""
    tcp_max_ooo_ranges: int = 256
    """Disjoint out-of-order ranges held per connection (holes a peer can open). A path
    that drops at random opens about loss x window of them: 256 holds 5% loss over a
    window of 5000 segments (Linux has no such cap, only its receive buffer)."""
    tcp_max_sack_ranges: int = 256
    """Disjoint SACKed ranges remembered per connection (RFC 6675 scoreboard); a SACK
    block that would make one more is ignored (``tcp_sack_blocks_ignored``)."""
    tcp_congestion_control: Literal["cubic", "newreno"] = "cubic"
    """RFC 9438 CUBIC or RFC 5681/6582 NewReno."""
    nagle: bool = False
    """Nagle's algorithm (RFC 896) for new connections; per flow with ``set_nagle``."""
    tcp_delayed_ack: float = 0.04
    """Longest delay of an ACK (RFC 9293 §3.8.6.3: under 0.5 s); 0 ACKs every segment."""
    tcp_quick_acks: int = 16
    """Data segments ACKed one by one, without delay, at the start of a connection and
    after a hole in the received data is filled or data arrives twice (Linux's quick-ACK
    mode, up to ``TCP_MAX_QUICKACKS`` = 16): the sender's ACK clock runs at full speed
    while its window opens or recovers from a loss. 0: every second segment throughout."""
    tcp_min_rto: float = 0.2
    """Floor of the retransmission timeout (Linux's 200 ms; RFC 6298 §2.4 suggests 1 s)."""
    tcp_max_rto: float = 120.0
    """Ceiling of the retransmission timeout (RFC 6298 §2.5: at least 60 s)."""
    tcp_syn_retries: int = 6
    """SYN or SYN-ACK retransmissions before a handshake times out."""
    tcp_max_retries: int = 15
    """Retransmissions of the same data (or unanswered zero-window probes) before the
    connection times out (Linux's ``tcp_retries2``)."""
    tcp_user_timeout: float | None = None
    """RFC 9293 §3.8.3 user timeout: seconds data may stay unacknowledged."""
    tcp_time_wait: float = 60.0
    """Seconds a connection stays in TIME_WAIT (2 MSL, RFC 9293 §3.4.2)."""
    max_time_wait: int = 4096
    """TIME_WAIT connections kept; the oldest is forgotten to make room."""
    tcp_idle_timeout: float | None = 7440.0
    """Seconds without a segment from the peer before an established connection is
    reset (``FlowClosed(IDLE)``): 2 h 4 min, as RFC 5382 REQ-5 asks of NATs. ``None``
    keeps idle connections forever."""
    tcp_halfopen_idle_timeout: float | None = 240.0
    """The same for connections not established: handshakes and half-closed
    connections (RFC 5382 REQ-5's 4 minutes for transitory connections)."""
    tcp_keepalive_idle: float | None = None
    """Seconds of silence before keepalive probes start (RFC 9293 §3.8.4); off if None."""
    tcp_keepalive_interval: float = 75.0
    tcp_keepalive_count: int = 9
    """Unanswered keepalive probes before ``FlowClosed(TIMED_OUT)``."""
    tcp_challenge_ack_limit: int = 1000
    """RFC 5961 §7: challenge ACKs sent per second, for the whole stack, on average: each
    second's budget is drawn from [limit / 2, limit * 3 / 2), unpredictable without
    ``secret`` (CVE-2016-5696). 0: none."""
    tcp_tso_packet: int = 0
    """TCP segmentation offload: new data may leave in TCP packets of up to this many
    bytes (IP header included), a whole number of MSS-sized segments each, for a driver
    whose device splits them (a TUN device with ``TUNSETOFFLOAD``). 0: every packet fits
    the path MTU."""
    tcp_checksum_offload: bool = False
    """TCP packets leave with a partial checksum, the pseudo-header's sum alone, for a
    driver whose device completes it (a TUN device with a virtio-net header:
    ``NEEDS_CSUM``, see ``l3l4.wire.vnet``). Saves folding every payload once more.
    Anything else that carries such packets (a memory link, a capture, another stack)
    sees wrong checksums: the TUN and trio drivers refuse it without an offloading
    device."""
    tx_retry_interval: float = 0.002
    """How soon to try again when the ``tx_buffer`` allocator had no buffer for a TCP
    segment or an owed ACK: ``next_deadline()`` says so (the segment is not lost, so it
    does not wait for the retransmission timeout). Any earlier ``l3_rx``, ``l4_tx`` or
    ``l4_poll`` tries first."""
    tcp_tail_loss_probe: bool = True
    """RFC 8985 §7 tail loss probes, on SACK connections: when the ACKs stop with data
    in flight, after about two round trips (not the retransmission timeout), send one
    new segment or the last one again, so that a loss at the end of a flight (a whole
    TSO super-packet, the end of a response) is repaired by fast recovery."""
    tcp_loss_detection: Literal["rack", "rfc6675"] = "rack"
    """How a SACK connection decides that data is lost: ``"rack"``, by time (RFC 8985
    §6: a segment is lost once one sent after it has been delivered and a reordering
    window has passed; Linux's default), or ``"rfc6675"``, by counting (RFC 6675 §4
    IsLost: three segments SACKed above it). Connections without SACK count duplicate
    ACKs (RFC 5681, RFC 6582) either way."""
    tcp_prr: bool = True
    """RFC 6937 Proportional Rate Reduction: during fast recovery, send in proportion to
    what the peer delivers, down to ssthresh (off: the window drops to ssthresh at once,
    RFC 6675 §5)."""
    tcp_ecn: Literal["off", "passive", "on"] = "passive"
    """Explicit Congestion Notification (RFC 3168): ``"passive"`` (Linux's default)
    agrees when a peer's SYN asks for it, ``"on"`` also asks in our SYNs. An ECN
    connection sends new data as ECT(0), echoes the Congestion Experienced marks it
    receives (ECE until the peer's CWR), and takes the peer's echo as a loss, once per
    round trip, without resending anything."""
    tcp_dsack: bool = True
    """RFC 2883 D-SACK: tell a SACK peer when data arrives twice (its retransmission was
    spurious), as Linux does; our own reductions are undone when every retransmission
    comes back as a duplicate (RFC 3708)."""
    tcp_hystart: bool = True
    """RFC 9406 HyStart++: the first slow start ends when the round trip time grows (a
    queue is building), not at the losses of overshooting the path by up to a window."""
    tcp_window_scaling: bool = True
    tcp_timestamps: bool = True
    tcp_sack: bool = True
    secret: bytes | None = None
    """Key for values a peer must not guess: IP IDs, ISNs, timestamp offsets, SYN cookies.
    ``None`` draws 32 random bytes per stack; set it for reproducible runs."""

    def __post_init__(self) -> None:
        if not IPV4_MIN_MTU <= self.mtu <= 65535:
            raise ValueError(f"mtu {self.mtu} is outside {IPV4_MIN_MTU}..65535")
        if not 1 <= self.ttl <= 255:
            raise ValueError(f"ttl {self.ttl} is outside 1..255")
        for name in (
            "max_udp_flows",
            "max_extension_headers",
            "max_reassembly_datagrams",
            "max_fragments_per_datagram",
            "max_reassembly_bytes",
            "max_tcp_flows",
            "max_tcp_half_open",
            "max_tcp_buffer_bytes",
            "tcp_send_buffer",
            "tcp_receive_buffer",
            "tcp_max_ooo_ranges",
            "tcp_max_sack_ranges",
            "tcp_max_retries",
            "max_time_wait",
            "tcp_keepalive_count",
            "tcp_challenge_ack_limit",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.tcp_send_buffer_min < 0:
            raise ValueError("tcp_send_buffer_min must not be negative")
        if self.tcp_quick_acks < 0:
            raise ValueError("tcp_quick_acks must not be negative")
        for name in (
            "udp_idle_timeout", "fragment_timeout", "tcp_min_rto", "tcp_time_wait", "tcp_keepalive_interval",
            "tx_retry_interval",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        for name in ("tcp_idle_timeout", "tcp_halfopen_idle_timeout", "tcp_keepalive_idle", "tcp_user_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None")
        if self.tcp_max_rto < self.tcp_min_rto:
            raise ValueError("tcp_max_rto must not be below tcp_min_rto")
        if not 0 <= self.tcp_delayed_ack < 0.5:
            raise ValueError("tcp_delayed_ack must be in [0, 0.5)")
        if self.tcp_tso_packet and not self.mtu <= self.tcp_tso_packet <= 65535:
            raise ValueError(f"tcp_tso_packet {self.tcp_tso_packet} is not 0 or within mtu..65535")
        if self.tcp_syn_cookie_threshold is not None and self.tcp_syn_cookie_threshold < 0:
            raise ValueError("tcp_syn_cookie_threshold must not be negative")
        if self.tcp_syn_retries < 0:
            raise ValueError("tcp_syn_retries must not be negative")
        if self.accept not in ("auto", "manual"):
            raise ValueError(f"accept must be 'auto' or 'manual', not {self.accept!r}")
        if self.tcp_congestion_control not in ("cubic", "newreno"):
            raise ValueError(f"unknown congestion control {self.tcp_congestion_control!r}")
        if self.tcp_ecn not in ("off", "passive", "on"):
            raise ValueError(f"unknown ECN mode {self.tcp_ecn!r}")
        if self.tcp_loss_detection not in ("rack", "rfc6675"):
            raise ValueError(f"unknown loss detection {self.tcp_loss_detection!r}")
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
