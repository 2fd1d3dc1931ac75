"""Counters: what came in, what went out, and every packet dropped, by reason."""

from __future__ import annotations

import enum

__all__ = ["DropReason", "Stats"]


class DropReason(enum.Enum):
    """Why an incoming packet (or an outgoing datagram) was dropped."""

    # IP layer
    TRUNCATED = "truncated"
    """Shorter than the headers or lengths it declares."""
    BAD_VERSION = "bad_version"
    """The IP version nibble is neither 4 nor 6."""
    BAD_HEADER_LENGTH = "bad_header_length"
    """IPv4 IHL below 5, or a header that does not fit its own total length."""
    BAD_TOTAL_LENGTH = "bad_total_length"
    """IPv4 total length / IPv6 payload length longer than the buffer."""
    BAD_IP_CHECKSUM = "bad_ip_checksum"
    """IPv4 header checksum does not verify."""
    TTL_EXPIRED = "ttl_expired"
    """TTL or hop limit of 0."""
    BAD_IPV4_OPTIONS = "bad_ipv4_options"
    """An IPv4 option whose length overruns the header."""
    BAD_ADDRESS = "bad_address"
    """A source that cannot be answered (multicast, broadcast, unspecified) or a
    destination that is not unicast."""
    BAD_EXTENSION_HEADER = "bad_extension_header"
    """An IPv6 extension header that overruns the packet or sits in the wrong place."""
    TOO_MANY_EXTENSION_HEADERS = "too_many_extension_headers"
    """More IPv6 extension headers than ``Config.max_extension_headers``."""
    ROUTING_HEADER = "routing_header"
    """An IPv6 routing header with segments left: the packet is not for us yet."""
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"
    """An upper-layer protocol other than TCP, UDP and ICMP."""
    # fragments
    BAD_FRAGMENT = "bad_fragment"
    """A non-final fragment whose length is not a multiple of 8, or one that
    contradicts the datagram length already known."""
    FRAGMENT_TOO_LARGE = "fragment_too_large"
    """A fragment that would make the datagram longer than 65535 bytes."""
    FRAGMENT_OVERLAP = "fragment_overlap"
    """Overlapping fragments: the whole datagram is discarded (RFC 5722)."""
    FRAGMENT_DUPLICATE = "fragment_duplicate"
    """An exact copy of a fragment already held."""
    FRAGMENT_LIMIT = "fragment_limit"
    """Reassembly caps reached (datagrams, fragments or bytes)."""
    FRAGMENT_TIMEOUT = "fragment_timeout"
    """A datagram not completed within ``Config.fragment_timeout``."""
    # transport
    BAD_L4_CHECKSUM = "bad_l4_checksum"
    """TCP, UDP or ICMP checksum does not verify (or a zero UDP checksum over IPv6)."""
    BAD_UDP_LENGTH = "bad_udp_length"
    """UDP length field below 8 or beyond the IP payload."""
    BAD_TCP_HEADER = "bad_tcp_header"
    """TCP data offset below 5 or beyond the segment."""
    BAD_TCP_OPTIONS = "bad_tcp_options"
    """A TCP option whose length is below 2 or overruns the option space."""
    ZERO_PORT = "zero_port"
    """Source or destination port 0: no flow can answer it."""
    TCP_NO_CONNECTION = "tcp_no_connection"
    """A TCP segment for no connection (answered with a reset when RFC 9293 says so)."""
    TCP_FLOW_LIMIT = "tcp_flow_limit"
    """A SYN while ``Config.max_tcp_flows`` connections exist (answered with a reset)."""
    TCP_OUT_OF_WINDOW = "tcp_out_of_window"
    """A segment outside the receive window (answered with an ACK, RFC 9293 §3.10.7.4)."""
    TCP_PAWS = "tcp_paws"
    """A segment with an old timestamp (RFC 7323 §5, PAWS)."""
    TCP_CHALLENGED = "tcp_challenged"
    """An in-window RST that is not exact, or a SYN on a synchronized connection,
    answered with a challenge ACK (RFC 5961 §3, §4)."""
    TCP_BAD_ACK = "tcp_bad_ack"
    """An ACK for data never sent, or too old (RFC 5961 §5.2), or a wrong ACK in a
    handshake."""
    TCP_NO_ACK = "tcp_no_ack"
    """A segment without the ACK flag where RFC 9293 requires it."""
    TCP_REASSEMBLY_LIMIT = "tcp_reassembly_limit"
    """Out-of-order data beyond ``Config.tcp_max_ooo_ranges`` holes or the connection's
    ``Config.tcp_receive_buffer``."""
    TCP_BUFFER_LIMIT = "tcp_buffer_limit"
    """Out-of-order data while all connections together hold
    ``Config.max_tcp_buffer_bytes``."""
    # ICMP
    BAD_ICMP = "bad_icmp"
    """An ICMP message too short for its type."""
    ICMP_UNHANDLED = "icmp_unhandled"
    """An ICMP type the stack does not act on, or echo when ``Config.icmp_echo`` is off."""
    ICMP_NO_FLOW = "icmp_no_flow"
    """An ICMP error quoting a packet of no current flow."""
    # output
    TX_BUFFER_EXHAUSTED = "tx_buffer_exhausted"
    """The caller's ``tx_buffer`` allocator returned ``None`` for a packet that is not
    kept to be sent later (a UDP datagram, an ICMP message, a reset, a SYN cookie); TCP
    segments of a connection wait instead (``Stats.tx_buffer_unavailable``)."""
    TX_CALLBACK_FAILED = "tx_callback_failed"
    """A transmit callback raised (``tx_buffer``, ``tx_buffer_view``, ``transmit``, or
    a buffer of the wrong size) while errors are deferred (``Stack(tx_errors=...)``, as
    :class:`~l3l4.CallbackStack` does): the packet was not sent."""


