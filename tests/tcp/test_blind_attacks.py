"""Blind attacks (RFC 5961) on a live transfer, and unpredictable ISNs (RFC 6528).

An off-path attacker who knows the 4-tuple injects resets, SYNs, FINs, data and ACKs
into a transfer between two stacks. The test is omniscient: it aims each spoofed
segment just where RFC 9293 and RFC 5961 say it must be refused (an in-window reset
that is not exact, data whose ACK acknowledges what was never sent, a FIN beyond the
window...), and checks that every one is dropped and counted once and that both
streams still arrive exactly as sent. (What RFC 5961 cannot stop -- an exact guess of
RCV.NXT, or in-window data with an acceptable ACK -- is not attempted: a blind attacker
must guess 32 bits for it.)
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, replace
from ipaddress import ip_address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.exchange import Exchange
from support.link import Impairment, Link, Side
from support.spoof import ACK, FIN, PSH, RST, SYN, tcp_packet

from l3l4 import CloseReason, Config, DropReason, Flow, Proto, Stack, UnknownFlowError

CLIENT = Flow(Proto.TCP, ip_address("192.0.2.10"), 40000, ip_address("203.0.113.80"), 443)
MASK = 0xFFFFFFFF

KINDS = (
    "rst-in-window",
    "rst-out-of-window",
    "syn",
    "data-acking-the-future",
    "data-acking-the-distant-past",
    "data-beyond-the-window",
    "old-duplicate-data",
    "fin-acking-the-future",
    "ack-of-unsent-data",
)
EXPECTED = {
    "rst-in-window": {DropReason.TCP_CHALLENGED},
    "rst-out-of-window": {DropReason.TCP_OUT_OF_WINDOW},
    "syn": {DropReason.TCP_CHALLENGED, DropReason.TCP_OUT_OF_WINDOW},
    "data-acking-the-future": {DropReason.TCP_BAD_ACK},
    "data-acking-the-distant-past": {DropReason.TCP_BAD_ACK},
    "data-beyond-the-window": {DropReason.TCP_OUT_OF_WINDOW},
    "old-duplicate-data": {DropReason.TCP_OUT_OF_WINDOW},
    "fin-acking-the-future": {DropReason.TCP_BAD_ACK},
    "ack-of-unsent-data": {DropReason.TCP_BAD_ACK},
}
SYNCHRONIZED = {"ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK"}


@dataclass(frozen=True)
class Attack:
    after_steps: int
    target: Side
    kind: str
    distance: int
    """How far from the edge the attack aims (its meaning depends on the kind)."""
    size: int


attacks = st.builds(
    Attack,
    st.integers(0, 8),
    st.sampled_from(("a", "b")),
    st.sampled_from(KINDS),
    st.one_of(st.integers(1, 1500), st.integers(1, 1 << 30)),
    st.integers(1, 1400),
)


def aim(attack: Attack, stack: Stack[bytearray], flow: Flow, rng: random.Random) -> bytes | None:
    """The spoofed segment for ``attack`` against ``stack``'s end of ``flow``, from the
    peer's address; None if the connection is in no state to attack that way."""
    try:
        info = stack.flow_info(flow)
    except UnknownFlowError:
        return None
    if info.state not in SYNCHRONIZED:
        return None
    rcv_nxt, wnd, snd_una, snd_nxt = info.rcv_nxt, info.rcv_wnd, info.snd_una, info.snd_nxt
    d, size = attack.distance, attack.size
    payload = rng.randbytes(size)
    good_ack = snd_una  # acceptable: SND.UNA is always in range
    kind = attack.kind
    if kind == "rst-in-window":
        if wnd <= 1:
            return None
        seq, ack, flags, payload = rcv_nxt + 1 + d % (wnd - 1), 0, RST, b""
    elif kind == "rst-out-of-window":
        seq = rcv_nxt + wnd + d if d % 2 else rcv_nxt - d
        ack, flags, payload = 0, RST, b""
    elif kind == "syn":
        seq, ack, flags, payload = rcv_nxt + d - 700, 0, SYN if d % 2 else SYN | ACK, b""
    elif kind == "data-acking-the-future":
        seq, ack, flags = rcv_nxt + (d % max(wnd - size, 1)), snd_nxt + d, PSH | ACK
    elif kind == "data-acking-the-distant-past":
        # RFC 5961 §5.2: acceptable ACKs reach back MAX.SND.WND (at most 2**30 bytes).
        seq, ack, flags = rcv_nxt, snd_una - (1 << 30) - d, PSH | ACK
    elif kind == "data-beyond-the-window":
        seq, ack, flags = rcv_nxt + wnd + d - 1, good_ack, PSH | ACK
    elif kind == "old-duplicate-data":
        seq, ack, flags = rcv_nxt - size - d + 1, good_ack, PSH | ACK
    elif kind == "fin-acking-the-future":
        seq, ack, flags = rcv_nxt, snd_nxt + d, FIN | ACK
    else:
        seq, ack, flags, payload = rcv_nxt, snd_nxt + d, ACK, b""
    if kind == "data-beyond-the-window" and wnd == 0:
        seq += 1  # a zero window accepts a zero-length segment at RCV.NXT only
    return tcp_packet(
        str(flow.remote_ip), str(flow.local_ip), flow.remote_port, flow.local_port, seq & MASK, ack & MASK, flags,
        payload=payload,
    )


