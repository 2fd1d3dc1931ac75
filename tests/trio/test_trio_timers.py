"""TCP's timers through the trio API, on a mock clock: when a lost segment is resent,
when an unanswered connect gives up, when a connection whose peer vanished times out,
and when keepalive ends a silent one. Every test asserts the times (on
``trio.current_time()``), computed from the ``Config`` and RFC 6298, not only outcomes.

Losses are deterministic: each end's link is wrapped in a ``Tap`` that records every
segment the stack sends (time, flags, sequence number, length) and drops the ones a
test chooses, or all of them once the test ``cut`` the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import pytest
import trio
from support.trio_pair import CLIENT_IP, SECRET_A, SECRET_B, SERVER_IP, run

from l3l4 import CloseReason, Config
from l3l4.wire.ip import parse_ip
from l3l4.wire.tcp import ACK, SYN, parse_tcp
from l3l4_trio import ConnectTimeout, MemoryLink, Network, Packet, TcpStream, memory_link_pair, open_stack

DELAY = 0.05  # one way, so the RTT is 0.1 s
INITIAL_RTO = 1.0  # RFC 6298 §2.1
RTO_AFTER_SYN_TIMEOUT = 3.0  # RFC 6298 §5.7


def approx(value: float) -> object:
    """Timer arithmetic is exact up to float rounding."""
    return pytest.approx(value, abs=1e-6)


@dataclass(frozen=True)
class Sent:
    """One segment a stack handed to its link."""

    time: float
    flags: int
    seq: int
    length: int  # payload bytes
    dropped: bool


class Tap:
    """A link around a memory link: records what this end sends, and drops the
    segments ``drop`` picks (or everything, once ``cut``)."""

    def __init__(self, inner: MemoryLink) -> None:
        self.inner = inner
        self.sent: list[Sent] = []
        self.drop: Callable[[Sent], bool] = lambda sent: False
        self.cut = False

    async def receive_packets(self) -> Sequence[Packet]:
        return await self.inner.receive_packets()

    async def send_packets(self, packets: Sequence[Packet]) -> None:
        now = trio.current_time()
        passed = []
        for packet in packets:
            ip = parse_ip(packet, verify=False)
            assert ip.proto == 6, "these tests send TCP only"
            segment = parse_tcp(ip, verify=False)
            record = Sent(now, segment.flags, segment.seq, len(segment.payload), dropped=False)
            if self.cut or self.drop(record):
                record = replace(record, dropped=True)
            else:
                passed.append(packet)
            self.sent.append(record)
        await self.inner.send_packets(passed)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Tap:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def data(self) -> list[Sent]:
        """The segments that carried data."""
        return [sent for sent in self.sent if sent.length]

    def syns(self) -> list[Sent]:
        return [sent for sent in self.sent if sent.flags & SYN]


def nth_data_segment(n: int) -> Callable[[Sent], bool]:
    """A drop rule: the n-th segment carrying data (counting from 1), once."""
    seen = 0

    def drop(sent: Sent) -> bool:
        nonlocal seen
        if not sent.length:
            return False
        seen += 1
        return seen == n

    return drop


def first_syn() -> Callable[[Sent], bool]:
    """A drop rule: the first SYN, once."""
    dropped = False

    def drop(sent: Sent) -> bool:
        nonlocal dropped
        if sent.flags & SYN and not dropped:
            dropped = True
            return True
        return False

    return drop


@dataclass
class Path:
    """Two networks over a memory link with a tap on each end."""

    a: Network
    b: Network
    tap_a: Tap
    tap_b: Tap

    def cut(self) -> None:
        """The wire is gone both ways: the peer vanishes without a word."""
        self.tap_a.cut = self.tap_b.cut = True

    async def connect(self, port: int = 80) -> tuple[TcpStream, TcpStream]:
        client = await self.a.connect((CLIENT_IP, 0), (SERVER_IP, port))
        server = await self.b.accept()
        return client, server


@asynccontextmanager
async def tapped_path(config_a: Config, config_b: Config | None = None, delay: float = DELAY) -> AsyncIterator[Path]:
    """The two stacks, tail loss probes off (RFC 8985 §7: they come before the first
    timeout; tests/tcp/test_tail_loss_probe.py has them): the timers here are RFC 6298's."""
    link_a, link_b = memory_link_pair(delay=delay)
    tap_a, tap_b = Tap(link_a), Tap(link_b)
    config_a = replace(config_a, tcp_tail_loss_probe=False)
    config_b = replace(config_b or Config(secret=SECRET_B), tcp_tail_loss_probe=False)
    async with tap_a, tap_b:
        async with open_stack(tap_a, config_a) as a, open_stack(tap_b, config_b) as b:
            yield Path(a, b, tap_a, tap_b)


