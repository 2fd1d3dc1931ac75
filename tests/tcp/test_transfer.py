"""Bulk transfers between two stacks back to back, under seeded loss, duplication,
reordering and corruption: every byte arrives intact and in order, both ends close with
the right reason, and nothing is left behind."""

from __future__ import annotations

import random
from ipaddress import ip_address

import pytest
from support.link import Impairment, Link, Side

from l3l4 import (
    CloseReason,
    Config,
    DataReceived,
    EndOfStream,
    Event,
    Flow,
    FlowClosed,
    FlowOpened,
    Proto,
    Stack,
    Writable,
)

CLIENT = Flow(Proto.TCP, ip_address("198.51.100.1"), 40000, ip_address("203.0.113.80"), 80)
CLIENT6 = Flow(Proto.TCP, ip_address("2001:db8::1"), 40000, ip_address("2001:db8:ffff::80"), 443)


class Transfer:
    """One side sends ``data`` and closes; the other reads to the end and closes."""

    def __init__(self, link: Link, sender: Side, data: bytes) -> None:
        self.link = link
        self.sender = sender
        self.data = data
        self.offset = 0
        self.received = bytearray()
        self.closed: dict[Side, CloseReason] = {}
        link.handler = self.on_event

    def push(self, flow: Flow) -> None:
        link = self.link
        stack = link.stack(self.sender)
        while self.offset < len(self.data):
            out = stack.l4_tx(flow, self.data[self.offset : self.offset + 65536], link.now)
            self.offset += out.accepted
            link.deliver(self.sender, out.events, out.packets)
            if out.accepted == 0:
                return
        link.deliver(self.sender, [], stack.close(flow, link.now).packets)

    def on_event(self, side: Side, event: Event, link: Link) -> None:
        if isinstance(event, FlowOpened) and side == self.sender:
            self.push(event.flow)
        elif isinstance(event, Writable) and side == self.sender and self.offset < len(self.data):
            self.push(event.flow)
        elif isinstance(event, DataReceived):
            assert side != self.sender
            self.received += event.data
        elif isinstance(event, EndOfStream) and side != self.sender:
            out = link.stack(side).close(event.flow, link.now)
            link.deliver(side, out.events, out.packets)
        elif isinstance(event, FlowClosed):
            assert side not in self.closed
            self.closed[side] = event.reason


def run_transfer(
    size: int, sender: Side, impairment: Impairment, seed: int, flow: Flow = CLIENT, **config: object
) -> Transfer:
    a: Stack[bytearray] = Stack(Config(secret=b"client-secret-01", **config))  # type: ignore[arg-type]
    b: Stack[bytearray] = Stack(Config(secret=b"server-secret-01", **config))  # type: ignore[arg-type]
    link = Link(a, b, impairment, seed=seed)
    data = random.Random(seed).randbytes(size)
    transfer = Transfer(link, sender, data)
    link.call("a", a.connect(flow, 0.0))
    link.run(lambda: len(transfer.closed) == 2, limit=3000.0)
    # Let TIME_WAIT and every other timer run out.
    link.run(limit=3000.0)
    assert bytes(transfer.received) == data
    assert transfer.closed == {"a": CloseReason.CLOSED, "b": CloseReason.CLOSED}
    for stack in (a, b):
        assert stack.flows() == [] and stack.tcp_states() == {} and stack.next_deadline() is None
        assert stack.stats.flows_opened == stack.stats.flows_closed == 1
    return transfer


@pytest.mark.parametrize("size", [0, 1, 1447, 1449, 100_000, 1 << 20])
@pytest.mark.parametrize("sender", ["a", "b"])
def test_clean_link(size: int, sender: Side) -> None:
    run_transfer(size, sender, Impairment(), seed=size)


@pytest.mark.parametrize("loss", [0.01, 0.05, 0.20])
@pytest.mark.parametrize("sender", ["a", "b"])
def test_lossy_link_with_reordering_and_duplicates(loss: float, sender: Side) -> None:
    impairment = Impairment(loss=loss, duplicate=0.02, reorder=0.05)
    transfer = run_transfer(1 << 20, sender, impairment, seed=int(loss * 100))
    stack = transfer.link.stack(sender)
    assert stack.stats.tcp_retransmits > 0


def test_sixteen_mebibytes_each_way_at_five_percent_loss() -> None:
    impairment = Impairment(loss=0.05, duplicate=0.01, reorder=0.05, corrupt=0.01)
    for sender in ("a", "b"):
        transfer = run_transfer(16 << 20, sender, impairment, seed=16)
        receiver = transfer.link.stack("b" if sender == "a" else "a")
        assert receiver.stats.drops[next(r for r in receiver.stats.drops if r.value == "bad_l4_checksum")] > 0


@pytest.mark.parametrize("congestion_control", ["cubic", "newreno"])
@pytest.mark.parametrize("options", [{}, {"tcp_sack": False}, {"tcp_timestamps": False, "tcp_window_scaling": False}])
def test_every_option_set_survives_loss(congestion_control: str, options: dict[str, object]) -> None:
    impairment = Impairment(loss=0.05, reorder=0.05)
    run_transfer(300_000, "a", impairment, 5, CLIENT, tcp_congestion_control=congestion_control, **options)


def test_ipv6_transfer() -> None:
    run_transfer(500_000, "b", Impairment(loss=0.02), seed=6, flow=CLIENT6)


def test_small_windows_and_buffers() -> None:
    run_transfer(200_000, "a", Impairment(loss=0.05), seed=7, tcp_receive_buffer=4096, tcp_send_buffer=3000)
