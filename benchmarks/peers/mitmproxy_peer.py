"""The mitmproxy_rs side of benchmarks/peers.py. Runs in the side venv (stdlib and
mitmproxy_rs only), never in the project's; benchmarks/peers.py starts it.

    python mitmproxy_peer.py check                   # exit 0, or print why TUN mode is unavailable
    python mitmproxy_peer.py tun DEVICE MODE SIZE    # MODE: up (sink), down (source), rr (100 B each way)

``tun`` has mitmproxy_rs create the TUN device (in the caller's network namespace; it
serves every address routed into it with smoltcp, MTU 65535, address 169.254.0.1 on
the device) and serves every TCP connection until killed; it prints "ready DEVICE".
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import mitmproxy_rs  # type: ignore[import-not-found]  # noqa: F401  (registers mitmproxy_rs.tun)
import mitmproxy_rs.tun  # type: ignore[import-not-found]

REQUEST = REPLY = 100
CHUNK = bytes(1 << 20)


async def serve(mode: str, size: int, stream: Any) -> None:
    try:
        if mode == "up":
            while await stream.read(1 << 20):
                pass
        elif mode == "down":
            left = size
            while left:
                count = min(left, len(CHUNK))
                stream.write(CHUNK[:count])
                left -= count
                await stream.drain()
        else:
            got = 0
            while got < REQUEST and (data := await stream.read(4096)):
                got += len(data)
            stream.write(bytes(REPLY))
            await stream.drain()
            while await stream.read(4096):  # the client closes first
                pass
    finally:
        stream.close()


async def ignore(stream: Any) -> None:
    stream.close()


async def tun(device: str, mode: str, size: int) -> None:
    async def handle(stream: Any) -> None:
        await serve(mode, size, stream)

    interface = await mitmproxy_rs.tun.create_tun_interface(handle, ignore, tun_name=device)
    print(f"ready {interface.tun_name()}", flush=True)
    await interface.wait_closed()


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "check":
        reason = mitmproxy_rs.tun.TunInterface.unavailable_reason()
        if reason:
            print(reason)
            raise SystemExit(1)
    elif command == "tun":
        asyncio.run(tun(args[0], args[1], int(args[2])))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
