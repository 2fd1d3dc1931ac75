"""Backpressure end to end: a reader that stops reading closes the TCP receive window,
the writer's send_all waits, and both resume when the reader does."""

from __future__ import annotations

import random

import trio
from support.trio_pair import SECRET_A, SECRET_B, network_pair, run, stream_pair

from l3l4 import Config

SEND_BUFFER = 64 * 1024
RECEIVE_BUFFER = 128 * 1024


def test_slow_reader_closes_the_window_and_send_all_waits() -> None:
    payload = random.Random(3).randbytes(1024 * 1024)
    config_a = Config(secret=SECRET_A, tcp_send_buffer=SEND_BUFFER)
    config_b = Config(secret=SECRET_B, tcp_receive_buffer=RECEIVE_BUFFER)

    async def main() -> None:
        async with network_pair(config_a, config_b) as pair:
            client, server = await stream_pair(pair.a, pair.b)
            done = trio.Event()

            async def writer() -> None:
                await client.send_all(payload)
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                await trio.sleep(10.0)  # nobody reads for ten (simulated) seconds
                assert not done.is_set(), "send_all must wait while the reader does not read"
                receiving = pair.b.stack.flow_info(server.flow)
                sending = pair.a.stack.flow_info(client.flow)
                # The receiver holds a full window of unread bytes and advertises zero...
                assert receiving.unconsumed == RECEIVE_BUFFER
                assert receiving.rcv_wnd == 0
                # ...so the sender sees a zero window, with its send buffer full.
                assert sending.snd_wnd == 0
                assert sending.bytes_queued == SEND_BUFFER
                # Zero-window probes kept the connection alive all along.
                assert sending.state == "ESTABLISHED" and pair.a.stack.stats.tcp_timeouts == 0

                received = bytearray()
                while len(received) < len(payload):
                    received += await server.receive_some(4096)
                    await trio.sleep(0.001)  # a slow reader: 4 KiB per millisecond
                with trio.fail_after(5.0):
                    await done.wait()
            assert received == payload
            # Reading reopened the window.
            assert pair.b.stack.flow_info(server.flow).rcv_wnd > 0

    run(main)


def test_window_reopens_only_as_the_application_reads() -> None:
    """The stack task never releases bytes on its own: what the stream holds unread is
    exactly what keeps the window shut."""
    config_b = Config(secret=SECRET_B, tcp_receive_buffer=RECEIVE_BUFFER)

    async def main() -> None:
        async with network_pair(None, config_b) as pair:
            client, server = await stream_pair(pair.a, pair.b)
            await client.send_all(bytes(RECEIVE_BUFFER // 2))
            await trio.sleep(1.0)
            assert pair.b.stack.flow_info(server.flow).unconsumed == RECEIVE_BUFFER // 2
            assert len(await server.receive_some(1000)) == 1000
            assert pair.b.stack.flow_info(server.flow).unconsumed == RECEIVE_BUFFER // 2 - 1000

    run(main)
