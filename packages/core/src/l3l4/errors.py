"""Exceptions raised at applications that misuse the API.

Bad packets never raise: they are dropped and counted in ``stack.stats``. Everything
here means the calling code did something the stack cannot honour.
"""

from __future__ import annotations

__all__ = [
    "L3L4Error",
    "UnknownFlowError",
    "FlowExistsError",
    "PayloadTooLargeError",
    "TxBufferError",
    "ReentrantCallError",
    "SendClosedError",
    "FlowLimitError",
    "InvalidStateError",
]


class L3L4Error(Exception):
    """Base class of every exception l3l4 raises."""


class UnknownFlowError(L3L4Error, KeyError):
    """The flow is not open in this stack (never was, or has closed)."""


class FlowExistsError(L3L4Error):
    """``connect`` was called for a flow that is already open."""


class PayloadTooLargeError(L3L4Error, ValueError):
    """A UDP datagram longer than IP can carry (65507 bytes over IPv4, 65527 over IPv6)."""


class TxBufferError(L3L4Error, ValueError):
    """The ``tx_buffer`` allocator returned a buffer of the wrong size: shorter than the
    packet, or longer where nothing is told the packet's length."""


class ReentrantCallError(L3L4Error, RuntimeError):
    """A transmit callback (``l3_tx``, ``l3_tx_buffer``, ``l3_tx_buffer_mut``) called
    into the :class:`~l3l4.CallbackStack` that was in the middle of writing packets."""


class SendClosedError(L3L4Error):
    """Data for a flow whose sending side is closed (``close`` was called)."""


class FlowLimitError(L3L4Error):
    """``connect`` would exceed ``Config.max_tcp_flows``."""


class InvalidStateError(L3L4Error):
    """The call does not fit the flow's state (``accept`` on a flow not awaiting it)."""
