"""Snapshots for logs, metrics and debugging: ``FlowInfo`` (one TCP connection) and
``Usage`` (what a whole stack holds)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FlowInfo", "Usage"]


@dataclass(frozen=True, slots=True)
class FlowInfo:
    """What ``stack.flow_info(flow)`` reports. Sequence numbers are raw 32-bit values;
    windows and buffers in bytes; times in seconds."""

    state: str
    """The RFC 9293 state name, e.g. ``"ESTABLISHED"``."""
    snd_una: int
    snd_nxt: int
    snd_wnd: int
    """The peer's window, scaled."""
    rcv_nxt: int
    rcv_wnd: int
    """The window we last advertised, scaled."""
    mss: int
    """Payload bytes per segment we send."""
    cwnd: int
    ssthresh: int
    srtt: float | None
    rto: float
    bytes_queued: int
    """Bytes in the send buffer (sent but unacknowledged, or not sent yet)."""
    bytes_in_flight: int
    unconsumed: int
    """Delivered bytes not yet released with ``consumed`` (manual consume only)."""
    retransmits: int
    """Retransmission-timer expiries in a row, right now."""
    rttvar: float = 0.0
    """RFC 6298's RTTVAR."""
    bytes_acked: int = 0
    """Data bytes the peer has acknowledged (TCP_INFO's ``tcpi_bytes_acked``)."""
    bytes_received: int = 0
    """Data bytes received in order (``tcpi_bytes_received``)."""
    bytes_sacked: int = 0
    """Bytes above SND.UNA the peer has SACKed."""
    in_recovery: bool = False
    """Fast recovery (RFC 6675), or recovery after a timeout, is under way."""
    min_rtt: float | None = None
    """The smallest RTT measured (RACK's, RFC 8985 §6.1; ``tcpi_min_rtt``)."""
    total_retransmits: int = 0
    """Segments sent again over the connection's life (``tcpi_total_retrans``)."""
    bytes_lost: int = 0
    """Bytes now deemed lost and not yet sent again (``tcpi_lost``, in bytes)."""
    dsacks_received: int = 0
    """D-SACK blocks the peer sent: data it received twice, mostly spurious
    retransmissions (RFC 2883; ``tcpi_dsack_dups``)."""
    reordering_seen: bool = False
    """The peer delivered a segment sent once after one sent later (RFC 8985 §6.2)."""
    delivery_rate: float = 0.0
    """Bytes per second delivered to the peer over the last round trip that delivered
    any (``tcpi_delivery_rate``; low while the application sends little)."""
    ecn: bool = False
    """The connection agreed on ECN (RFC 3168; TCP_INFO's ``TCPI_OPT_ECN``)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """What ``stack.usage()`` reports: the state held for peers, each against its cap."""

    tcp_flows: int
    """TCP connections, TIME_WAIT aside (``Config.max_tcp_flows``)."""
    tcp_half_open: int
    """Of those, opened by a peer's SYN and not established (``Config.max_tcp_half_open``)."""
    tcp_time_wait: int
    """Connections in TIME_WAIT (``Config.max_time_wait``)."""
    udp_flows: int
    """UDP flows (``Config.max_udp_flows``)."""
    timers: int
    """Entries in the timer queue (at most about twice the connections with a timer)."""
    tcp_buffer_bytes: int
    """Bytes in send buffers and out-of-order data (``Config.max_tcp_buffer_bytes``)."""
    reassembly_datagrams: int
    """Fragmented datagrams being reassembled (``Config.max_reassembly_datagrams``)."""
    reassembly_bytes: int
    """Fragment bytes held (``Config.max_reassembly_bytes``)."""
