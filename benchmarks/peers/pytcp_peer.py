"""The pmd-pytcp side of benchmarks/peers.py. Runs in the side venv (stdlib and
pmd-pytcp only), never in the project's; benchmarks/peers.py starts it.

    python pytcp_peer.py pair-recv FD           # print "ready", then {"seconds", "bytes"}
    python pytcp_peer.py pair-send FD SIZE
    python pytcp_peer.py tun DEVICE MODE SIZE   # MODE: up (sink), down (source), rr (100 B each way)

``pair-*`` run one stack each on one end of an AF_UNIX datagram socketpair, the way
pmd-pytcp runs on a TUN device in L3 mode (each datagram a TUN frame with its 4-byte
packet-information header). ``tun`` opens a TUN device (in the caller's network
namespace) and serves TCP port 5201 on 192.0.2.2 until killed; it prints
"ready DEVICE" once the address is up.

pmd-pytcp runs one stack per process (module-level singletons) on an asyncio loop;
``TcpSocket.send`` buffers without limit, so the senders here keep at most
``PACE`` bytes queued, as a kernel socket's send buffer would.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from pmd_net_addr import Ip4IfAddr  # type: ignore[import-not-found]
from pmd_pytcp import socket as pytcp_socket, stack  # type: ignore[import-not-found]
from pmd_pytcp.lib.interface_layer import InterfaceLayer  # type: ignore[import-not-found]

PORT = 5201
PACE = 1 << 20
REQUEST = REPLY = 100
CHUNK = bytes(1 << 20)


async def boot(interface: dict[str, Any], address: str) -> None:
    """Bring the stack up on one L3 interface with ``address`` (IPv4 only)."""
    stack.init()
    stack.add_interface(
        **interface,
        ip4_host=Ip4IfAddr(address),
        ip4_dhcp=False,
        ip6_support=False,
        ip6_gua_autoconfig=False,
        ip6_lla_autoconfig=False,
    )
    await stack.start()
    deadline = time.monotonic() + 10.0
    while not stack.local_ip4_unicast():  # the address is claimed on the loop
        if time.monotonic() > deadline:
            raise RuntimeError(f"pmd-pytcp did not take {address}")
        await asyncio.sleep(0.005)


def listener() -> Any:
    sock = pytcp_socket.socket(pytcp_socket.AF_INET4, pytcp_socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", PORT))
    sock.listen()
    return sock


async def send_all(conn: Any, size: int) -> None:
    """Send ``size`` zero bytes, keeping at most ``PACE`` bytes queued."""
    left = size
    while left:
        count = min(left, len(CHUNK))
        await conn.send(CHUNK[:count])
        left -= count
        while conn.status().tx_buffer_len > PACE:
            await asyncio.sleep(0.001)


async def drain(conn: Any) -> int:
    received = 0
    while data := await conn.recv(1 << 20):
        received += len(data)
    return received


async def pair_recv(fd: int) -> None:
    await boot({"fd": fd, "layer": InterfaceLayer.L3, "mtu": 1500, "interface_name": "pair0"}, "192.0.2.1/24")
    server = listener()
    print("ready", flush=True)
    conn, _ = await server.accept()
    start = time.perf_counter()
    received = await drain(conn)
    seconds = time.perf_counter() - start
    conn.close()
    print(json.dumps({"seconds": seconds, "bytes": received}), flush=True)
    await asyncio.sleep(0.2)  # let the FIN exchange finish before the process goes
    await stack.stop()


async def pair_send(fd: int, size: int) -> None:
    await boot({"fd": fd, "layer": InterfaceLayer.L3, "mtu": 1500, "interface_name": "pair1"}, "192.0.2.2/24")
    conn = pytcp_socket.socket(pytcp_socket.AF_INET4, pytcp_socket.SOCK_STREAM)
    await conn.connect(("192.0.2.1", PORT))
    await send_all(conn, size)
    conn.close()  # FIN after the queued data
    deadline = time.monotonic() + 600.0
    while conn.status().tx_buffer_len and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    await stack.stop()


async def serve_one(conn: Any, mode: str, size: int) -> None:
    try:
        if mode == "up":
            await drain(conn)
        elif mode == "down":
            await send_all(conn, size)
        else:
            got = 0
            while got < REQUEST and (data := await conn.recv(4096)):
                got += len(data)
            await conn.send(bytes(REPLY))
            await drain(conn)  # the client closes first (see benchmarks/peers.py)
    finally:
        conn.close()


async def tun(device: str, mode: str, size: int) -> None:
    interface = stack.initialize_interface__tun(device)  # IFF_TUN with the PI header, MTU 1500
    await boot(interface, "192.0.2.2/24")
    server = listener()
    print(f"ready {device}", flush=True)
    tasks: set[asyncio.Task[None]] = set()
    while True:
        conn, _ = await server.accept()
        task = asyncio.get_running_loop().create_task(serve_one(conn, mode, size))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "pair-recv":
        asyncio.run(pair_recv(int(args[0])))
    elif command == "pair-send":
        asyncio.run(pair_send(int(args[0]), int(args[1])))
    elif command == "tun":
        asyncio.run(tun(args[0], args[1], int(args[2])))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
