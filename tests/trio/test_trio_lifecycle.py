"""How flows and networks end: leaving open_stack, a failed link, refused and timed-out
connects, and the resets RFC 1122 asks for when received data is thrown away."""

from __future__ import annotations

import errno

import pytest
import trio
from support.trio_pair import CLIENT_IP, SECRET_A, SECRET_B, SERVER_IP, network_pair, run, stream_pair

from l3l4 import CloseReason, Config
from l3l4_trio import (
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    Network,
    TcpStream,
    memory_link_pair,
    open_stack,
)


def test_leaving_open_stack_aborts_flows_and_peers_see_broken_streams() -> None:
    async def main() -> None:
        link_a, link_b = memory_link_pair(delay=0.002)
        async with open_stack(link_a, Config(secret=SECRET_A)) as a:
            async with open_stack(link_b, Config(secret=SECRET_B)) as b:
                client, server = await stream_pair(a, b)
                udp = b.open_udp((SERVER_IP, 5353), (CLIENT_IP, 5353))
                await client.send_all(b"unread")
                await trio.sleep(0.1)
            # b is closed: its own streams and sockets are broken (bytes that had
            # arrived are still handed over first)...
            assert await server.receive_some() == b"unread"
            with pytest.raises(trio.BrokenResourceError, match="network was closed"):
                await server.receive_some()
            with pytest.raises(trio.BrokenResourceError):
                await server.send_all(b"x")
            with pytest.raises(trio.BrokenResourceError):
                await udp.send(b"x")
            with pytest.raises(trio.ClosedResourceError):
                await b.accept()
            with pytest.raises(trio.ClosedResourceError):
                await b.connect((SERVER_IP, 0), (CLIENT_IP, 80))
            # ...and the peer got a reset before open_stack returned.
            with pytest.raises(trio.BrokenResourceError, match="reset"):
                await client.receive_some()
            assert client.close_reason is CloseReason.RESET
            assert a.stack.flows() == []
            await server.aclose()  # closing a broken stream is fine

    run(main)


def test_incoming_ends_when_the_network_closes() -> None:
    async def main() -> None:
        link_a, link_b = memory_link_pair()
        accepted: list[TcpStream] = []

        async def collect(network: Network) -> None:
            async for stream in network.incoming():
                accepted.append(stream)

        async with open_stack(link_a, Config(secret=SECRET_A)) as a:
            async with trio.open_nursery() as nursery:
                async with open_stack(link_b, Config(secret=SECRET_B)) as b:
                    nursery.start_soon(collect, b)
                    await a.connect((CLIENT_IP, 0), (SERVER_IP, 80))
                    await a.connect(("2001:db8::7", 0), ("2001:db8::80", 80))
                    await trio.sleep(0.1)
                # b is closed: the loop in collect() has ended, so the nursery exits.
            assert [stream.flow.local_port for stream in accepted] == [80, 80]
            assert accepted[1].flow.local_ip.version == 6

    run(main)


def test_an_exception_from_the_block_comes_out_unwrapped() -> None:
    async def main() -> None:
        link_a, _ = memory_link_pair()
        with pytest.raises(KeyError, match="mine"):
            async with open_stack(link_a):
                raise KeyError("mine")

    run(main)


def test_an_outer_cancellation_comes_out_of_the_block() -> None:
    async def main() -> None:
        link, _ = memory_link_pair()
        after_the_block = False
        with trio.move_on_after(1.0) as scope:
            async with open_stack(link):
                await trio.sleep(10.0)
            after_the_block = True
        assert scope.cancelled_caught and not after_the_block

    run(main)


def test_closing_the_network_ends_a_pending_connect() -> None:
    async def main() -> None:
        link, _silent = memory_link_pair()
        async with trio.open_nursery() as nursery:
            async with open_stack(link) as net:

                async def connecting() -> None:
                    with pytest.raises(trio.ClosedResourceError):
                        await net.connect((CLIENT_IP, 0), (SERVER_IP, 80))

                nursery.start_soon(connecting)
                await trio.sleep(0.5)

    run(main)