def rto_schedule(first_rto: float, max_rto: float, retries: int) -> list[float]:
    """RFC 6298 §5.5 backoff: the times, after the first transmission, of each of
    ``retries`` retransmissions and then of giving up (one more RTO later)."""
    times = []
    elapsed, rto = 0.0, first_rto
    for _ in range(retries + 1):
        elapsed += rto
        times.append(elapsed)
        rto = min(rto * 2, max_rto)
    return times


def rto_from_handshake(config: Config, rtt: float) -> float:
    """RFC 6298 §2.2: after one sample R, SRTT = R and RTTVAR = R / 2, so
    RTO = R + 4 * R / 2 = 3R, within [tcp_min_rto, tcp_max_rto] (§2.4, §2.5)."""
    return min(max(3 * rtt, config.tcp_min_rto), config.tcp_max_rto)


# -- (a) a lost segment is resent when the RTO expires --------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        Config(secret=SECRET_A),
        Config(secret=SECRET_A, tcp_min_rto=1.0),
        Config(secret=SECRET_A, tcp_timestamps=False),
    ],
    ids=["default", "min-rto-1s", "no-timestamps"],
)
def test_a_lost_segment_arrives_one_rto_later(config: Config) -> None:
    async def main() -> None:
        async with tapped_path(config) as path:
            client, server = await path.connect()
            rto = client.info().rto
            # The handshake gave an RTT sample (a timestamp echo, or the timed SYN).
            assert rto == pytest.approx(rto_from_handshake(config, 2 * DELAY), abs=0.005)
            path.tap_a.drop = nth_data_segment(1)
            start = trio.current_time()
            await client.send_all(b"lost once")
            assert await server.receive_some() == b"lost once"
            elapsed = trio.current_time() - start
            assert rto <= elapsed < 2 * rto
            assert elapsed == approx(rto + DELAY)  # resent at the RTO, then one way
            sent = path.tap_a.data()
            assert [(s.time - start, s.dropped) for s in sent] == [(approx(0.0), True), (approx(rto), False)]
            assert sent[0].seq == sent[1].seq
            assert path.a.stack.stats.tcp_timeouts == 1

    run(main)


def test_after_a_lost_syn_without_timestamps_the_rto_is_three_seconds() -> None:
    """RFC 6298 §5.7: the SYN was resent, Karn's rule leaves no RTT sample, so data
    starts with an RTO of 3 s; a lost first segment waits that long."""
    config = Config(secret=SECRET_A, tcp_timestamps=False)

    async def main() -> None:
        async with tapped_path(config) as path:
            path.tap_a.drop = first_syn()
            start = trio.current_time()
            client = await path.a.connect((CLIENT_IP, 0), (SERVER_IP, 80))
            assert trio.current_time() - start == approx(INITIAL_RTO + 2 * DELAY)
            server = await path.b.accept()
            assert [s.time - start for s in path.tap_a.syns()] == [approx(0.0), approx(INITIAL_RTO)]
            info = client.info()
            assert info.srtt is None and info.rto == RTO_AFTER_SYN_TIMEOUT
            path.tap_a.drop = nth_data_segment(1)
            start = trio.current_time()
            await client.send_all(b"slow")
            assert await server.receive_some() == b"slow"
            assert trio.current_time() - start == approx(RTO_AFTER_SYN_TIMEOUT + DELAY)

    run(main)


