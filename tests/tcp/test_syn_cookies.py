"""SYN cookies (RFC 4987 §3.6): past ``Config.tcp_syn_cookie_threshold`` half-open
connections a SYN is answered statelessly; the ACK that returns the cookie opens a
connection with the options the cookie encoded, which then works like any other.

Exact packets against a scapy peer, then back to back against another stack, then a
flood of spoofed SYNs with a real client among them.
"""

from __future__ import annotations

import random
from ipaddress import ip_address

import pytest
from support.exchange import Exchange
from support.link import Link
from support.peer import MASK, Options, Peer, data_of, make_stack, syn_options
from support.spoof import spoofed_syns

from l3l4 import CloseReason, Config, DropReason, Flow, FlowClosed, FlowOpened, FlowRequested, Proto, Stack

COOKIES = {"tcp_syn_cookie_threshold": 0}
"""Every SYN gets a cookie."""


def cookie_peer(version: int = 4, **config: object) -> Peer:
    stack = make_stack(**{**COOKIES, **config})
    if version == 4:
        return Peer(stack)
    return Peer(stack, addr="2001:db8::1", stack_addr="2001:db8:ffff::80")


# -- when cookies are used --------------------------------------------------------------


def test_past_the_threshold_a_syn_leaves_no_state() -> None:
    stack = make_stack(tcp_syn_cookie_threshold=2)
    peers = [Peer(stack, port=40000 + n) for n in range(4)]
    answers = [peer.syn().only for peer in peers]
    assert all(answer.flags == "SA" for answer in answers)
    assert stack.tcp_states() == {"SYN_RECEIVED": 2}
    assert stack.usage().tcp_half_open == 2
    assert stack.stats.tcp_syn_cookies_sent == 2
    # Every one of them completes: two from state, two from their cookies.
    for peer in peers:
        assert peer.send("A").events == [FlowOpened(peer.flow)]
    assert stack.tcp_states() == {"ESTABLISHED": 4}
    assert stack.usage().tcp_half_open == 0
    assert stack.stats.tcp_syn_cookies_accepted == 2
    assert stack.stats.dropped == 0


def test_a_retransmitted_syn_gets_the_same_cookie() -> None:
    peer = cookie_peer()
    first = peer.syn().only
    again = peer.at(1.0).send("S", seq=peer.isn, options=syn_options(peer.tsval())).only
    assert (again.seq, again.ack) == (first.seq, first.ack)
    assert peer.stack.tcp_states() == {}


def test_no_cookies_when_turned_off() -> None:
    stack = make_stack(tcp_syn_cookie_threshold=None, max_tcp_half_open=3)
    for n in range(5):
        Peer(stack, port=40000 + n).syn()
    assert stack.stats.tcp_syn_cookies_sent == 0
    assert stack.tcp_states() == {"SYN_RECEIVED": 3}
    assert stack.stats.tcp_half_open_evicted == 2


