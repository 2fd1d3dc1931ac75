"""``l3l4.apps.Echo`` against a client that sends and never reads: with manual consume
(``Echo.config``) the server's window closes once its send buffer and then its receive
window are full, so what Echo holds stays bounded (RFC 9293 §3.8.6: the receive window
is the receiver's flow control); once the client reads, every byte comes back."""

from __future__ import annotations

from ipaddress import ip_address

from support.link import Link, Side

from l3l4 import Config, DataReceived, Event, Flow, Output, Proto, Stack, Writable
from l3l4.apps import Echo

FLOW = Flow(Proto.TCP, ip_address("198.51.100.7"), 40000, ip_address("203.0.113.80"), 7)
BUFFER = 64 * 1024
TOTAL = 4 * 1024 * 1024
"""What the client tries to send: far more than every buffer on the way together."""


class Server:
    """The server side of the link as Echo's :class:`~l3l4.apps.Application`."""

    def __init__(self, link: Link) -> None:
        self.link = link

    @property
    def stack(self) -> Stack[bytearray]:
        return self.link.b

    def _out(self, out: Output[bytearray]) -> Output[bytearray]:
        self.link.call("b", out)
        return out

    def send(self, flow: Flow, data: bytes | bytearray | memoryview) -> int:
        return self._out(self.stack.l4_tx(flow, data, self.link.now)).accepted

    def close(self, flow: Flow) -> None:
        self._out(self.stack.close(flow, self.link.now))

    def accept(self, flow: Flow) -> None:
        self._out(self.stack.accept(flow, self.link.now))

    def consumed(self, flow: Flow, count: int) -> None:
        self._out(self.stack.consumed(flow, count, self.link.now))


class Client:
    """Sends ``TOTAL`` bytes as fast as the stack takes them; reads nothing (its stack
    consumes manually) until :meth:`read` starts it reading."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = bytearray()
        self.reading = False

    def push(self, link: Link) -> None:
        while self.sent < TOTAL:
            out = link.a.l4_tx(FLOW, bytes(min(TOTAL - self.sent, 65536)), link.now)
            self.sent += out.accepted
            link.call("a", out)
            if not out.accepted:
                return

    def read(self, link: Link) -> None:
        self.reading = True
        if self.received:
            link.call("a", link.a.consumed(FLOW, len(self.received), link.now))

    def on_event(self, event: Event, link: Link) -> None:
        if isinstance(event, DataReceived):
            self.received += event.data
            if self.reading:
                link.call("a", link.a.consumed(FLOW, len(event.data), link.now))
        elif isinstance(event, Writable):
            self.push(link)


def echo_link(server_config: Config) -> tuple[Link, Echo, Client]:
    client_stack = Stack(Config(secret=b"echo-client-0000", rx_manual_consume=True))
    link = Link(client_stack, Stack(server_config))
    echo, client, server = Echo(), Client(), Server(link)

    def handler(side: Side, event: Event, link: Link) -> None:
        if side == "b":
            echo.on_event(server, event)
        else:
            client.on_event(event, link)

    link.handler = handler
    link.call("a", client_stack.connect(FLOW, 0.0))
    link.run(limit=1.0)
    client.push(link)
    link.run(limit=30.0)
    return link, echo, client


def test_a_client_that_never_reads_closes_the_echo_window() -> None:
    config = Echo.config(Config(secret=b"echo-server-0000", tcp_send_buffer=BUFFER, tcp_receive_buffer=BUFFER))
    link, echo, client = echo_link(config)
    server_flow = FLOW.reversed()
    info = link.b.flow_info(server_flow)
    assert info.rcv_wnd == 0 and link.a.flow_info(FLOW).snd_wnd == 0  # the window closed
    assert len(echo.pending[server_flow]) <= BUFFER
    assert info.bytes_queued <= BUFFER
    assert client.sent < TOTAL  # the client was stopped, not buffered for

    # Once the client reads, everything it sent comes back.
    client.read(link)
    link.run(until=lambda: len(client.received) == TOTAL, limit=600.0)
    assert client.received == bytes(TOTAL)
    assert echo.bytes_echoed == TOTAL and not echo.pending.get(server_flow)


def test_without_manual_consume_echo_holds_what_arrives() -> None:
    """Why ``Echo.config`` matters: the stack alone reopens the window on delivery."""
    config = Config(secret=b"echo-server-0000", tcp_send_buffer=BUFFER, tcp_receive_buffer=BUFFER)
    _, echo, client = echo_link(config)
    assert client.sent == TOTAL
    assert len(echo.pending[FLOW.reversed()]) > 10 * BUFFER
