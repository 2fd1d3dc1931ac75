"""The l3l4kit callback adapter over TCP: data through ``l4_rx``, then ``None`` once."""

from __future__ import annotations

from ipaddress import ip_address

from l3l4 import CallbackStack, Config, Flow, Proto


class App:
    def __init__(self, name: str) -> None:
        self.name = name
        self.net: CallbackStack[bytearray] | None = None
        self.peer: App | None = None
        self.now = 0.0
        self.received: list[bytes | None] = []
        self.outbox: list[bytearray] = []

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        self.received.append(data)

    def l3_tx(self, packet: bytearray) -> None:
        self.outbox.append(packet)

    def l3_tx_buffer(self, size: int) -> bytearray | None:
        return bytearray(size)

    def l3_tx_buffer_mut(self, buffer: bytearray) -> memoryview:
        return memoryview(buffer)


def pump(a: App, b: App, until: float) -> None:
    """Move packets both ways and run timers until ``until``."""
    assert a.net is not None and b.net is not None
    now = a.now
    while now <= until:
        moved = True
        while moved:
            moved = False
            for src, dst in ((a, b), (b, a)):
                while src.outbox:
                    moved = True
                    assert dst.net is not None
                    dst.net.l3_rx(src.outbox.pop(0), now)
        deadlines = [d for d in (a.net.l4_poll(now), b.net.l4_poll(now)) if d is not None]
        if not deadlines or min(deadlines) > until:
            break
        now = max(now, min(deadlines))
    a.now = b.now = until


def test_tcp_through_callbacks() -> None:
    client, server = App("client"), App("server")
    client.net = CallbackStack(client, Config(secret=b"callback-client0"))
    server.net = CallbackStack(server, Config(secret=b"callback-server0"))
    flow = Flow(Proto.TCP, ip_address("198.51.100.9"), 33333, ip_address("203.0.113.1"), 8080)
    client.net.connect(flow, 0.0)
    pump(client, server, 1.0)
    assert client.net.l4_tx(flow, b"hello over tcp", 1.0) == 14
    pump(client, server, 2.0)
    assert server.received == [b"hello over tcp"]
    assert server.net.l3_rx(b"", 2.0) is None
    # The server's flow, as the callbacks would have reported it on the data.
    served = flow.reversed()
    assert server.net.l4_tx(served, b"and back", 2.0) == 8
    client.net.close(flow, 2.0)
    pump(client, server, 3.0)
    assert client.received == [b"and back"]
    # The server hears the end once: l4_rx(flow, None) on the FIN, nothing more at close.
    assert server.received == [b"hello over tcp", None]
    server.net.close(served, 3.0)
    pump(client, server, 200.0)
    assert client.received == [b"and back", None]
    assert server.received == [b"hello over tcp", None]
    assert client.net.stack.flows() == [] and server.net.stack.flows() == []