@pytest.mark.parametrize("sack", [True, False], ids=["sack", "newreno"])
def test_a_loss_among_later_segments_is_repaired_once_before_the_rto(sack: bool) -> None:
    """Fast retransmit (RFC 5681 §3.2, RFC 6582, RFC 6675): the segments after the hole
    bring duplicate ACKs (with SACK blocks if agreed) a round trip later, and the hole
    is resent then, once."""
    config = Config(secret=SECRET_A, tcp_sack=sack)

    async def main() -> None:
        async with tapped_path(config) as path:
            client, server = await path.connect()
            info = client.info()
            payload = bytes(range(256)) * (10 * info.mss // 256)  # within the initial window
            path.tap_a.drop = nth_data_segment(3)
            start = trio.current_time()
            await client.send_all(payload)
            received = bytearray()
            while len(received) < len(payload):
                received += await server.receive_some()
            elapsed = trio.current_time() - start
            assert received == payload
            assert elapsed == approx(3 * DELAY) and elapsed < info.rto  # one RTT, then one way
            sent = path.tap_a.data()
            lost = next(s for s in sent if s.dropped)
            again = [s for s in sent if s.seq == lost.seq and not s.dropped]
            assert [s.time - start for s in again] == [approx(2 * DELAY)]
            stats = path.a.stack.stats
            assert stats.tcp_fast_recoveries == 1 and stats.tcp_timeouts == 0

    run(main)


# -- (b) a SYN nobody answers -----------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        Config(secret=SECRET_A, tcp_syn_retries=0),
        Config(secret=SECRET_A, tcp_syn_retries=2),
        Config(secret=SECRET_A),  # six retries, Linux's default: 127 s
        Config(secret=SECRET_A, tcp_syn_retries=4, tcp_max_rto=3.0),
        Config(secret=SECRET_A, tcp_syn_retries=3, tcp_min_rto=1.5),
    ],
    ids=["no-retries", "two-retries", "default", "max-rto-3s", "min-rto-1.5s"],
)
def test_connect_to_a_silent_peer_times_out_after_the_syn_backoff(config: Config) -> None:
    # The first RTO is RFC 6298 §2.1's 1 s, within the configured floor and ceiling.
    first_rto = min(max(INITIAL_RTO, config.tcp_min_rto), config.tcp_max_rto)
    expected = rto_schedule(first_rto, config.tcp_max_rto, config.tcp_syn_retries)
    assert config.tcp_halfopen_idle_timeout is None or expected[-1] < config.tcp_halfopen_idle_timeout

    async def main() -> None:
        link, silent = memory_link_pair(delay=DELAY)  # nobody runs on the other end
        tap = Tap(link)
        async with tap, silent, open_stack(tap, config) as net:
            start = trio.current_time()
            with pytest.raises(ConnectTimeout) as caught:
                await net.connect((CLIENT_IP, 0), (SERVER_IP, 80))
            assert trio.current_time() - start == approx(expected[-1])
            assert caught.value.reason is CloseReason.TIMED_OUT
            # The SYN, then a retransmission at each backed-off RTO; no reset after.
            assert [s.time - start for s in tap.sent] == [approx(0.0)] + [approx(t) for t in expected[:-1]]
            assert all(s.flags == SYN for s in tap.sent)
            assert net.stack.flows() == []

    run(main)


# -- (c) an established connection whose peer vanished ------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        Config(secret=SECRET_A, tcp_max_retries=3),
        Config(secret=SECRET_A, tcp_max_retries=5, tcp_max_rto=1.0),
    ],
    ids=["three-retries", "max-rto-1s"],
)
def test_data_to_a_vanished_peer_backs_off_then_breaks_the_stream(config: Config) -> None:
    async def main() -> None:
        async with tapped_path(config) as path:
            client, _server = await path.connect()
            path.cut()
            rto = client.info().rto
            expected = rto_schedule(rto, config.tcp_max_rto, config.tcp_max_retries)
            start = trio.current_time()
            with pytest.raises(trio.BrokenResourceError, match="timed out"):
                await client.send_all(bytes(2 * config.tcp_send_buffer))  # waits for room
            assert trio.current_time() - start == approx(expected[-1])
            assert client.close_reason is CloseReason.TIMED_OUT
            with pytest.raises(trio.BrokenResourceError, match="timed out"):
                await client.receive_some()
            # A first flight at once, then the first segment alone at each RTO.
            sent = path.tap_a.data()
            first_seq = sent[0].seq
            resent = [s.time - start for s in sent if s.seq == first_seq]
            assert resent == [approx(0.0)] + [approx(t) for t in expected[:-1]]
            assert all(s.time == sent[0].time for s in sent if s.seq != first_seq)
            # Giving up sends nothing more (as Linux: no reset to a peer that is gone).
            assert path.tap_a.sent[-1].time - start == approx(expected[-2])
            assert path.a.stack.stats.tcp_timeouts == config.tcp_max_retries

    run(main)


