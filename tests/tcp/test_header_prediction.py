"""Header prediction is only a shortcut: with it and without it, the same seeded
exchange (both ways at once, under loss, reordering, duplication, corruption, small
windows and delayed ACKs) puts exactly the same packets on the wire and moves both
connections through the same states at the same moments."""

from __future__ import annotations

import random
from ipaddress import ip_address

import pytest
from support.exchange import Exchange
from support.link import Impairment, Link

from l3l4 import CloseReason, Config, Flow, Proto, Stack
from l3l4.tcp.connection import Connection

FLOWS = [
    Flow(Proto.TCP, ip_address("198.51.100.1"), 40000, ip_address("203.0.113.80"), 80),
    Flow(Proto.TCP, ip_address("2001:db8::1"), 40000, ip_address("2001:db8:ffff::80"), 443),
]
CASES: list[tuple[dict[str, object], Impairment]] = [
    ({}, Impairment()),
    ({}, Impairment(loss=0.05, duplicate=0.02, reorder=0.05, corrupt=0.01)),
    ({"tcp_timestamps": False, "tcp_sack": False}, Impairment(loss=0.03, reorder=0.1)),
    ({"tcp_receive_buffer": 6000, "tcp_send_buffer": 5000}, Impairment(loss=0.02, reorder=0.05)),
    ({"tcp_delayed_ack": 0.0}, Impairment(loss=0.01)),
    # ECN negotiated (no marks on this link), counted loss detection, no PRR or HyStart++.
    ({"tcp_ecn": "on", "tcp_loss_detection": "rfc6675", "tcp_prr": False, "tcp_hystart": False},
     Impairment(loss=0.02, reorder=0.05)),
    # A slow reader: windows close to zero, the senders probe, the windows reopen.
    ({"rx_manual_consume": True, "tcp_receive_buffer": 8192}, Impairment(loss=0.02, reorder=0.05)),
]
# How long a reader with a full receive buffer waits before it takes everything.
READER_STALL = 0.2


class StateLink(Link):
    """A link that notes both stacks' connection states after every step, and, for
    stacks with manual consume, plays a slow reader: one that lets its receive window
    close and takes what it holds only ``READER_STALL`` seconds later."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.states: list[tuple[dict[str, int], dict[str, int]]] = []
        self.exchange: Exchange | None = None
        self._stalled: dict[str, float] = {}

    def step(self, horizon: float = float("inf")) -> bool:
        stepped = super().step(horizon)
        self.states.append((self.a.tcp_states(), self.b.tcp_states()))
        if self.exchange is not None:
            self._read_slowly(self.exchange)
        return stepped

    def _read_slowly(self, exchange: Exchange) -> None:
        for side, flow in exchange.opened.items():
            stack = self.stack(side)
            if not stack.config.rx_manual_consume or side in exchange.closed:
                continue
            info = stack.flow_info(flow)
            if info.rcv_wnd > 0 or not info.unconsumed:
                continue
            since = self._stalled.setdefault(side, self.now)
            if self.now >= since + READER_STALL:
                del self._stalled[side]
                self.call(side, stack.consumed(flow, info.unconsumed, self.now))


def wire(
    flow: Flow, config: dict[str, object], impairment: Impairment, seed: int
) -> tuple[list[tuple[str, bytes]], list[tuple[dict[str, int], dict[str, int]]]]:
    """Every packet of a two-way exchange, in the order the stacks sent them, and the
    states the connections went through."""
    a: Stack[bytearray] = Stack(Config(secret=b"client-secret-01", **config))  # type: ignore[arg-type]
    b: Stack[bytearray] = Stack(Config(secret=b"server-secret-01", **config))  # type: ignore[arg-type]
    link = StateLink(a, b, impairment, seed=seed, record=True)
    rng = random.Random(seed)
    exchange = link.exchange = Exchange(link, {"a": rng.randbytes(300_000), "b": rng.randbytes(200_000)})
    link.call("a", a.connect(flow, 0.0))
    link.run(lambda: exchange.done, limit=3000.0)
    assert exchange.intact()
    assert exchange.closed == {"a": CloseReason.CLOSED, "b": CloseReason.CLOSED}
    return link.wire, link.states


def window_of(packet: bytes) -> int:
    """The TCP window field of an IPv4 (no options) or IPv6 (no extension headers) packet."""
    tcp = (packet[0] & 0x0F) * 4 if packet[0] >> 4 == 4 else 40
    return int.from_bytes(packet[tcp + 14 : tcp + 16], "big")


@pytest.mark.parametrize("flow", FLOWS, ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_the_shortcut_sends_what_the_full_path_sends(flow: Flow, case: int, monkeypatch: pytest.MonkeyPatch) -> None:
    config, impairment = CASES[case]
    taken = 0
    predicted = Connection._predicted

    def counting(self: Connection, *args: object) -> bool:
        nonlocal taken
        result = predicted(self, *args)  # type: ignore[arg-type]
        taken += result
        return result

    monkeypatch.setattr(Connection, "_predicted", counting)
    fast = wire(flow, config, impairment, seed=case)
    monkeypatch.setattr(Connection, "_predicted", lambda self, *args: False)
    full = wire(flow, config, impairment, seed=case)
    # The shortcut carried a good part of the exchange; at 5% loss both ways most
    # segments carry SACK blocks or fill a hole, and a slow reader's exchange is mostly
    # probes of closed windows and their retransmissions: it rightly leaves those to
    # the full path.
    assert taken >= (5 if impairment.loss >= 0.05 or config.get("rx_manual_consume") else 50)
    assert fast == full
    if config.get("rx_manual_consume"):
        packets, _ = fast
        assert sum(window_of(packet) == 0 for _, packet in packets) > 10  # windows did close
