"""``TunLink`` over a non-blocking file descriptor. A TUN device needs privileges, so
these tests use what behaves the same for the link: an AF_UNIX datagram socket pair,
one packet per read and write (with ``offload``, each after its virtio-net header).
Real time, no mock clock: the fd is really polled."""

from __future__ import annotations

import os
import socket
import struct

import pytest
import trio
import trio.testing
from support.offloading import RecordingOffloadLink
from support.trio_pair import CLIENT_IP, SECRET_A, SECRET_B, SERVER_IP

from l3l4 import Config
from l3l4.wire.vnet import NO_OFFLOAD_HEADER
from l3l4_trio import OffloadLink, TcpStream, TunLink, memory_link_pair, open_stack

# struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
VNET = struct.Struct("<BBHHHH")


def socket_pair() -> tuple[socket.socket, socket.socket]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    left.setblocking(False)
    right.setblocking(False)
    return left, right


def test_two_stacks_over_file_descriptors() -> None:
    left, right = socket_pair()
    payload = bytes(range(256)) * 2048  # 512 KiB

    async def echo(stream: TcpStream) -> None:
        while data := await stream.receive_some():
            await stream.send_all(data)

    async def main() -> None:
        with trio.fail_after(30):
            async with TunLink(left.fileno()) as link_a, TunLink(right.fileno()) as link_b:
                async with open_stack(link_a, Config(secret=SECRET_A)) as a, open_stack(
                    link_b, Config(secret=SECRET_B)
                ) as b:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(b.serve_tcp, echo)
                        client = await a.connect((CLIENT_IP, 0), (SERVER_IP, 7))
                        received = bytearray()

                        async def read() -> None:
                            while chunk := await client.receive_some():
                                received.extend(chunk)

                        async with trio.open_nursery() as transfer:
                            transfer.start_soon(read)
                            await client.send_all(payload)
                            await client.send_eof()
                        # read() saw the end: the echo handler returned, serve_tcp closed.
                        assert received == payload
                        udp = a.open_udp((CLIENT_IP, 0), (SERVER_IP, 53))
                        await udp.send(b"over the fd")
                        served = await b.accept_udp()
                        assert await served.receive() == b"over the fd"
                        nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        left.close()
        right.close()


def test_aclose_wakes_a_blocked_receiver() -> None:
    left, right = socket_pair()

    async def main() -> None:
        link = TunLink(left.fileno())
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await link.receive_packets()

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            await link.aclose()
        await link.aclose()  # idempotent
        with pytest.raises(trio.ClosedResourceError):
            await link.send_packets([b"x"])

    try:
        trio.run(main)
    finally:
        left.close()
        right.close()


def test_reads_every_packet_available_and_closes_the_fd_if_asked() -> None:
    left, right = socket_pair()

    async def main() -> None:
        for n in range(5):
            right.send(b"packet %d" % n)
        link = TunLink(left.fileno(), batch=3, close_fd=True)
        assert await link.receive_packets() == [b"packet 0", b"packet 1", b"packet 2"]
        assert await link.receive_packets() == [b"packet 3", b"packet 4"]
        await link.send_packets([b"back"])
        assert right.recv(100) == b"back"
        await link.aclose()

    fd = left.fileno()
    try:
        trio.run(main)
        with pytest.raises(OSError):
            os.fstat(fd)  # the link closed it
    finally:
        left.detach()
        right.close()


def test_a_blocking_fd_is_refused() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with left, right, pytest.raises(ValueError, match="blocking"):
        TunLink(left.fileno())


def test_offload_headers_are_cut_on_reading_and_written_before_each_packet() -> None:
    left, right = socket_pair()

    async def main() -> None:
        link = TunLink(left.fileno(), offload=True)
        assert isinstance(link, OffloadLink) and link.offload
        right.send(VNET.pack(2, 0, 0, 0, 0, 0) + b"checked by the kernel")  # DATA_VALID
        right.send(VNET.pack(1, 0, 0, 0, 0, 0) + b"partial checksum")  # NEEDS_CSUM
        right.send(NO_OFFLOAD_HEADER + b"to verify")
        packets = [(bytes(packet), verified) for packet, verified in await link.receive_offloaded()]
        assert packets == [(b"checked by the kernel", True), (b"partial checksum", True), (b"to verify", False)]
        right.send(NO_OFFLOAD_HEADER + b"flags dropped")
        assert await link.receive_packets() == [b"flags dropped"]
        await link.send_packets([b"out"])  # no stack attached: written whole
        assert right.recv(100) == NO_OFFLOAD_HEADER + b"out"
        await link.aclose()

    try:
        trio.run(main)
    finally:
        left.close()
        right.close()


def test_two_stacks_over_offloading_links_send_super_packets() -> None:
    """Each stack sends TCP packets of up to 64 KiB with a GSO header (open_stack turns
    TSO on for an offloading link), and takes the other's whole, as a TUN device's
    super-packets. Their checksums are partial (open_stack turns checksum offload on
    too) and marked NEEDS_CSUM, so the receiving link takes them as vouched for, as a
    kernel takes its own."""
    left, right = socket_pair()
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def main() -> None:
        with trio.fail_after(30):
            async with RecordingOffloadLink(left.fileno()) as link_a, RecordingOffloadLink(right.fileno()) as link_b:
                async with open_stack(link_a, Config(secret=SECRET_A)) as a, open_stack(
                    link_b, Config(secret=SECRET_B)
                ) as b:
                    assert a.config.tcp_tso_packet == 65535 and a.config.tcp_checksum_offload
                    client = await a.connect((CLIENT_IP, 0), (SERVER_IP, 7))
                    server = await b.accept()
                    received = bytearray()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(client.send_all, payload)
                        while len(received) < len(payload):
                            received.extend(await server.receive_some())
                    assert received == payload
                    assert link_a.largest_out > 1500 and link_b.largest_in > 1500
                    assert True in link_b.verdicts
                    assert b.stack.stats.dropped == 0

    try:
        trio.run(main)
    finally:
        left.close()
        right.close()


def test_partial_checksums_need_a_link_that_offloads() -> None:
    """A link without a virtio-net header would carry partial checksums to a peer that
    cannot complete them: open_stack refuses."""

    async def main() -> None:
        link, _ = memory_link_pair()
        with pytest.raises(ValueError, match="tcp_checksum_offload"):
            async with open_stack(link, Config(tcp_checksum_offload=True)):
                pass

    trio.run(main)
