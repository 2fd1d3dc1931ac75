"""The public API: flows, configuration, events, errors."""

from __future__ import annotations

import dataclasses
from ipaddress import ip_address

import pytest

import l3l4
from l3l4 import Config, DataReceived, Flow, Proto


def test_flow_is_a_hashable_value() -> None:
    a = Flow(Proto.UDP, ip_address("192.0.2.1"), 1, ip_address("192.0.2.2"), 2)
    b = Flow(Proto.UDP, ip_address("192.0.2.1"), 1, ip_address("192.0.2.2"), 2)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a.reversed() == Flow(Proto.UDP, ip_address("192.0.2.2"), 2, ip_address("192.0.2.1"), 1)
    assert a != a.reversed() and a != dataclasses.replace(a, proto=Proto.TCP)
    assert Flow.from_key(a.key) == a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.local_port = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "args",
    [
        (Proto.UDP, ip_address("192.0.2.1"), 1, ip_address("2001:db8::1"), 2),
        (Proto.UDP, ip_address("192.0.2.1"), 0, ip_address("192.0.2.2"), 2),
        (Proto.UDP, ip_address("192.0.2.1"), 1, ip_address("192.0.2.2"), 65536),
    ],
)
def test_flow_rejects_impossible_values(args: tuple[Proto, l3l4.flow.IPAddress, int, l3l4.flow.IPAddress, int]) -> None:
    with pytest.raises(ValueError):
        Flow(*args)


@pytest.mark.parametrize(
    "changes",
    [{"mtu": 500}, {"mtu": 70000}, {"ttl": 0}, {"max_udp_flows": 0}, {"udp_idle_timeout": 0.0}, {"secret": b"short"},
     {"tcp_quick_acks": -1}],
)
def test_config_rejects_values_that_cannot_work(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Config(**changes)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().mtu = 9000  # type: ignore[misc]


def test_events_are_frozen_values() -> None:
    flow = Flow(Proto.UDP, ip_address("192.0.2.1"), 1, ip_address("192.0.2.2"), 2)
    event = DataReceived(flow, b"x")
    assert event == DataReceived(flow, b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = b"y"  # type: ignore[misc]


def test_every_error_is_an_l3l4_error() -> None:
    for name in l3l4.__all__:
        value = getattr(l3l4, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, l3l4.L3L4Error)


def test_stats_report_every_counter() -> None:
    stack: l3l4.Stack[bytearray] = l3l4.Stack()
    stack.l3_rx(b"", 0.0)
    counters = stack.stats.as_dict()
    assert counters["rx_packets"] == 1 and counters["drop.truncated"] == 1
    assert stack.stats.dropped == 1
