"""Both directions of one connection against closed windows: the side probing its
peer's zero window still gets its ACKs through (a pure ACK must not carry the probe's
byte, which the peer dropped, or it lands outside the peer's closed window: RFC 9293
§3.10.7.4), and two probing sides do not trade ACKs forever."""

from __future__ import annotations

from ipaddress import ip_address

from support.link import Link

from l3l4 import Config, Flow, Proto, Stack

BUFFER = 16384
FLOW = Flow(Proto.TCP, ip_address("198.51.100.7"), 40000, ip_address("203.0.113.80"), 80)


def clogged_link() -> Link:
    """``a`` has filled ``b``'s window (``b`` never consumes) and is probing it."""
    a, b = (
        Stack(Config(secret=secret, tcp_send_buffer=BUFFER, tcp_receive_buffer=BUFFER, rx_manual_consume=True))
        for secret in (b"zero-window-a-00", b"zero-window-b-00")
    )
    link = Link(a, b)
    link.call("a", a.connect(FLOW, 0.0))
    link.run(limit=1.0)
    for _ in range(3):
        link.call("a", a.l4_tx(FLOW, bytes(65536), link.now))
        link.run(limit=2.0)
    assert b.flow_info(FLOW.reversed()).rcv_wnd == 0
    assert a.flow_info(FLOW).snd_wnd == 0
    return link


def test_data_toward_the_prober_is_acknowledged() -> None:
    link = clogged_link()
    b = link.b
    link.call("b", b.l4_tx(FLOW.reversed(), bytes(3000), link.now))
    link.run(limit=2.0)
    info = b.flow_info(FLOW.reversed())
    assert info.bytes_queued == 0, "a received the data; its ACKs must reach b"
    assert b.stats.tcp_retransmits == 0


def test_two_closed_windows_leave_the_wire_quiet() -> None:
    link = clogged_link()
    a, b = link.a, link.b
    link.call("b", b.l4_tx(FLOW.reversed(), bytes(65536), link.now))
    link.run(limit=5.0)
    assert a.flow_info(FLOW).rcv_wnd == 0 and b.flow_info(FLOW.reversed()).rcv_wnd == 0
    sent = a.stats.tx_packets + b.stats.tx_packets
    link.run(limit=60.0)
    # Only zero-window probes and their answers, backing off: a handful, not a storm.
    assert a.stats.tx_packets + b.stats.tx_packets - sent < 20
    assert a.tcp_states() == {"ESTABLISHED": 1} and b.tcp_states() == {"ESTABLISHED": 1}
