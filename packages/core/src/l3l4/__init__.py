"""l3l4: a sans-IO TCP/UDP/IPv4/IPv6 stack for any address.

IP packets in, flows of data out; data in, IP packets out. See ``docs/index.md``.
"""

from .callbacks import Callbacks, CallbacksWithLength, CallbackStack
from .config import Config
from .errors import (
    FlowExistsError,
    FlowLimitError,
    InvalidStateError,
    L3L4Error,
    PayloadTooLargeError,
    ReentrantCallError,
    SendClosedError,
    TxBufferError,
    UnknownFlowError,
)
from .events import (
    CloseReason,
    DataReceived,
    EndOfStream,
    ErrorReceived,
    Event,
    FlowClosed,
    FlowOpened,
    FlowRequested,
    IcmpErrorKind,
    Output,
    Writable,
)
from .flow import Flow, Proto
from .info import FlowInfo, Usage
from .stack import Stack
from .stats import DropReason, Stats

__all__ = [
    "Callbacks",
    "CallbacksWithLength",
    "CallbackStack",
    "CloseReason",
    "Config",
    "DataReceived",
    "DropReason",
    "EndOfStream",
    "ErrorReceived",
    "Event",
    "Flow",
    "FlowClosed",
    "FlowExistsError",
    "FlowInfo",
    "FlowLimitError",
    "FlowOpened",
    "FlowRequested",
    "IcmpErrorKind",
    "InvalidStateError",
    "L3L4Error",
    "Output",
    "PayloadTooLargeError",
    "Proto",
    "ReentrantCallError",
    "SendClosedError",
    "Stack",
    "Stats",
    "TxBufferError",
    "UnknownFlowError",
    "Usage",
    "Writable",
]

__version__ = "0.1.0"
"""The version of l3l4 and of every driver package, set here only: each driver's build
reads it as its own version (its pins on the other l3l4 packages must name it too;
tests/packaging checks)."""