# Every counter but ``drops``, by name (``as_dict`` lists them; a class compiled
# with mypyc has no ``__slots__`` attribute to read them from).
_COUNTERS = (
    "rx_packets",
    "rx_bytes",
    "tx_packets",
    "tx_bytes",
    "flows_opened",
    "flows_closed",
    "fragments_received",
    "fragments_reassembled",
    "fragments_sent",
    "tx_buffer_unavailable",
    "tcp_tx_resumed",
    "icmp_echo_replied",
    "icmp_errors_received",
    "tcp_established",
    "tcp_retransmits",
    "tcp_timeouts",
    "tcp_fast_recoveries",
    "tcp_tail_loss_probes",
    "tcp_lost_retransmits",
    "tcp_sack_reneging",
    "tcp_dsacks_sent",
    "tcp_dsacks_received",
    "tcp_undos",
    "tcp_ecn_negotiated",
    "tcp_ecn_ce_received",
    "tcp_ecn_reductions",
    "tcp_challenge_acks",
    "tcp_resets_sent",
    "tcp_syn_cookies_sent",
    "tcp_syn_cookies_accepted",
    "tcp_syn_cookies_failed",
    "tcp_half_open_evicted",
    "tcp_time_wait_evicted",
    "tcp_sack_blocks_ignored",
)


