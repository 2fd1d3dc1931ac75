"""Two l3l4 stacks under trio, wired back to back by an in-memory link (``l3l4_trio``)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_address

import trio
import trio.testing
from l3l4 import Config, Flow, Proto
from l3l4_trio import MemoryLink, Network, TcpStream, memory_link_pair, open_stack

CLIENT_IP = "198.51.100.7"
SERVER_IP = "203.0.113.80"
SECRET_A = b"trio-test-secret-a"
SECRET_B = b"trio-test-secret-b"


def run(main: Callable[[], Awaitable[object]]) -> None:
    """Run ``main`` under a mock clock that jumps whenever every task is blocked: no
    real time passes however long the simulated timers are."""
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@dataclass
class Pair:
    """Two running networks and the two ends of the link between them."""

    a: Network
    b: Network
    link_a: MemoryLink
    link_b: MemoryLink


@asynccontextmanager
async def network_pair(
    config_a: Config | None = None,
    config_b: Config | None = None,
    *,
    loss: float = 0.0,
    delay: float = 0.002,
    jitter: float = 0.0,
    seed: int = 0,
) -> AsyncIterator[Pair]:
    """Networks ``a`` and ``b`` joined by a memory link with seeded impairments."""
    link_a, link_b = memory_link_pair(loss=loss, delay=delay, jitter=jitter, seed=seed)
    async with link_a, link_b:
        async with open_stack(link_a, config_a or Config(secret=SECRET_A)) as a:
            async with open_stack(link_b, config_b or Config(secret=SECRET_B)) as b:
                yield Pair(a, b, link_a, link_b)


async def stream_pair(a: Network, b: Network, port: int = 80) -> tuple[TcpStream, TcpStream]:
    """A connection from ``a`` (an ephemeral port of CLIENT_IP) to SERVER_IP:port on ``b``."""
    client = await a.connect((CLIENT_IP, 0), (SERVER_IP, port))
    server = await b.accept()
    assert server.flow == client.flow.reversed()
    return client, server


def tcp_flow(client_port: int, server_port: int = 80) -> Flow:
    """The client side's flow toward the server."""
    return Flow(Proto.TCP, ip_address(CLIENT_IP), client_port, ip_address(SERVER_IP), server_port)


async def send_then_eof(stream: TcpStream, data: bytes, seed: int) -> None:
    """Send ``data`` in pieces of seeded random sizes (1 B to 200 kB), then a FIN."""
    rng = random.Random(seed)
    view = memoryview(data)
    while view:
        size = rng.randint(1, 200_000)
        await stream.send_all(view[:size])
        view = view[size:]
    await stream.send_eof()


async def read_to_eof(stream: TcpStream, into: list[bytes], seed: int) -> None:
    """Receive in reads of seeded random sizes until the peer's FIN."""
    rng = random.Random(seed)
    while chunk := await stream.receive_some(rng.randint(1, 200_000)):
        into.append(chunk)
