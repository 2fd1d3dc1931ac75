"""Manual accept: SYNs wait as TcpRequests until the application accepts or rejects
them, so a transparent proxy can connect upstream first."""

from __future__ import annotations

import pytest
import trio
from support.trio_pair import CLIENT_IP, SECRET_B, SERVER_IP, network_pair, run

from l3l4 import Config
from l3l4_trio import ConnectionRefused, ConnectTimeout, TcpRequest

MANUAL = Config(secret=SECRET_B, accept="manual")


def test_accept_a_request_then_talk() -> None:
    async def main() -> None:
        async with network_pair(None, MANUAL) as pair:
            async with trio.open_nursery() as nursery:

                async def proxy() -> None:
                    request = await pair.b.accept_request()
                    # Nothing has gone back to the client yet: it is still in SYN-SENT.
                    assert pair.a.stack.tcp_states() == {"SYN_SENT": 1}
                    assert request.flow.local_ip.exploded == SERVER_IP and request.flow.local_port == 443
                    stream = await request.accept()
                    assert request.answered
                    with pytest.raises(RuntimeError):
                        request.reject()
                    await stream.send_all(b"upstream said yes")
                    await stream.aclose()

                nursery.start_soon(proxy)
                client = await pair.a.connect((CLIENT_IP, 0), (SERVER_IP, 443))
                assert await client.receive_some() == b"upstream said yes"
                assert await client.receive_some() == b""
                await client.aclose()
            # Accepted requests never show up in accept().
            assert pair.b.statistics().pending_accepts == 0

    run(main)


def test_requests_iterate_and_reject_some() -> None:
    async def main() -> None:
        async with network_pair(None, MANUAL) as pair:
            async with trio.open_nursery() as nursery:

                async def gatekeeper() -> None:
                    async for request in pair.b.requests():
                        if request.flow.local_port == 22:
                            request.reject()
                        else:
                            nursery.start_soon(answer, request)

                async def answer(request: TcpRequest) -> None:
                    stream = await request.accept()
                    await stream.send_all(b"welcome")
                    await stream.aclose()

                nursery.start_soon(gatekeeper)
                with pytest.raises(ConnectionRefused):
                    await pair.a.connect((CLIENT_IP, 0), (SERVER_IP, 22))
                client = await pair.a.connect((CLIENT_IP, 0), (SERVER_IP, 80))
                assert await client.receive_some() == b"welcome"
                nursery.cancel_scope.cancel()

    run(main)


def test_a_request_left_too_long_cannot_be_accepted() -> None:
    config = Config(secret=SECRET_B, accept="manual", tcp_halfopen_idle_timeout=5.0)

    async def main() -> None:
        async with network_pair(Config(secret=b"trio-test-secret-a", tcp_syn_retries=1), config) as pair:
            async with trio.open_nursery() as nursery:

                async def slow_client() -> None:
                    with pytest.raises(ConnectTimeout):
                        await pair.a.connect((CLIENT_IP, 0), (SERVER_IP, 80))

                nursery.start_soon(slow_client)
                request = await pair.b.accept_request()
                await trio.sleep(10.0)  # past the half-open timeout: the stack forgot it
                with pytest.raises(ConnectTimeout):
                    await request.accept()

    run(main)


def test_requests_beyond_the_backlog_are_rejected() -> None:
    async def main() -> None:
        from l3l4_trio import memory_link_pair, open_stack

        link_a, link_b = memory_link_pair()
        async with open_stack(link_a) as a, open_stack(link_b, MANUAL, backlog=2) as b:
            outcomes: list[str] = []

            async def client(port: int) -> None:
                try:
                    await a.connect((CLIENT_IP, 0), (SERVER_IP, port))
                    outcomes.append("accepted")
                except ConnectionRefused:
                    outcomes.append("refused")

            async with trio.open_nursery() as nursery:
                for port in (1, 2, 3):
                    nursery.start_soon(client, port)
                await trio.sleep(0.1)
                assert b.statistics().pending_requests == 2
                assert b.statistics().backlog_overflows == 1
                for _ in range(2):
                    request = await b.accept_request()
                    await request.accept()
            assert sorted(outcomes) == ["accepted", "accepted", "refused"]

    run(main)
