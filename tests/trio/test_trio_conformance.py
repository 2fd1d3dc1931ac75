"""``TcpStream`` passes trio's own generic test of a half-closeable stream, over two
stacks wired back to back in memory."""

from __future__ import annotations

import trio
from support.trio_pair import SECRET_A, SECRET_B, network_pair, run, stream_pair
from trio.testing import check_half_closeable_stream

from l3l4 import Config
from l3l4_trio import Network, TcpStream

# Small buffers, so that clogging a connection takes little data.
SMALL = 16384


async def clog(sender: TcpStream) -> None:
    """Fill the peer's receive window and our send buffer until nothing more is taken."""
    while True:
        await trio.sleep(1.0)  # let everything in flight settle
        if sender.send_nowait(b"x" * 65536) == 0:
            return


def test_check_half_closeable_stream() -> None:
    async def main() -> None:
        config_a = Config(secret=SECRET_A, tcp_send_buffer=SMALL, tcp_receive_buffer=SMALL)
        config_b = Config(secret=SECRET_B, tcp_send_buffer=SMALL, tcp_receive_buffer=SMALL)
        async with network_pair(config_a, config_b) as pair:
            a, b = pair.a, pair.b

            async def maker() -> tuple[TcpStream, TcpStream]:
                return await stream_pair(a, b)

            async def clogged_maker() -> tuple[TcpStream, TcpStream]:
                left, right = await stream_pair(a, b)
                await clog(left)
                await clog(right)
                assert right.info().rcv_wnd == 0 and left.info().rcv_wnd == 0
                return left, right

            await check_half_closeable_stream(maker, clogged_maker)
            assert_nothing_leaked(a)
            assert_nothing_leaked(b)

    run(main)


def assert_nothing_leaked(network: Network) -> None:
    stats = network.statistics()
    assert stats.pending_accepts == 0 and stats.backlog_overflows == 0
