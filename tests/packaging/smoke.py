"""A smoke test of the installed distributions, run by the Python of a fresh virtual
environment that has only the built wheels (and their requirements) in it: the import
surface, the callback adapter, one echo over an in-memory link per driver, and the
pcap writer and reader. Prints ``smoke ok`` and the version."""

from __future__ import annotations

import sys
import tempfile
from ipaddress import ip_address
from pathlib import Path

import trio
import trio.testing

import l3l4
import l3l4_pcap
import l3l4_trio
import l3l4_tun
import l3l4_tun.cli
from l3l4 import CallbackStack, Config, DataReceived, Flow, Proto, Stack
from l3l4.apps import Echo


def check_import_surface() -> None:
    """Every package comes from the environment (not a source tree), exports what its
    ``__all__`` names, and has the one version."""
    for module in (l3l4, l3l4_tun, l3l4_pcap, l3l4_trio):
        assert Path(module.__file__ or "").is_relative_to(sys.prefix), module.__file__
        assert (Path(module.__file__ or "").parent / "py.typed").is_file(), module
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, (module.__name__, missing)
    assert l3l4_pcap.__version__ == l3l4_trio.__version__ == l3l4.__version__


class Wire:
    """The callback adapter's application: echoes every datagram, keeps packets sent."""

    def __init__(self) -> None:
        self.net: CallbackStack[bytearray] | None = None
        self.sent: list[bytearray] = []

    def l4_rx(self, flow: Flow, data: bytes | None) -> None:
        if data is not None and self.net is not None:
            self.net.l4_tx(flow, data, now=0.0)

    def l3_tx(self, packet: bytearray) -> None:
        self.sent.append(packet)

    def l3_tx_buffer(self, size: int) -> bytearray | None:
        return bytearray(size)

    def l3_tx_buffer_mut(self, buffer: bytearray) -> memoryview:
        return memoryview(buffer)


def check_callback_adapter() -> None:
    app = Wire()
    app.net = CallbackStack(app)
    peer = Stack()
    flow = Flow(Proto.UDP, ip_address("198.51.100.1"), 7777, ip_address("203.0.113.9"), 7)
    peer.connect(flow, now=0.0)
    [packet] = peer.l4_tx(flow, b"echo me", now=0.0).packets
    assert app.net.l3_rx(packet, now=0.0) == flow.reversed()
    [reply] = app.sent
    [event] = peer.l3_rx(reply, now=0.0).events
    assert isinstance(event, DataReceived) and event.data == b"echo me"


class Served:
    """The server's side for ``l3l4.apps.Echo``: its stack, and the packets it sends."""

    def __init__(self, stack: Stack[bytearray], wire: list[tuple[str, bytearray]]) -> None:
        self.stack = stack
        self.wire = wire
        self.app = Echo()

    def _out(self, out: l3l4.Output[bytearray]) -> None:
        self.wire += [("client", packet) for packet in out.packets]
        for event in out.events:
            self.app.on_event(self, event)

    def receive(self, packet: bytearray) -> None:
        self._out(self.stack.l3_rx(packet, 0.0))

    def send(self, flow: Flow, data: bytes | bytearray | memoryview) -> int:
        out = self.stack.l4_tx(flow, data, 0.0)
        self._out(out)
        return out.accepted

    def close(self, flow: Flow) -> None:
        self._out(self.stack.close(flow, 0.0))

    def accept(self, flow: Flow) -> None:
        self._out(self.stack.accept(flow, 0.0))

    def consumed(self, flow: Flow, count: int) -> None:
        self._out(self.stack.consumed(flow, count, 0.0))


def check_core_tcp_echo(capture: Path) -> None:
    """A TCP echo between two stacks back to back, every packet recorded to a pcapng
    file by ``l3l4_pcap.Recorder`` and read back."""
    client = Stack(Config(secret=b"smoke-client-000"))
    wire: list[tuple[str, bytearray]] = []
    server = Served(Stack(Config(secret=b"smoke-server-000")), wire)
    flow = Flow(Proto.TCP, ip_address("192.0.2.1"), 40000, ip_address("203.0.113.80"), 7)
    recorder = l3l4_pcap.Recorder(capture)
    got = bytearray()
    wire += [("server", p) for p in client.connect(flow, 0.0).packets]
    sent = False
    while wire:
        side, packet = wire.pop(0)
        recorder.record(packet, side == "client", 0.0)
        if side == "server":
            server.receive(packet)
            continue
        out = client.l3_rx(packet, 0.0)
        wire += [("server", p) for p in out.packets]
        got += b"".join(e.data for e in out.events if isinstance(e, DataReceived))
        if not sent and client.flows():
            sent = True
            wire += [("server", p) for p in client.l4_tx(flow, b"hello, any address", 0.0).packets]
    recorder.close()
    assert bytes(got) == b"hello, any address", got
    packets = list(l3l4_pcap.read_packets(capture))
    assert len(packets) == recorder.statistics().written >= 5


def check_trio_echo() -> None:
    async def echo(stream: l3l4_trio.TcpStream) -> None:
        while data := await stream.receive_some():
            await stream.send_all(data)

    async def main() -> None:
        client_link, server_link = l3l4_trio.memory_link_pair(delay=0.005)
        async with l3l4_trio.open_stack(server_link) as server, l3l4_trio.open_stack(client_link) as client:
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve_tcp, echo)
                stream = await client.connect(("2001:db8::7", 0), ("2001:db8::80", 80))
                await stream.send_all(b"hello over trio")
                await stream.send_eof()
                reply = b""
                while chunk := await stream.receive_some():
                    reply += chunk
                assert reply == b"hello over trio", reply
                await stream.aclose()
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def check_tun_without_a_device() -> None:
    """Without root nothing opens a device; the parser and apps still load."""
    parser = l3l4_tun.cli.build_parser()
    args = parser.parse_args(["proxy", "--route", "203.0.113.0/24", "--upstream", "[2001:db8::1]:80"])
    assert args.upstream == ("2001:db8::1", 80)


if __name__ == "__main__":
    check_import_surface()
    check_callback_adapter()
    with tempfile.TemporaryDirectory() as directory:
        check_core_tcp_echo(Path(directory) / "echo.pcapng")
    check_trio_echo()
    check_tun_without_a_device()
    print("smoke ok", l3l4.__version__)
