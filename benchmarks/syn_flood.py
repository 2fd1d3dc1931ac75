"""A SYN flood against one stack while a legitimate client moves a file through it.

    uv run python benchmarks/syn_flood.py [--mib 4] [--rates 10000,100000,1000000]

Spoofed SYNs (random sources in 198.18.0.0/15, Linux's options) arrive at each
simulated rate, from 0.1 s before a client connects until it has downloaded ``--mib``
MiB from the server over a 5 ms link (or ``--give-up`` simulated seconds pass);
their SYN-ACKs go nowhere. Past ``Config.tcp_syn_cookie_threshold`` (256) half-open
connections the server answers with SYN cookies and keeps nothing. Reported: whether
the download completed intact and in how much simulated time, the most the server held
(half-open and all connections), the CPU cost of one spoofed SYN, and so the flood
rate one core sustains. Then the same without cookies (``tcp_syn_cookie_threshold=None``),
where the half-open cap (1024, oldest evicted) is the only defence.
"""

from __future__ import annotations

import argparse
import heapq
import platform
import sys
import time
from ipaddress import ip_address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.spoof import spoofed_syns

from l3l4 import Config, DataReceived, Flow, FlowOpened, Output, Proto, Stack, Writable

FLOW = Flow(Proto.TCP, ip_address("192.0.2.10"), 40000, ip_address("203.0.113.80"), 80)
DELAY = 0.005
TICK = 0.001
WARM_UP = 0.1


def run(rate: int, mib: int, cookies: bool, give_up: float) -> dict[str, float]:
    server = Stack(Config(secret=b"flood-server-000", tcp_syn_cookie_threshold=256 if cookies else None))
    client = Stack(Config(secret=b"flood-client-000"))
    size = mib << 20
    payload = bytes(range(256)) * (size // 256)
    flood = spoofed_syns(10**9, seed=rate, dst="203.0.113.80", dport=80)
    queue: list[tuple[float, int, bool, bytearray]] = []
    order = 0
    now = 0.0
    sent = 0
    received = 0
    digest_ok = True
    peak_half_open = peak_flows = 0
    flood_count = 0
    flood_seconds = 0.0

    def send(to_server: bool, out: Output[bytearray]) -> None:
        nonlocal order, sent, received, digest_ok
        for packet in out.packets:
            order += 1
            heapq.heappush(queue, (now + DELAY, order, to_server, packet))
        if to_server:
            for event in out.events:
                if isinstance(event, DataReceived):
                    digest_ok = digest_ok and event.data == payload[received : received + len(event.data)]
                    received += len(event.data)
            return
        for event in out.events:
            if isinstance(event, (FlowOpened, Writable)) and sent < size:
                more = server.l4_tx(event.flow, payload[sent:], now)
                sent += more.accepted
                send(False, more)

    wall = time.perf_counter()
    while received < size and now < WARM_UP + give_up:
        now += TICK
        if now >= WARM_UP and client.flows() == [] and not sent:
            send(True, client.connect(FLOW, now))  # the client comes once the flood is on
        start = time.perf_counter()
        for _ in range(int(rate * TICK)):
            server.l3_rx(next(flood), now)
        flood_seconds += time.perf_counter() - start
        flood_count += int(rate * TICK)
        while queue and queue[0][0] <= now:
            _, _, to_server, packet = heapq.heappop(queue)
            send(not to_server, (server if to_server else client).l3_rx(packet, now))
        send(True, client.l4_poll(now))
        send(False, server.l4_poll(now))
        usage = server.usage()
        peak_half_open = max(peak_half_open, usage.tcp_half_open)
        peak_flows = max(peak_flows, usage.tcp_flows)
    return {
        "done": float(received == size and digest_ok),
        "seconds": now - WARM_UP,
        "syns": flood_count,
        "cookies": server.stats.tcp_syn_cookies_sent,
        "evicted": server.stats.tcp_half_open_evicted,
        "half_open": peak_half_open,
        "flows": peak_flows,
        "us_per_syn": flood_seconds / max(flood_count, 1) * 1e6,
        "wall": time.perf_counter() - wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=4)
    parser.add_argument("--rates", default="10000,100000,1000000")
    parser.add_argument("--give-up", type=float, default=2.0, help="simulated seconds the download may take")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}; {args.mib} MiB download through the flood")
    print()
    print("| SYN cookies | flood (SYN/s, simulated) | download intact | simulated s | spoofed SYNs | cookies sent | "
          "half-open evicted | peak half-open | peak connections | µs CPU per spoofed SYN | SYN/s one core absorbs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cookies in (True, False):
        for rate in (int(r) for r in args.rates.split(",")):
            r = run(rate, args.mib, cookies, args.give_up)
            print(
                f"| {'on' if cookies else 'off'} | {rate:,} | {'yes' if r['done'] else 'NO'} | {r['seconds']:.2f} | "
                f"{r['syns']:,.0f} | {r['cookies']:,.0f} | {r['evicted']:,.0f} | {r['half_open']:,.0f} | "
                f"{r['flows']:,.0f} | {r['us_per_syn']:.1f} | {1e6 / r['us_per_syn']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
