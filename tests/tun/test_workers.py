"""Multi-queue scale-out: one worker process per queue of a multi-queue TUN device,
each with its own stack; the kernel spreads the flows over them."""

from __future__ import annotations

from l3l4 import Config, Stack
from l3l4.apps import Echo
from l3l4_tun import Workers
from l3l4_tun.testing import tun_namespace
from support.clients import python_tcp_clients, udp_client


def make_stack() -> Stack[bytearray]:
    return Stack(Config(secret=b"worker-secret-00", tcp_tso_packet=65535, tcp_checksum_offload=True))


def test_two_queues_share_the_flows_and_every_byte_arrives() -> None:
    with tun_namespace(queues=2) as (namespace, devices):
        workers = Workers(devices, Echo, make_stack, graceful_timeout=1.0)
        workers.start()
        try:
            clients = [python_tcp_clients(namespace, f"203.0.113.{100 + i}", 7, 200_000, 20) for i in range(4)]
            clients.append(python_tcp_clients(namespace, "2001:db8:99::1", 7, 1 << 20, 10))
            clients.append(udp_client(namespace, "198.51.100.53", 53, [100, 5000]))
            results = [client.communicate(timeout=120) + (client.returncode,) for client in clients]
        finally:
            reports = workers.stop()
    for out, err, code in results:
        assert code == 0, (out, err)
    assert len(reports) == 2
    assert sum(report["tcp_established"] for report in reports) == 90
    # Both workers served flows: the kernel's hash spread 90 connections over the queues.
    assert all(report["tcp_established"] > 0 for report in reports), reports
    assert sum(report["drop.bad_l4_checksum"] for report in reports) == 0
