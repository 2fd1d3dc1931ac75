"""Cancellation: a cancelled receive_some loses nothing; a send_all cancelled part way
breaks the stream (as trio allows), so the peer sees a reset, not a truncated message."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from support.trio_pair import network_pair, run, stream_pair


def test_cancelled_receive_some_keeps_the_stream_usable() -> None:
    async def main() -> None:
        async with network_pair() as pair:
            client, server = await stream_pair(pair.a, pair.b)

            # Blocked in receive_some, then cancelled by a timeout.
            with trio.move_on_after(1.0) as scope:
                await server.receive_some()
            assert scope.cancelled_caught

            # Data arrives while nobody reads; a receive_some cancelled before it runs
            # takes none of it.
            await client.send_all(b"first")
            await trio.sleep(0.1)
            with trio.CancelScope() as scope:
                scope.cancel()
                await server.receive_some()
            assert scope.cancelled_caught
            assert await server.receive_some() == b"first"

            # A reader cancelled while another task sends: every byte still arrives once.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.receive_some)
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
            await client.send_all(b"second")
            assert await server.receive_some() == b"second"

            # Both directions still work, and close cleanly.
            await server.send_all(b"reply")
            assert await client.receive_some() == b"reply"
            await client.aclose()
            assert await server.receive_some() == b""
            await server.aclose()

    run(main)


def test_send_all_cancelled_part_way_breaks_the_stream_and_resets_the_peer() -> None:
    message = bytes(1024 * 1024)  # more than the send buffer and the peer's window

    async def main() -> None:
        async with network_pair() as pair:
            client, server = await stream_pair(pair.a, pair.b)
            with trio.move_on_after(2.0) as scope:
                await client.send_all(message)  # the server does not read: it blocks
            assert scope.cancelled_caught
            with pytest.raises(trio.BrokenResourceError, match="interrupted part way"):
                await client.send_all(b"more")
            with pytest.raises(trio.BrokenResourceError):
                await client.receive_some()
            # The peer reads what arrived, then learns of the reset: never a clean end.
            received = 0
            with pytest.raises(trio.BrokenResourceError):
                while True:
                    chunk = await server.receive_some()
                    assert chunk, "a truncated message must not end like a complete one"
                    received += len(chunk)
            assert 0 < received < len(message)
            await client.aclose()
            await server.aclose()

    run(main)


def test_send_all_cancelled_before_sending_has_no_effect() -> None:
    async def main() -> None:
        async with network_pair() as pair:
            client, server = await stream_pair(pair.a, pair.b)
            with trio.CancelScope() as scope:
                scope.cancel()
                await client.send_all(b"never")
            assert scope.cancelled_caught
            await client.send_all(b"ok")
            assert await server.receive_some() == b"ok"

    run(main)


def test_aclose_wakes_a_blocked_send_all_with_closed_resource_error() -> None:
    async def main() -> None:
        async with network_pair() as pair:
            client, server = await stream_pair(pair.a, pair.b)

            async def close_soon() -> None:
                await trio.sleep(1.0)
                await client.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(close_soon)
                with pytest.raises(trio.ClosedResourceError):
                    await client.send_all(bytes(1024 * 1024))
            # It had queued part of the message: the peer gets a reset, not a FIN.
            with pytest.raises(trio.BrokenResourceError):
                while await server.receive_some():
                    pass

    run(main)