def run_attacked_transfer(plan: list[Attack], seed: int, impairment: Impairment, size: int) -> tuple[Exchange, int]:
    """Run ``plan`` against a transfer of ``size`` bytes each way (send buffers of 64 KiB,
    so that the connections spend their time established); return the exchange and
    how many attacks were made (the others found the connection gone or opening)."""
    config = Config(tcp_send_buffer=64 * 1024, secret=b"client-secret-00")
    a = Stack(config)
    b = Stack(replace(config, secret=b"server-secret-00"))
    link = Link(a, b, impairment, seed=seed)
    rng = random.Random(seed)
    exchange = Exchange(link, {"a": rng.randbytes(size), "b": rng.randbytes(size * 3 // 4)})
    link.call("a", a.connect(CLIENT, 0.0))
    flows = {"a": CLIENT, "b": CLIENT.reversed()}
    made = 0
    for attack in plan:
        for _ in range(attack.after_steps):
            if not link.step():
                break
        stack = link.stack(attack.target)
        packet = aim(attack, stack, flows[attack.target], rng)
        if packet is None:
            continue
        made += 1
        before = dict(stack.stats.drops)
        out = stack.l3_rx(packet, link.now)
        delta = {reason: count - before[reason] for reason, count in stack.stats.drops.items() if count != before[reason]}
        assert out.events == [], (attack, out.events)
        assert len(delta) == 1 and set(delta) <= EXPECTED[attack.kind] and sum(delta.values()) == 1, (attack, delta)
        assert len(out.packets) <= 1  # an ACK (or a rate-limited challenge ACK), never more
        link.deliver(attack.target, out.events, out.packets)  # the real peer gets the answer
    link.run(lambda: exchange.done, limit=900.0)
    return exchange, made


@settings(derandomize=True, database=None, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(attacks, min_size=10, max_size=80), st.integers(0, 3))
def test_spoofed_segments_never_corrupt_a_live_transfer(plan: list[Attack], seed: int) -> None:
    impairment = Impairment(loss=0.01 * seed, reorder=0.02 * seed, duplicate=0.01 * seed)
    exchange, _ = run_attacked_transfer(plan, seed, impairment, 150_000)
    assert exchange.intact()
    assert exchange.closed == {"a": CloseReason.CLOSED, "b": CloseReason.CLOSED}


def test_a_thousand_spoofed_segments_into_one_transfer() -> None:
    """The same, at length, with every kind of attack in turn."""
    plan = [Attack(1 + n % 3, "ab"[n % 2], KINDS[n % len(KINDS)], 1 + (n * 7919) % 60_000, 1 + n % 1400) for n in range(1000)]
    exchange, made = run_attacked_transfer(plan, 11, Impairment(), 1 << 20)
    assert made > 950
    assert exchange.intact()
    assert exchange.closed == {"a": CloseReason.CLOSED, "b": CloseReason.CLOSED}


# -- RFC 6528: ISNs an off-path attacker cannot predict -----------------------------------------


def syn_ack_of(stack: Stack[bytearray], src: str, sport: int, now: float = 0.0) -> tuple[int, int]:
    """Send a SYN with timestamps; return the SYN-ACK's (ISN, TSval)."""
    options = bytes.fromhex("0101080a" "00000001" "00000000")
    [packet] = stack.l3_rx(tcp_packet(src, "203.0.113.80", sport, 80, 1, 0, SYN, options=options), now).packets
    raw = bytes(packet)
    isn = struct.unpack_from("!I", raw, 24)[0]
    tsval = struct.unpack_from("!I", raw, raw.index(b"\x08\x0a", 40) + 2)[0]
    return isn, tsval


def bit_balance(values: list[int]) -> list[float]:
    return [sum(value >> bit & 1 for value in values) / len(values) for bit in range(32)]


def test_isns_of_neighbouring_four_tuples_look_random() -> None:
    """RFC 6528 §3: ISN = M + F(4-tuple, secret). Consecutive ports give ISNs whose every
    bit is set about half the time and whose differences follow no pattern."""
    stack = Stack(Config(secret=b"isn-test-secret-", max_tcp_flows=5000, tcp_syn_cookie_threshold=None))
    isns = [syn_ack_of(stack, "192.0.2.1", 10_000 + n)[0] for n in range(4000)]
    assert len(set(isns)) == len(isns)
    assert all(0.45 < share < 0.55 for share in bit_balance(isns))
    steps = [(b - a) & MASK for a, b in zip(isns, isns[1:])]
    assert len(set(steps)) > 0.99 * len(steps)


def test_isns_depend_on_the_secret_and_the_default_secret_is_random() -> None:
    def isn(config: Config) -> int:
        return syn_ack_of(Stack(config), "192.0.2.1", 5555)[0]

    assert isn(Config(secret=b"one-secret-00000")) == isn(Config(secret=b"one-secret-00000"))
    assert isn(Config(secret=b"one-secret-00000")) != isn(Config(secret=b"two-secret-00000"))
    assert len({isn(Config()) for _ in range(20)}) == 20


def test_timestamps_carry_a_random_offset_per_flow() -> None:
    """RFC 7323 §7.1 (and RFC 6528's concern): TSvals do not reveal a global clock;
    flows opened at the same instant show unrelated TSvals."""
    stack = Stack(Config(secret=b"ts-test-secret-0", max_tcp_flows=3000, tcp_syn_cookie_threshold=None))
    tsvals = [syn_ack_of(stack, "192.0.2.1", 20_000 + n, now=5.0)[1] for n in range(2000)]
    assert len(set(tsvals)) > 0.99 * len(tsvals)
    assert all(0.43 < share < 0.57 for share in bit_balance(tsvals)[5:])


def test_cookie_isns_are_unpredictable_below_their_counter_bits() -> None:
    """A cookie ISN has 5 bits of minute counter and 3 of MSS index (RFC 4987 §3.6);
    the 24 bits below them are a keyed hash."""
    stack = Stack(Config(secret=b"cookie-secret-00", tcp_syn_cookie_threshold=0))
    isns = [syn_ack_of(stack, "192.0.2.1", 30_000 + n, now=125.0)[0] for n in range(4000)]
    assert {isn >> 27 for isn in isns} == {125 // 60 % 32}
    assert all(0.45 < share < 0.55 for share in bit_balance([isn & 0xFFFFFF for isn in isns])[:24])
    assert len({isn & 0xFFFFFF for isn in isns}) > 0.99 * len(isns)
    assert stack.usage().tcp_flows == 0
