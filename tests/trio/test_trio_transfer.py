"""Bulk TCP through two stacks under trio: 4 MiB each way at once, over a memory link
with seeded loss and reordering, checked by hash; and an echo server with serve_tcp."""

from __future__ import annotations

import hashlib
import random

import trio
from l3l4_trio import TcpStream
from support.trio_pair import (
    CLIENT_IP,
    SERVER_IP,
    network_pair,
    read_to_eof,
    run,
    send_then_eof,
    stream_pair,
)

SIZE = 4 * 1024 * 1024


def test_four_mib_each_way_under_loss_and_reordering() -> None:
    up = random.Random(1).randbytes(SIZE)
    down = random.Random(2).randbytes(SIZE)

    async def main() -> None:
        async with network_pair(loss=0.01, delay=0.01, jitter=0.003, seed=5) as pair:
            client, server = await stream_pair(pair.a, pair.b)
            got_up: list[bytes] = []
            got_down: list[bytes] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_then_eof, client, up, 10)
                nursery.start_soon(send_then_eof, server, down, 11)
                nursery.start_soon(read_to_eof, server, got_up, 12)
                nursery.start_soon(read_to_eof, client, got_down, 13)
            assert hashlib.sha256(b"".join(got_up)).digest() == hashlib.sha256(up).digest()
            assert hashlib.sha256(b"".join(got_down)).digest() == hashlib.sha256(down).digest()
            # The link really lost packets, and TCP really recovered them.
            assert pair.link_a.statistics().lost > 10 and pair.link_b.statistics().lost > 10
            assert pair.a.stack.stats.tcp_retransmits > 0 and pair.b.stack.stats.tcp_retransmits > 0
            await client.aclose()
            await server.aclose()
            await trio.sleep(1.0)
            # Both FINs are through: no flow is open (TIME_WAIT is not listed).
            assert pair.a.stack.flows() == [] and pair.b.stack.flows() == []

    run(main)


def test_serve_tcp_echoes_for_many_clients_on_any_address() -> None:
    async def echo(stream: TcpStream) -> None:
        while data := await stream.receive_some():
            await stream.send_all(data)

    async def main() -> None:
        async with network_pair() as pair:
            async with trio.open_nursery() as nursery:
                assert await nursery.start(pair.b.serve_tcp, echo) is pair.b
                results: dict[str, bytes] = {}

                async def client(target: str, port: int) -> None:
                    stream = await pair.a.connect((CLIENT_IP, 0), (target, port))
                    message = f"hello {target}:{port}".encode() * 1000
                    await stream.send_all(message)
                    await stream.send_eof()
                    received = bytearray()
                    while chunk := await stream.receive_some():
                        received += chunk
                    results[f"{target}:{port}"] = bytes(received)
                    await stream.aclose()

                targets = [(SERVER_IP, 80), ("192.0.2.44", 443), ("198.18.3.4", 8080)]
                async with trio.open_nursery() as clients:
                    for target, port in targets:
                        clients.start_soon(client, target, port)
                nursery.cancel_scope.cancel()
            assert results == {f"{t}:{p}": f"hello {t}:{p}".encode() * 1000 for t, p in targets}
            await trio.sleep(1.0)
            # serve_tcp closed each stream after its handler returned.
            assert pair.b.stack.flows() == []

    run(main)
