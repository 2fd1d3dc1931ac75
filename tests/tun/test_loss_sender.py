"""l3l4 as the sender under loss, with the Linux kernel as the receiver: recovery must
start from the kernel's SACK blocks (a Linux receiver grows its window on almost every
ACK, so ACKs that also count a window never would), not wait for the retransmission
timeout. How fast it goes is measured in benchmarks/, not here: here, how losses were
recovered, from ``stack.stats``."""

from __future__ import annotations

import hashlib
import random
from ipaddress import ip_address

from l3l4 import Config, Flow, Proto, Stack
from l3l4_tun.testing import KERNEL_V4, tun_namespace
from support.apps import Sender, upload_to_hash_server
from support.clients import hash_server
from support.impair import ImpairedLoop
from support.link import Impairment

LOCAL = "203.0.113.72"


def test_losses_of_l3l4_data_are_recovered_by_fast_retransmit_against_a_linux_receiver() -> None:
    payload = hashlib.shake_256(b"lossy upload to linux").digest(4 << 20)
    rng = random.Random(5)
    local = ip_address(LOCAL).packed

    def drop(packet: bytes) -> bool:
        # 5% of what l3l4 sends, seeded; the kernel's ACKs all arrive.
        return packet[0] >> 4 == 4 and packet[12:16] == local and rng.random() < 0.05

    with tun_namespace(offload=False) as (namespace, devices):
        receiver = hash_server(namespace, KERNEL_V4, 8082, 16)
        sender = Sender(payload)
        stack = Stack(Config(secret=b"loss-sender-0000"))
        loop = ImpairedLoop(stack, devices, sender, Impairment(delay=0.001, drop_if=drop), seed=1)
        flow = Flow(Proto.TCP, ip_address(LOCAL), 41000, ip_address(KERNEL_V4), 8082)
        upload_to_hash_server(loop, sender, receiver, flow, payload)
    stats = stack.stats
    # About 150 segments lost: before recovery started from SACK blocks, 38 of them
    # waited for the timeout and 53 started fast recovery; now about 7 and 80.
    assert stats.tcp_retransmits > 100
    assert stats.tcp_fast_recoveries >= 5 * stats.tcp_timeouts, stats.as_dict()