def test_a_failed_link_breaks_the_network() -> None:
    async def main() -> None:
        async with network_pair() as pair:
            client, server = await stream_pair(pair.a, pair.b)
            await pair.link_b.aclose()  # b's end of the wire is gone
            await trio.sleep(0.1)
            for stream in (client, server):
                with pytest.raises(trio.BrokenResourceError, match="link"):
                    await stream.receive_some()
            with pytest.raises(trio.BrokenResourceError, match="link"):
                await pair.a.accept()

    run(main)


def test_connect_refused_raises_connection_refused() -> None:
    config_b = Config(secret=SECRET_B, accept="manual")

    async def main() -> None:
        async with network_pair(None, config_b) as pair:

            async def refuse() -> None:
                (await pair.b.accept_request()).reject()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(refuse)
                with pytest.raises(ConnectionRefused) as caught:
                    await pair.a.connect((CLIENT_IP, 40000), (SERVER_IP, 443))
            error = caught.value
            assert isinstance(error, ConnectionRefusedError) and isinstance(error, ConnectError)
            assert error.errno == errno.ECONNREFUSED and error.reason is CloseReason.REFUSED
            assert "198.51.100.7:40000 -> 203.0.113.80:443" in str(error)
            assert pair.a.stack.flows() == []

    run(main)


def test_connect_to_nobody_times_out() -> None:
    async def main() -> None:
        link, _silent = memory_link_pair()  # nothing runs on the other end
        async with open_stack(link, Config(secret=SECRET_A, tcp_syn_retries=2)) as net:
            start = trio.current_time()
            with pytest.raises(ConnectTimeout) as caught:
                await net.connect(("2001:db8::1", 0), ("2001:db8:ffff::9", 80))
            assert isinstance(caught.value, TimeoutError)
            assert trio.current_time() - start > 2.0  # SYN, then two retries with backoff

    run(main)


def test_cancelled_connect_abandons_the_handshake() -> None:
    async def main() -> None:
        link, _silent = memory_link_pair()
        async with open_stack(link, Config(secret=SECRET_A)) as net:
            with trio.move_on_after(0.5):
                await net.connect((CLIENT_IP, 0), (SERVER_IP, 80))
            assert net.stack.flows() == []

    run(main)


def test_closing_with_unread_data_resets_the_connection() -> None:
    """RFC 1122 §4.2.2.13: a CLOSE with received data still unread sends a reset."""

    async def main() -> None:
        async with network_pair() as pair:
            client, server = await stream_pair(pair.a, pair.b)
            await client.send_all(b"you will not read this")
            await trio.sleep(0.1)
            await server.aclose()
            with pytest.raises(trio.BrokenResourceError, match="reset"):
                await client.receive_some()

    run(main)


def test_data_after_close_is_answered_with_a_reset() -> None:
    """RFC 1122 §4.2.2.13: data arriving after CLOSE is lost, and the peer is told."""

    async def main() -> None:
        async with network_pair() as pair:
            client, server = await stream_pair(pair.a, pair.b)
            await server.aclose()  # nothing unread: a FIN
            assert await client.receive_some() == b""
            await client.send_all(b"too late")  # allowed: half-closed
            await trio.sleep(0.1)
            with pytest.raises(trio.BrokenResourceError, match="reset"):
                await client.send_all(b"more")
            assert pair.a.stack.flows() == [] and pair.b.stack.flows() == []

    run(main)


def test_graceful_close_both_ways_ends_clean() -> None:
    async def main() -> None:
        async with network_pair() as pair:
            client, server = await stream_pair(pair.a, pair.b)
            await client.send_all(b"bye")
            await client.aclose()
            await client.aclose()  # idempotent
            assert await server.receive_some() == b"bye"
            assert await server.receive_some() == b""
            await server.aclose()
            await trio.sleep(0.1)
            assert client.close_reason is CloseReason.CLOSED
            assert server.close_reason is CloseReason.CLOSED
            with pytest.raises(trio.ClosedResourceError):
                await client.receive_some()
            assert pair.a.stack.tcp_states() == {"TIME_WAIT": 1}

    run(main)