# -- what the cookie carries --------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "options", "mss", "wscale", "sack", "timestamps"),
    [
        pytest.param(4, syn_options(7000, mss=1460, wscale=7), 1460, 7, True, True, id="linux-v4"),
        pytest.param(6, syn_options(7000, mss=1440, wscale=9), 1440, 9, True, True, id="linux-v6"),
        pytest.param(4, syn_options(7000, mss=1400, sack=False, wscale=None), 1400, None, False, True, id="ts-only"),
        pytest.param(4, syn_options(7000, mss=1380, wscale=0), 1300, 0, True, True, id="mss-rounded-down"),
        pytest.param(4, syn_options(7000, mss=9000, wscale=14), 1460, 14, True, True, id="jumbo-mss-our-mtu"),
        pytest.param(4, syn_options(None, mss=1460, wscale=7), 1460, None, False, False, id="no-ts-no-ws-no-sack"),
        pytest.param(4, [], 536, None, False, False, id="no-options"),
        pytest.param(6, [], 1220, None, False, False, id="no-options-v6"),
    ],
)
def test_the_cookie_restores_the_options_of_the_syn(
    version: int, options: Options, mss: int, wscale: int | None, sack: bool, timestamps: bool
) -> None:
    peer = cookie_peer(version)
    peer.at(3.5)
    syn_ack = peer.syn(options).only
    assert syn_ack.flags == "SA" and syn_ack.ack == (peer.isn + 1) & MASK
    assert peer.stack.tcp_states() == {}
    # The SYN-ACK offers back only what the cookie can remember.
    assert syn_ack.mss == (1460 if version == 4 else 1440)
    assert syn_ack.sack_permitted == sack
    assert (syn_ack.wscale is not None) == (wscale is not None)
    assert (syn_ack.ts is not None) == timestamps
    if syn_ack.ts is not None:
        assert syn_ack.ts[1] == 7000
        assert syn_ack.ts[0] & 0x0F == (0x0F if wscale is None else wscale)
        assert bool(syn_ack.ts[0] & 0x10) == sack

    opened = peer.at(3.6).send("A")
    assert opened.events == [FlowOpened(peer.flow)] and opened.segments == []
    info = peer.stack.flow_info(peer.flow)
    assert info.state == "ESTABLISHED"
    assert info.snd_una == info.snd_nxt == (syn_ack.seq + 1) & MASK
    assert info.rcv_nxt == peer.seq
    assert info.mss == min(mss, syn_ack.mss or 0) - (12 if timestamps else 0)
    assert info.snd_wnd == peer.window << (wscale or 0)
    assert peer.stack.stats.tcp_syn_cookies_accepted == 1

    # Data both ways, with the options at work: out-of-order data draws SACK blocks
    # only if SACK was agreed, and the stack's window field is scaled only if agreed.
    assert data_of(peer.send("PA", b"hello").events) == b"hello"
    reply = peer.at(3.7).tx(b"x" * 3000)
    sizes = [info.mss] * (3000 // info.mss) + ([3000 % info.mss] if 3000 % info.mss else [])
    assert [len(s.payload) for s in reply.segments] == sizes
    assert peer.received == b"x" * 3000
    gap = peer.at(3.8).send("A", b"later", seq=(peer.seq + 100) & MASK)
    assert bool(gap.only.sack) == sack
    # The default 256 KiB buffer: shift 3 when scaling, else the 16-bit maximum.
    assert syn_ack.wscale == (3 if wscale is not None else None)
    assert reply.segments[0].window == (256 * 1024 >> 3 if wscale is not None else 0xFFFF)
    assert all((s.ts is not None) == timestamps for s in reply.segments)


def test_data_and_fin_on_the_cookie_ack_are_delivered() -> None:
    peer = cookie_peer()
    peer.syn()
    result = peer.at(0.1).send("FPA", b"request")
    names = [type(event).__name__ for event in result.events]
    assert names == ["FlowOpened", "DataReceived", "EndOfStream"]
    assert data_of(result.events) == b"request"
    assert peer.state() == "CLOSE_WAIT"
    assert result.only.ack == peer.seq


def test_a_cookie_connection_closes_normally() -> None:
    peer = cookie_peer()
    peer.handshake()
    peer.at(1.0).send("FA")
    close = peer.close()
    assert close.only.flags == "FA"
    done = peer.at(1.1).send("A")
    assert done.events == [FlowClosed(peer.flow, CloseReason.CLOSED)]
    assert peer.stack.tcp_states() == {} and peer.stack.usage().tcp_flows == 0


# -- bad cookies ------------------------------------------------------------------------


def check_refused(peer: Peer, flags: str = "A", **fields: object) -> None:
    stats = peer.stack.stats
    failed, no_connection = stats.tcp_syn_cookies_failed, stats.drops[DropReason.TCP_NO_CONNECTION]
    result = peer.send(flags, **fields)  # type: ignore[arg-type]
    assert result.events == []
    assert result.only.flags == "R"
    assert peer.stack.tcp_states() == {}
    assert stats.tcp_syn_cookies_failed == failed + 1
    assert stats.drops[DropReason.TCP_NO_CONNECTION] == no_connection + 1


def test_an_ack_of_the_wrong_number_is_reset() -> None:
    peer = cookie_peer()
    syn_ack = peer.syn().only
    check_refused(peer, ack=(syn_ack.seq + 2) & MASK)
    check_refused(peer, ack=(syn_ack.seq + 1 + (1 << 24)) & MASK)  # another MSS index
    check_refused(peer, seq=(peer.seq + 1) & MASK)  # not the ISN the cookie was made for


def test_an_ack_from_another_four_tuple_is_reset() -> None:
    peer = cookie_peer()
    syn_ack = peer.syn().only
    thief = Peer(peer.stack, port=peer.port + 1, isn=peer.isn)
    thief.timestamps = True
    thief.seq = peer.seq
    check_refused(thief, ack=(syn_ack.seq + 1) & MASK)


def test_a_forged_cookie_from_the_minute_before_the_clock_began_is_refused() -> None:
    """Found by the fuzz harness: in the first minute of the stack's clock, an ACK whose
    top five bits name the counter before 0 made the check hash a negative counter
    (and raise). It is simply not a cookie."""
    peer = cookie_peer()
    peer.at(10.0).syn()
    check_refused(peer, ack=0xFFFFFFFF)


def test_a_timestamp_echo_from_the_future_is_refused() -> None:
    peer = cookie_peer()
    syn_ack = peer.syn().only
    assert syn_ack.ts is not None
    future = (syn_ack.ts[0] + 10_000) & MASK
    check_refused(peer, options=[("Timestamp", (peer.tsval(), future))])


@pytest.mark.parametrize(
    ("config", "bits"), [({"tcp_sack": False}, 0x10), ({"tcp_window_scaling": False}, 0x07)], ids=["sack", "wscale"]
)
def test_option_bits_for_options_we_turned_off_are_refused(config: dict[str, bool], bits: int) -> None:
    """The SYN offered SACK and window scaling, the stack turned them off, so the
    SYN-ACK said no and its TSval says none: an echo that says otherwise is forged."""
    peer = cookie_peer(**config)
    syn_ack = peer.syn().only
    assert syn_ack.ts is not None and not syn_ack.sack_permitted if "tcp_sack" in config else syn_ack.wscale is None
    assert syn_ack.ts is not None
    honest = syn_ack.ts[0]
    forged = (honest & ~0x1F) | (honest & 0x1F & ~(0x10 if bits == 0x10 else 0x0F)) | bits
    check_refused(peer, options=[("Timestamp", (peer.tsval(), forged))])
    assert peer.send("A", options=[("Timestamp", (peer.tsval(), honest))]).events == [FlowOpened(peer.flow)]


def test_a_cookie_expires_within_two_minutes() -> None:
    peer = cookie_peer()
    peer.at(59.0)
    syn_ack = peer.syn().only
    other = Peer(peer.stack, port=41000)
    # Cookies stay in use (others are being sent), but this one is too old by t=120.
    other.at(100.0).syn()
    peer.at(120.5)
    check_refused(peer, ack=(syn_ack.seq + 1) & MASK)


def test_a_cookie_is_good_into_the_next_minute() -> None:
    peer = cookie_peer()
    peer.at(59.0)
    peer.syn()
    assert peer.at(119.5).send("A").events == [FlowOpened(peer.flow)]


def test_acks_are_not_checked_as_cookies_when_none_was_sent_lately() -> None:
    peer = cookie_peer()
    syn_ack = peer.syn().only
    peer.at(121.0)
    result = peer.send("A", ack=(syn_ack.seq + 1) & MASK)
    assert result.only.flags == "R"
    assert peer.stack.stats.tcp_syn_cookies_failed == 0
    assert peer.stack.stats.drops[DropReason.TCP_NO_CONNECTION] == 1


def test_cookie_acks_past_max_tcp_flows_are_reset() -> None:
    stack = make_stack(tcp_syn_cookie_threshold=0, max_tcp_flows=1)
    first, second = Peer(stack), Peer(stack, port=40001)
    first.syn()
    second.syn()
    assert first.send("A").events == [FlowOpened(first.flow)]
    refused = second.send("A")
    assert refused.events == [] and refused.only.flags == "R"
    assert stack.stats.drops[DropReason.TCP_FLOW_LIMIT] == 1


# -- manual accept ----------------------------------------------------------------------------


def test_manual_accept_never_answers_with_a_cookie() -> None:
    """With ``accept="manual"`` the application must see each SYN before anything is
    sent, and its refusal must reach the client as a refused connect, not as a reset
    of a connection the client already believes open. A cookie would complete the
    handshake first; so under manual accept every SYN is a ``FlowRequested`` and the
    half-open cap (oldest out) bounds the memory."""
    stack = make_stack(accept="manual", tcp_syn_cookie_threshold=0, max_tcp_half_open=2)
    peers = [Peer(stack, port=40000 + n) for n in range(3)]
    assert peers[0].syn().events == [FlowRequested(peers[0].flow)]
    assert peers[1].syn().events == [FlowRequested(peers[1].flow)]
    third = peers[2].syn()
    # The oldest request makes room; the application hears it is gone.
    assert third.events == [FlowClosed(peers[0].flow, CloseReason.EVICTED), FlowRequested(peers[2].flow)]
    assert third.segments == []
    assert stack.stats.tcp_syn_cookies_sent == 0
    assert stack.stats.tcp_half_open_evicted == 1
    assert stack.tcp_states() == {"AWAITING_ACCEPT": 2}
    # The survivors are served as usual.
    accepted = peers[2].collect(stack.accept(peers[2].flow, 0.0))
    assert accepted.only.flags == "SA"
    assert peers[2].send("A").events == [FlowOpened(peers[2].flow)]


# -- back to back, and under a flood ------------------------------------------------------------

CLIENT = Flow(Proto.TCP, ip_address("192.0.2.10"), 40000, ip_address("203.0.113.80"), 80)


@pytest.mark.parametrize(
    "client_config",
    [
        Config(secret=b"client-secret-00"),
        Config(secret=b"client-secret-00", tcp_timestamps=False),
        Config(secret=b"client-secret-00", tcp_sack=False, tcp_window_scaling=False),
    ],
    ids=["every-option", "no-timestamps", "timestamps-only"],
)
def test_transfer_both_ways_on_a_cookie_connection(client_config: Config) -> None:
    client = Stack(client_config)
    server = Stack(Config(secret=b"server-secret-00", tcp_syn_cookie_threshold=0))
    link = Link(client, server, seed=7)
    rng = random.Random(7)
    exchange = Exchange(link, {"a": rng.randbytes(300_000), "b": rng.randbytes(200_000)})
    link.call("a", client.connect(CLIENT, 0.0))
    link.run(lambda: exchange.done, limit=600.0)
    assert server.stats.tcp_syn_cookies_accepted == 1
    assert exchange.intact()
    assert exchange.closed == {"a": CloseReason.CLOSED, "b": CloseReason.CLOSED}


def test_a_client_gets_through_a_flood_of_spoofed_syns_in_bounded_memory() -> None:
    """Spoofed SYNs (their SYN-ACKs go nowhere) arrive between every packet of a real
    transfer. The stack holds at most ``tcp_syn_cookie_threshold`` half-open
    connections whatever the flood, and the client's connection, opened by a cookie,
    carries its data both ways."""
    threshold = 64
    server = Stack(Config(secret=b"server-secret-00", tcp_syn_cookie_threshold=threshold))
    client = Stack(Config(secret=b"client-secret-00"))
    flood = spoofed_syns(6000, seed=1, dst="203.0.113.80", dport=80)
    link = Link(client, server, seed=1)
    exchange = Exchange(link, {"a": b"q" * 50_000, "b": b"r" * 80_000})

    def spoof(count: int) -> None:
        for packet in (next(flood, None) for _ in range(count)):
            if packet is not None:
                server.l3_rx(packet, link.now)  # the answers go to the spoofed sources

    spoof(1000)  # the flood is on before the client comes
    link.call("a", client.connect(CLIENT, link.now))
    while not exchange.done:
        spoof(20)
        assert link.step(), "the exchange stalled"
        usage = server.usage()
        assert usage.tcp_half_open <= threshold
        assert usage.tcp_flows <= threshold + 1
        assert usage.timers <= 2 * usage.tcp_flows + 1024
    spoof(6000)
    assert exchange.intact()
    assert server.stats.tcp_syn_cookies_accepted == 1
    assert server.stats.tcp_syn_cookies_sent == 6000 - threshold + 1
    # The half-open ones time out; nothing else is left.
    link.run(limit=1000.0)
    assert server.usage().tcp_flows == 0 and server.usage().tcp_half_open == 0
