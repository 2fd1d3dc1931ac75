"""Two l3l4 stacks wired back to back in memory: any-address UDP, IPv4 and IPv6,
fragmentation both ways, idle expiry. No devices, no root, no network.

Run it with ``./scripts/demo`` (or ``uv run python examples/memory_demo.py``).
"""

from __future__ import annotations

from ipaddress import ip_address

from l3l4 import (
    Config,
    DataReceived,
    Flow,
    FlowClosed,
    FlowOpened,
    Output,
    Proto,
    Stack,
)


def relay(output: Output[bytearray], to: Stack[bytearray], now: float, label: str) -> list[Output[bytearray]]:
    """Carry every packet of ``output`` to the other stack, as a wire would."""
    results = []
    for packet in output.packets:
        print(f"  {label}: {len(packet)}-byte IPv{packet[0] >> 4} packet")
        results.append(to.l3_rx(packet, now))
    return results


def main() -> None:
    client: Stack[bytearray] = Stack(Config(secret=b"demo-client-0000"))
    server: Stack[bytearray] = Stack(Config(secret=b"demo-server-0000", udp_idle_timeout=30.0))
    now = 0.0
    conversations = [
        ("198.51.100.10", 40000, "203.0.113.53", 53, b"hello over IPv4"),
        ("2001:db8::10", 40001, "2001:db8:ffff::53", 5353, b"hello over IPv6"),
        ("198.51.100.10", 40002, "198.18.0.1", 9, b"x" * 4000),
    ]
    for client_ip, client_port, server_ip, server_port, message in conversations:
        flow = Flow(Proto.UDP, ip_address(client_ip), client_port, ip_address(server_ip), server_port)
        print(f"client -> [{server_ip}]:{server_port}: {len(message)} bytes")
        client.connect(flow, now)
        for result in relay(client.l4_tx(flow, message, now), server, now, "client->server"):
            for event in result.events:
                if isinstance(event, FlowOpened):
                    print(f"  server: new flow to its address {event.flow.local_ip}:{event.flow.local_port}")
                elif isinstance(event, DataReceived):
                    reply = server.l4_tx(event.flow, event.data.upper(), now)
                    for answer in relay(reply, client, now, "server->client"):
                        for got in answer.events:
                            if isinstance(got, DataReceived):
                                if got.data != message.upper():
                                    raise SystemExit("reply corrupted")
                                print(f"  client: got {len(got.data)} bytes back, intact")
        now += 1.0
    print(f"server flows open: {len(server.flows())}")
    now += 60.0
    for event in server.l4_poll(now).events:
        if isinstance(event, FlowClosed):
            print(f"  server: {event.flow.local_ip}:{event.flow.local_port} closed ({event.reason.value})")
    stats = server.stats
    print(
        f"server stats: {stats.rx_packets} packets in, {stats.tx_packets} out, "
        f"{stats.fragments_reassembled} datagram(s) reassembled, {stats.fragments_sent} fragments sent, "
        f"{stats.dropped} dropped"
    )


if __name__ == "__main__":
    main()
