"""Events the stack reports, and ``Output``, the batch every call returns.

Events are small frozen classes: compare them, match on them, keep them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .flow import Flow, IPAddress
from .info import FlowInfo

__all__ = [
    "CloseReason",
    "IcmpErrorKind",
    "Event",
    "FlowOpened",
    "FlowRequested",
    "DataReceived",
    "EndOfStream",
    "Writable",
    "FlowClosed",
    "ErrorReceived",
    "Output",
]


class CloseReason(enum.Enum):
    """Why a flow ended (``FlowClosed.reason``)."""

    CLOSED = "closed"
    """Ended in good order: both sides closed, or the application closed it."""
    RESET = "reset"
    """The peer reset the connection."""
    TIMED_OUT = "timed_out"
    """Retransmissions or the user timeout ran out."""
    IDLE = "idle"
    """No traffic for the idle timeout."""
    REFUSED = "refused"
    """A connect was answered by a reset."""
    UNREACHABLE = "unreachable"
    """A connect was answered by an ICMP unreachable."""
    ABORTED = "aborted"
    """The application aborted the flow."""
    EVICTED = "evicted"
    """Dropped to stay under a flow limit."""


class IcmpErrorKind(enum.Enum):
    """What an ICMP error about a flow says, across ICMPv4 and ICMPv6."""

    UNREACHABLE = "unreachable"
    PACKET_TOO_BIG = "packet_too_big"
    TIME_EXCEEDED = "time_exceeded"
    PARAMETER_PROBLEM = "parameter_problem"


@dataclass(frozen=True, slots=True)
class FlowOpened:
    """A new flow: a first UDP datagram arrived, a TCP handshake completed (either
    way), or ``connect`` opened a UDP flow."""

    flow: Flow


@dataclass(frozen=True, slots=True)
class FlowRequested:
    """A SYN arrived under ``Config(accept="manual")``: answer with ``stack.accept(flow)``
    or ``stack.reject(flow)``. Nothing is sent to the peer until then."""

    flow: Flow


@dataclass(frozen=True, slots=True)
class DataReceived:
    """Bytes from the peer, in order. For UDP, exactly one datagram."""

    flow: Flow
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The peer will send no more data on this flow (TCP FIN)."""

    flow: Flow


@dataclass(frozen=True, slots=True)
class Writable:
    """Room has opened in the flow's send buffer after an ``l4_tx`` took less than offered."""

    flow: Flow


@dataclass(frozen=True, slots=True)
class FlowClosed:
    """The flow is gone from the stack; no more events will name it.

    ``info``: a TCP connection's last :class:`FlowInfo` (what it sent, received and
    retransmitted, its RTT, ...), for logs; ``None`` for UDP and for connections never
    established. Not compared: ``FlowClosed(flow, reason)`` equals the event."""

    flow: Flow
    reason: CloseReason
    info: FlowInfo | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """An ICMP or ICMPv6 error arrived that quotes a packet of this flow.

    ``mtu`` is the next-hop MTU for ``PACKET_TOO_BIG`` (the flow's path MTU has already
    been lowered to it), else ``None``. ``source`` is the router or host that sent it.
    """

    flow: Flow
    kind: IcmpErrorKind
    icmp_type: int
    icmp_code: int
    mtu: int | None
    source: IPAddress


Event = FlowOpened | FlowRequested | DataReceived | EndOfStream | Writable | FlowClosed | ErrorReceived

P = TypeVar("P")


class Output(Generic[P]):
    """What one call produced: events for the application and packets for the wire.

    ``events`` are in the order they happened; ``packets`` are L3 packets to transmit in
    order (``bytearray`` by default, or the buffers the ``tx_buffer`` allocator gave).
    ``accepted`` is the number of payload bytes ``l4_tx`` took (0 for other calls).
    ``flow`` is the flow an incoming packet (``l3_rx``) or a call concerned, if any.
    """

    __slots__ = ("events", "packets", "accepted", "flow")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.packets: list[P] = []
        self.accepted = 0
        self.flow: Flow | None = None

    def __repr__(self) -> str:
        return f"Output(events={self.events!r}, packets=<{len(self.packets)}>, accepted={self.accepted})"
