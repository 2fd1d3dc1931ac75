"""``FlowInfo``: a snapshot of one TCP connection's state, for logs and debugging."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FlowInfo"]


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
