"""The interface both devices under test offer the matrix, and l3l4 behind it.

A device is addressed by the bench's port, fresh for every probe: the connection from
the bench's port to the device's listening port, or the one the device opened to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import ip_address
from typing import Literal, Protocol

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    EndOfStream,
    Flow,
    FlowClosed,
    FlowOpened,
    Output,
    Proto,
    Stack,
    UnknownFlowError,
)
from support.peer import Segment

from .wire import BENCH, DUT, segment_to

__all__ = ["LISTEN_PORT", "Delivery", "Dut", "EcnMode", "StackDut"]

LISTEN_PORT = 80
"""The port the device listens on (any port would do for l3l4)."""
EcnMode = Literal["off", "passive", "on"]
"""How a device uses ECN (RFC 3168): see :meth:`Dut.ecn`."""


@dataclass(frozen=True)
class Delivery:
    """What the application saw since it last looked: bytes, then how the stream ended
    (``""`` still open, ``"eof"``, ``"reset"``, ``"refused"``)."""

    data: bytes = b""
    end: str = ""

    def __str__(self) -> str:
        text = f"{len(self.data)} B" if self.data else "-"
        return f"{text} {self.end}" if self.end else text


class Dut(Protocol):
    """A TCP implementation the bench can probe."""

    name: str

    def inject(self, packet: bytes) -> None:
        """Hand it one IP packet from the bench."""

    def collect(self, port: int, wait: float, until: Callable[[Segment], bool] | None = None) -> list[Segment]:
        """The segments it sent to the bench's ``port`` within ``wait`` seconds, or
        until one satisfies ``until``; segments to other ports are discarded."""

    def connect(self, version: int, port: int) -> None:
        """The application connects from the device's address to the bench's, both
        ends on ``port``."""

    def accepted(self, port: int) -> bool:
        """The application has (or now gets, waiting briefly) the connection."""

    def send(self, port: int, size: int) -> None:
        """The application writes ``size`` bytes."""

    def loss_detection(self, rack: bool, tail_loss_probe: bool) -> None:
        """How the connections made from now on detect losses: by time (RACK, RFC 8985
        §6) or by counting duplicate ACKs and SACKed segments (RFC 5681 §3.2, RFC
        6675); with or without the tail loss probe (RFC 8985 §7)."""

    def ecn(self, mode: EcnMode) -> None:
        """How the connections made from now on use ECN (RFC 3168): ``off``; ``passive``,
        agreeing when the peer's SYN asks (both devices' default); ``on``, also asking
        in its own SYNs."""

    def shutdown(self, port: int) -> None:
        """The application is done sending: a FIN follows the data."""

    def read(self, port: int) -> Delivery:
        """What the application received since the last read."""

    def abort(self, port: int) -> None:
        """Forget the connection (the application resets it), if any."""


class StackDut:
    """l3l4 as the device under test: a :class:`~l3l4.Stack` serving every address,
    fed through ``l3_rx`` on a clock the bench moves (``collect`` runs the timers due
    within ``wait``, as real time would); one stack per way of detecting losses and of
    using ECN, the ``config`` given with its loss detection and ECN settings replaced."""

    name = "l3l4"

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config(secret=b"conformance-0000")
        self.stacks: dict[tuple[bool, bool, EcnMode], Stack[bytearray]] = {}
        self.stack: Stack[bytearray] = Stack(self.config)
        self.settings: tuple[bool, bool, EcnMode] = (False, False, self.config.tcp_ecn)
        """RACK, the tail loss probe and the ECN mode, as last set."""
        self.now = 0.0
        self.pending: list[bytearray] = []
        self.opened: set[int] = set()
        self.inbox: dict[int, bytearray] = {}
        self.ends: dict[int, str] = {}
        self.flows: dict[int, Flow] = {}

    def _take(self, out: Output[bytearray]) -> None:
        self.pending += out.packets
        for event in out.events:
            port = event.flow.remote_port
            self.flows[port] = event.flow
            if isinstance(event, FlowOpened):
                self.opened.add(port)
            elif isinstance(event, DataReceived):
                self.inbox.setdefault(port, bytearray()).extend(event.data)
            elif isinstance(event, EndOfStream):
                self.ends[port] = "eof"
            elif isinstance(event, FlowClosed) and event.reason in (CloseReason.RESET, CloseReason.REFUSED):
                self.ends[port] = event.reason.value

    def inject(self, packet: bytes) -> None:
        self._take(self.stack.l3_rx(packet, self.now))

    def collect(self, port: int, wait: float, until: Callable[[Segment], bool] | None = None) -> list[Segment]:
        got: list[Segment] = []
        deadline = self.now + wait
        while True:
            for packet in self.pending:
                segment = segment_to(packet, port)
                if segment is not None:
                    got.append(segment)
                    if until is not None and until(segment):
                        self.pending = []
                        return got
            self.pending = []
            due = self.stack.next_deadline()
            if due is None or due > deadline:
                self.now = deadline
                return got
            self.now = max(self.now, due)
            self._take(self.stack.l4_poll(self.now))

    def connect(self, version: int, port: int) -> None:
        flow = Flow(Proto.TCP, ip_address(DUT[version]), port, ip_address(BENCH[version]), port)
        self.flows[port] = flow
        self._take(self.stack.connect(flow, self.now))

    def accepted(self, port: int) -> bool:
        return port in self.opened

    def send(self, port: int, size: int) -> None:
        self._take(self.stack.l4_tx(self.flows[port], bytes(size), self.now))

    def loss_detection(self, rack: bool, tail_loss_probe: bool) -> None:
        self._use((rack, tail_loss_probe, self.settings[2]))

    def ecn(self, mode: EcnMode) -> None:
        self._use((*self.settings[:2], mode))

    def _use(self, settings: tuple[bool, bool, EcnMode]) -> None:
        """The stack with these settings (made the first time they are asked for)."""
        rack, tail_loss_probe, ecn = settings
        if settings not in self.stacks:
            config = replace(
                self.config, tcp_loss_detection="rack" if rack else "rfc6675", tcp_tail_loss_probe=tail_loss_probe,
                tcp_ecn=ecn,
            )
            self.stacks[settings] = Stack(config)
        self.settings = settings
        self.stack = self.stacks[settings]

    def shutdown(self, port: int) -> None:
        flow = self.flows[port]
        self._take(self.stack.close(flow, self.now))

    def read(self, port: int) -> Delivery:
        data = bytes(self.inbox.pop(port, b""))
        return Delivery(data, self.ends.pop(port, ""))

    def abort(self, port: int) -> None:
        flow = self.flows.pop(port, None)
        if flow is not None:
            try:
                self.stack.abort(flow, self.now)
            except UnknownFlowError:
                pass
        self.pending = []