class Stats:
    """Counters for one :class:`~l3l4.Stack`, read them any time as ``stack.stats``.

    ``drops`` maps every :class:`DropReason` to a count (all reasons present, starting at
    0), so ``stack.stats.drops[DropReason.BAD_L4_CHECKSUM]`` never raises.
    """

    __slots__ = (*_COUNTERS, "drops")

    def __init__(self) -> None:
        self.rx_packets = 0
        """Packets handed to ``l3_rx``, good or bad."""
        self.rx_bytes = 0
        self.tx_packets = 0
        """Packets the stack produced."""
        self.tx_bytes = 0
        self.flows_opened = 0
        """``FlowOpened`` events: UDP flows and established TCP connections."""
        self.flows_closed = 0
        """``FlowClosed`` events, for either protocol."""
        self.fragments_received = 0
        """Fragments taken into reassembly (held, or completing a datagram)."""
        self.fragments_reassembled = 0
        """Datagrams rebuilt from fragments."""
        self.fragments_sent = 0
        """Fragments produced for datagrams larger than the path MTU."""
        self.tx_buffer_unavailable = 0
        """Times the ``tx_buffer`` allocator had no buffer. Not a loss in itself: TCP
        keeps the segment (or the ACK it owes) and sends it at the next call that gets
        a buffer; what was dropped instead is counted under ``TX_BUFFER_EXHAUSTED``."""
        self.tcp_tx_resumed = 0
        """Times a TCP connection that had waited for a buffer got one and sent again."""
        self.icmp_echo_replied = 0
        self.icmp_errors_received = 0
        """ICMP errors mapped to a flow (each also an ``ErrorReceived`` event)."""
        self.tcp_established = 0
        """TCP handshakes completed, either way."""
        self.tcp_retransmits = 0
        """TCP segments sent again (by timeout, fast retransmit or SACK recovery)."""
        self.tcp_timeouts = 0
        """Retransmission-timer expiries."""
        self.tcp_fast_recoveries = 0
        """Entries into fast recovery (RFC 5681 §3.2, RFC 6675)."""
        self.tcp_tail_loss_probes = 0
        """Tail loss probes sent (RFC 8985 §7)."""
        self.tcp_lost_retransmits = 0
        """Retransmissions found lost during recovery and sent again (RFC 8985 §6.2)."""
        self.tcp_sack_reneging = 0
        """ACKs that showed a peer had discarded data it SACKed (RFC 2018 §8)."""
        self.tcp_dsacks_sent = 0
        """D-SACK blocks sent: duplicate data received (RFC 2883)."""
        self.tcp_dsacks_received = 0
        """D-SACK blocks received: the peer got something twice (RFC 2883)."""
        self.tcp_undos = 0
        """Window reductions undone because every retransmission of the episode proved
        spurious (RFC 3708 with D-SACK, as Linux's undo)."""
        self.tcp_ecn_negotiated = 0
        """Connections that agreed on ECN (RFC 3168 §6.1.1)."""
        self.tcp_ecn_ce_received = 0
        """Segments received marked Congestion Experienced (echoed with ECE)."""
        self.tcp_ecn_reductions = 0
        """Window reductions for the peer's ECN-Echo (RFC 3168 §6.1.2), at most one per
        round trip."""
        self.tcp_challenge_acks = 0
        """Challenge ACKs sent (RFC 5961)."""
        self.tcp_resets_sent = 0
        self.tcp_syn_cookies_sent = 0
        """SYN-ACKs sent as SYN cookies, keeping no state (RFC 4987 §3.6)."""
        self.tcp_syn_cookies_accepted = 0
        """Connections opened by the ACK of a valid SYN cookie."""
        self.tcp_syn_cookies_failed = 0
        """ACKs for no connection, while cookies were in use, whose cookie did not check
        out (also counted as ``TCP_NO_CONNECTION`` drops)."""
        self.tcp_half_open_evicted = 0
        """Half-open connections dropped for a newer SYN (``Config.max_tcp_half_open``)."""
        self.tcp_time_wait_evicted = 0
        """TIME_WAIT connections forgotten early (``Config.max_time_wait``)."""
        self.tcp_sack_blocks_ignored = 0
        """SACK blocks not recorded: one range too many (``Config.tcp_max_sack_ranges``)."""
        self.drops: dict[DropReason, int] = dict.fromkeys(DropReason, 0)

    @property
    def dropped(self) -> int:
        """All drops, whatever the reason."""
        return sum(self.drops.values())

    def as_dict(self) -> dict[str, int]:
        """Every counter by name, drops as ``drop.<reason>``: handy for logs and metrics."""
        counters = {name: getattr(self, name) for name in _COUNTERS}
        counters.update({f"drop.{reason.value}": count for reason, count in self.drops.items()})
        return counters