def test_user_timeout_ends_the_connection_when_data_has_waited_that_long() -> None:
    """RFC 9293 §3.8.3 / RFC 5482: data may stay unacknowledged ``tcp_user_timeout``
    seconds; then the connection is closed, even between two retransmissions."""
    config = Config(secret=SECRET_A, tcp_user_timeout=2.0)

    async def main() -> None:
        async with tapped_path(config) as path:
            client, _server = await path.connect()
            path.cut()
            rto = client.info().rto
            start = trio.current_time()
            await client.send_all(b"never acknowledged")
            with pytest.raises(trio.BrokenResourceError, match="timed out"):
                await client.receive_some()
            assert trio.current_time() - start == approx(2.0)
            # Until then, retransmissions at the usual backoff (RTO 0.3 s: at 0.3 and 0.9;
            # the next, at 2.1, would have been late).
            backoff = [t for t in rto_schedule(rto, config.tcp_max_rto, config.tcp_max_retries) if t < 2.0]
            assert [s.time - start for s in path.tap_a.data()] == [approx(t) for t in [0.0, *backoff]]

    run(main)


# -- (d) keepalive ---------------------------------------------------------------------------


IDLE, INTERVAL, COUNT = 30.0, 5.0, 4
KEEPALIVE = Config(secret=SECRET_A, tcp_keepalive_idle=IDLE, tcp_keepalive_interval=INTERVAL, tcp_keepalive_count=COUNT)


def test_keepalive_ends_a_silent_connection_whose_peer_vanished() -> None:
    async def main() -> None:
        async with tapped_path(KEEPALIVE) as path:
            client = await path.a.connect((CLIENT_IP, 0), (SERVER_IP, 80))
            heard = trio.current_time()  # the SYN-ACK: the last segment from the peer
            await path.b.accept()
            path.cut()
            with pytest.raises(trio.BrokenResourceError, match="timed out"):
                await client.receive_some()
            # RFC 9293 §3.8.4 / Linux: IDLE seconds of silence, then COUNT probes INTERVAL
            # apart; the connection ends INTERVAL after the last one.
            assert trio.current_time() - heard == approx(IDLE + COUNT * INTERVAL)
            assert client.close_reason is CloseReason.TIMED_OUT
            probes = [s for s in path.tap_a.sent if s.time > heard]
            expected = [IDLE + i * INTERVAL for i in range(COUNT)]
            assert [(s.flags, s.length) for s in probes] == [(ACK, 0)] * COUNT
            assert [s.time - heard for s in probes] == [approx(t) for t in expected]
            # SND.NXT - 1: a sequence number the peer has acknowledged already.
            snd_nxt = next(s.seq for s in path.tap_a.sent if s.time == heard)  # the handshake's ACK
            assert {s.seq for s in probes} == {(snd_nxt - 1) & 0xFFFFFFFF}

    run(main)


def test_keepalive_answered_keeps_a_silent_connection_open() -> None:
    async def main() -> None:
        async with tapped_path(KEEPALIVE) as path:
            client = await path.a.connect((CLIENT_IP, 0), (SERVER_IP, 80))
            heard = trio.current_time()
            server = await path.b.accept()
            await trio.sleep(10 * IDLE)
            probes = [s for s in path.tap_a.sent if s.time > heard]
            # Each probe is answered a round trip later, and the next comes one idle
            # period after that answer.
            expected = [k * (IDLE + 2 * DELAY) - 2 * DELAY for k in range(1, 10)]
            assert [s.time - heard for s in probes] == [approx(t) for t in expected]
            assert not any(s.dropped for s in probes)
            await client.send_all(b"still here")
            assert await server.receive_some() == b"still here"

    run(main)


def test_a_peers_keepalives_keep_the_idle_timeout_from_firing() -> None:
    """``tcp_idle_timeout`` counts seconds without a segment from the peer; a keepalive
    probe (RFC 9293 §3.8.4) is one, though it lies just left of the window."""
    server_config = Config(secret=SECRET_B, tcp_idle_timeout=100.0)

    async def main() -> None:
        async with tapped_path(KEEPALIVE, server_config) as path:
            client, server = await path.connect()
            await trio.sleep(1000.0)
            assert server.close_reason is None and client.close_reason is None
            await client.send_all(b"alive")
            assert await server.receive_some() == b"alive"

    run(main)


def test_without_keepalive_the_idle_timeout_resets_a_silent_connection() -> None:
    server_config = Config(secret=SECRET_B, tcp_idle_timeout=100.0)

    async def main() -> None:
        async with tapped_path(Config(secret=SECRET_A), server_config) as path:
            client, server = await path.connect()
            accepted = trio.current_time()
            with pytest.raises(trio.BrokenResourceError, match="idle"):
                await server.receive_some()
            # The server last heard the client's ACK of its SYN-ACK, which came with accept.
            assert trio.current_time() - accepted == approx(100.0)
            with pytest.raises(trio.BrokenResourceError, match="reset"):
                await client.receive_some()

    run(main)

