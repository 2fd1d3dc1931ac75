"""UDP flows as trio channels: echo to any address over IPv4 and IPv6, fragments, the
queue limit, idle expiry and ICMP errors."""

from __future__ import annotations

import pytest
import trio
from support.trio_pair import CLIENT_IP, SECRET_A, SECRET_B, network_pair, run

from l3l4 import CloseReason, Config, IcmpErrorKind
from l3l4_trio import UdpSocket


async def echo(sock: UdpSocket) -> None:
    async for datagram in sock:
        await sock.send(datagram)


@pytest.mark.parametrize(
    ("local", "remote"),
    [((CLIENT_IP, 0), ("203.0.113.53", 53)), (("2001:db8::7", 0), ("2001:db8:53::1", 5353))],
    ids=["ipv4", "ipv6"],
)
def test_udp_echo_to_any_address(local: tuple[str, int], remote: tuple[str, int]) -> None:
    async def main() -> None:
        async with network_pair() as pair:
            async with trio.open_nursery() as nursery:

                async def serve() -> None:
                    async for sock in pair.b.incoming_udp():
                        nursery.start_soon(echo, sock)

                nursery.start_soon(serve)
                sock = pair.a.open_udp(local, remote)
                assert sock.flow.local_port >= 49152
                for size in (1, 1000, 5000, 60000):  # the big ones go as IP fragments
                    message = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
                    await sock.send(message)
                    with trio.fail_after(1.0):
                        assert await sock.receive() == message
                nursery.cancel_scope.cancel()
            assert pair.b.statistics().udp_sockets == 1

    run(main)


def test_accept_udp_gets_the_first_datagram_and_the_flow() -> None:
    async def main() -> None:
        async with network_pair() as pair:
            sock = pair.a.open_udp((CLIENT_IP, 40000), ("192.0.2.99", 123))
            await sock.send(b"first")
            await sock.send(b"second")
            served = await pair.b.accept_udp()
            assert served.flow == sock.flow.reversed()
            assert await served.receive() == b"first"
            assert served.receive_nowait() == b"second"
            with pytest.raises(trio.WouldBlock):
                served.receive_nowait()
            await served.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await served.receive()
            assert served.close_reason is CloseReason.CLOSED

    run(main)


def test_a_full_queue_drops_datagrams() -> None:
    async def main() -> None:
        from l3l4_trio import memory_link_pair, open_stack

        link_a, link_b = memory_link_pair()
        async with open_stack(link_a) as a, open_stack(link_b, udp_queue=3) as b:
            sock = a.open_udp((CLIENT_IP, 0), ("198.18.0.1", 9))
            for n in range(5):
                await sock.send(b"%d" % n)
            served = await b.accept_udp()
            await trio.sleep(0.1)
            assert [served.receive_nowait() for _ in range(3)] == [b"0", b"1", b"2"]
            assert served.dropped == 2

    run(main)


def test_an_idle_flow_ends_the_channel() -> None:
    config = Config(secret=SECRET_B, udp_idle_timeout=30.0)

    async def main() -> None:
        async with network_pair(Config(secret=SECRET_A, udp_idle_timeout=600.0), config) as pair:
            sock = pair.a.open_udp((CLIENT_IP, 0), ("198.51.100.200", 7))
            await sock.send(b"hello")
            served = await pair.b.accept_udp()
            start = trio.current_time()
            received = [datagram async for datagram in served]  # ends at the idle timeout
            assert received == [b"hello"]
            assert trio.current_time() - start == pytest.approx(30.0, abs=0.1)
            assert served.close_reason is CloseReason.IDLE
            with pytest.raises(trio.BrokenResourceError):
                await served.send(b"too late")

    run(main)


def test_icmp_errors_reach_the_socket() -> None:
    """An ICMP error quoting a flow is kept on its socket. Here the peer gives up
    reassembling a datagram whose last fragment was lost, and says so (RFC 792 time
    exceeded, code 1)."""

    async def main() -> None:
        async with network_pair(Config(secret=SECRET_A), Config(secret=SECRET_B, fragment_timeout=5.0)) as pair:
            sock = pair.a.open_udp((CLIENT_IP, 0), ("203.0.113.7", 9999))
            # A fragmented datagram, built by the stack and put on the wire by hand
            # without its last fragment.
            packets = pair.a.stack.l4_tx(sock.flow, bytes(3000), trio.current_time()).packets
            await pair.link_a.send_packets(packets[:-1])
            await trio.sleep(10.0)
            error = sock.last_error
            assert error is not None and error.kind is IcmpErrorKind.TIME_EXCEEDED

    run(main)
