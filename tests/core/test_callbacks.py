"""The l3l4kit callback adapter: packets written into lent buffers, data to callbacks."""

from __future__ import annotations

from ipaddress import ip_address

from scapy.all import IP, UDP, IPv6, Raw

from l3l4 import CallbackStack, Config, DropReason, Flow, Proto


class Slot:
    """A stand-in for a device ring slot: not bytes-like itself."""

    def __init__(self, size: int) -> None:
        self.memory = bytearray(size)


class EchoApp:
    """Echoes every datagram back, from inside the l4_rx callback."""

    def __init__(self, pool_size: int = 8) -> None:
        self.stack: CallbackStack[Slot] | None = None
        self.free = pool_size
        self.lent: list[Slot] = []
        self.sent: list[Slot] = []
        self.received: list[tuple[Flow, bytes | None]] = []

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        self.received.append((flow, data))
        if data is not None and self.stack is not None:
            self.stack.l4_tx(flow, data[::-1], 1.0)

    def l3_tx(self, packet: Slot) -> None:
        self.sent.append(packet)

    def l3_tx_buffer(self, size: int) -> Slot | None:
        if not self.free:
            return None
        self.free -= 1
        slot = Slot(size)
        self.lent.append(slot)
        return slot

    def l3_tx_buffer_mut(self, buffer: Slot) -> memoryview:
        return memoryview(buffer.memory)


def test_echo_through_callbacks_writes_into_lent_buffers() -> None:
    app = EchoApp()
    stack = app.stack = CallbackStack(app, Config(secret=b"0123456789abcdef"))
    packet = IP(src="192.0.2.1", dst="203.0.113.1") / UDP(sport=1000, dport=7) / Raw(b"abc")
    flow = stack.l3_rx(bytes(packet), 0.0)
    assert flow == Flow(Proto.UDP, ip_address("203.0.113.1"), 7, ip_address("192.0.2.1"), 1000)
    assert app.received == [(flow, b"abc")]
    [slot] = app.sent
    assert slot is app.lent[0]  # the packet went out in the very buffer that was lent
    reply = IP(bytes(slot.memory))
    assert reply[UDP].load == b"cba" and (reply.src, reply.dst) == ("203.0.113.1", "192.0.2.1")


def test_l4_rx_none_when_a_flow_ends() -> None:
    app = EchoApp()
    stack = CallbackStack(app, Config(udp_idle_timeout=5.0))
    packet = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2) / Raw(b"x")
    flow = stack.l3_rx(bytes(packet), 0.0)
    assert flow is not None
    assert stack.l4_poll(1.0) == 5.0
    assert stack.l4_poll(5.0) is None
    assert app.received == [(flow, b"x"), (flow, None)]


def test_calls_mirror_the_stack() -> None:
    app = EchoApp(pool_size=1)
    stack = CallbackStack(app)
    flow = Flow(Proto.UDP, ip_address("198.51.100.1"), 53, ip_address("198.51.100.2"), 53)
    stack.connect(flow, 0.0)
    assert stack.l4_tx(flow, b"one", 0.0) == 3
    assert stack.l4_tx(flow, b"two", 0.0) == 0  # the pool is empty now
    assert stack.stack.stats.drops[DropReason.TX_BUFFER_EXHAUSTED] == 1
    stack.close(flow, 0.0)
    assert app.received == [(flow, None)]
    assert stack.l3_rx(b"\x45garbage", 0.0) is None
