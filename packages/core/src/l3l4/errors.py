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
    "UnsupportedError",
    "TxBufferError",
]


class L3L4Error(Exception):
    """Base class of every exception l3l4 raises."""


class UnknownFlowError(L3L4Error, KeyError):
    """The flow is not open in this stack (never was, or has closed)."""


class FlowExistsError(L3L4Error):
    """``connect`` was called for a flow that is already open."""


class PayloadTooLargeError(L3L4Error, ValueError):
    """A UDP datagram longer than IP can carry (65507 bytes over IPv4, 65527 over IPv6)."""


class UnsupportedError(L3L4Error):
    """The operation is not available for this kind of flow in this version."""


class TxBufferError(L3L4Error, ValueError):
    """The ``tx_buffer`` allocator returned a buffer of the wrong size."""
