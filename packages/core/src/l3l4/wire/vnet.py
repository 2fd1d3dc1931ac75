"""The virtio-net header a Linux TUN device opened with ``IFF_VNET_HDR`` puts before
every packet (virtio spec 1.1 §5.1.6 "Device Operation"; ``include/uapi/linux/virtio_net.h``).

Inbound, its flags say whether the kernel vouches for the checksums and its GSO type
whether the packet is a super-segment of many MSS-sized ones. Outbound, a TCP packet
larger than the MTU goes with a GSO type and size, and the kernel segments it (TSO).
A driver strips :data:`VNET_HEADER` bytes from each packet it reads, passes
:func:`checksum_trusted` to :meth:`l3l4.Stack.l3_rx`, and writes
:func:`transmit_header` before each packet of the stack's.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from dataclasses import replace

from ..buffers import ReadableBuffer
from ..config import Config
from ..errors import UnknownFlowError
from .checksum import checksum, fold
from .ip import PROTO_TCP

__all__ = [
    "VNET_HEADER",
    "NO_OFFLOAD_HEADER",
    "checksum_trusted",
    "gso_header",
    "transmit_header",
    "partial_checksum_header",
    "is_tcp",
    "completed",
    "offloading",
]

# struct virtio_net_hdr (§5.1.6): flags, gso_type, hdr_len, gso_size, csum_start,
# csum_offset. The legacy header is in the host's byte order, which the TUN driver
# takes as little-endian on x86 and arm64 (TUNSETVNETLE is not needed there).
_HEADER = struct.Struct("<BBHHHH")
VNET_HEADER = _HEADER.size
"""Bytes of the header before every packet read or written (10)."""
F_NEEDS_CSUM = 1
"""The checksum field holds only the pseudo-header sum; the rest is "to do"."""
F_DATA_VALID = 2
"""The kernel has checked the checksums."""
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
# Where a TCP header keeps its checksum (RFC 9293 §3.1): the device's csum_offset.
_TCP_CHECKSUM_AT = 16
# The largest IP packet (RFC 791 §3.1 total length): what a device segments at most.
_TSO_PACKET = 65535

NO_OFFLOAD_HEADER = _HEADER.pack(0, GSO_NONE, 0, 0, 0, 0)
"""For a packet that is complete as it is: checksummed, no larger than the MTU."""


def offloading(config: Config, offload: bool) -> Config:
    """``config`` for a stack behind a device with (``offload``) or without the
    checksum and TCP segmentation offloads: with them, new data leaves in TCP packets of
    up to 64 KiB for the device to segment, their checksums left for it to complete
    (``Config.tcp_tso_packet``, ``Config.tcp_checksum_offload``); without, neither."""
    return replace(config, tcp_tso_packet=_TSO_PACKET if offload else 0, tcp_checksum_offload=offload)


def checksum_trusted(header: ReadableBuffer) -> bool:
    """Whether the packet behind ``header`` needs no checksum verification: the kernel
    either checked it (``DATA_VALID``) or left it partial for us (``NEEDS_CSUM``, a
    locally generated packet whose checksum no wire ever saw)."""
    return bool(header[0] & (F_NEEDS_CSUM | F_DATA_VALID))


def _headers(packet: ReadableBuffer) -> tuple[int, int]:
    """The IP header's and the IP plus TCP headers' lengths of TCP ``packet``."""
    ip_header = (packet[0] & 0x0F) * 4 if packet[0] >> 4 == 4 else 40
    return ip_header, ip_header + (packet[ip_header + 12] >> 4) * 4


def gso_header(packet: ReadableBuffer, segment_payload: int, partial: bool = False) -> bytes:
    """The header that has the kernel split TCP ``packet`` into segments carrying
    ``segment_payload`` bytes each, every one with ``packet``'s IP and TCP headers.

    A fully checksummed ``packet`` goes without ``NEEDS_CSUM``: the kernel's TCP
    segmentation recomputes each segment's checksum from it (``tcp4_gso_segment``/
    ``tcp6_gso_segment`` with ``CHECKSUM_NONE``). With ``partial`` (its checksum field
    holds the pseudo-header's sum, ``Config.tcp_checksum_offload``) the header asks for
    the checksum to be completed, as :func:`partial_checksum_header` does.
    """
    gso_type = GSO_TCPV4 if packet[0] >> 4 == 4 else GSO_TCPV6
    ip_header, headers = _headers(packet)
    if partial:
        return _HEADER.pack(F_NEEDS_CSUM, gso_type, headers, segment_payload, ip_header, _TCP_CHECKSUM_AT)
    return _HEADER.pack(0, gso_type, headers, segment_payload, 0, 0)


def partial_checksum_header(packet: ReadableBuffer) -> bytes:
    """The header for a TCP ``packet`` within the MTU whose checksum field holds only the
    pseudo-header's sum: ``NEEDS_CSUM``, with the sum to complete starting at the TCP
    header and stored at its checksum field (§5.1.6.2, ``csum_start``/``csum_offset``)."""
    ip_header = _headers(packet)[0]
    return _HEADER.pack(F_NEEDS_CSUM, GSO_NONE, 0, 0, ip_header, _TCP_CHECKSUM_AT)


def is_tcp(packet: ReadableBuffer) -> bool:
    """Whether a stack's ``packet`` is a whole TCP segment (a stack sends IPv6 TCP
    without extension headers; an IPv4 fragment, with MF or an offset, is not one)."""
    if packet[0] >> 4 == 4:
        return packet[9] == PROTO_TCP and not (packet[6] & 0x3F or packet[7])
    return packet[6] == PROTO_TCP


def completed(packet: ReadableBuffer) -> bytes:
    """A copy of TCP ``packet`` with its partial checksum (``Config.tcp_checksum_offload``)
    completed, as the device will complete it: what a capture should show. The field
    holds the pseudo-header's sum, so the sum over the segment with it is the whole
    sum (RFC 9293 §3.1)."""
    ip_header = _headers(packet)[0]
    whole = bytearray(packet)
    at = ip_header + _TCP_CHECKSUM_AT
    whole[at : at + 2] = checksum(fold(memoryview(whole)[ip_header:])).to_bytes(2, "big")
    return bytes(whole)


def transmit_header(
    packet: ReadableBuffer, mtu: int, segment_payload: Callable[[ReadableBuffer], int], partial: bool = False
) -> bytes:
    """The header to write before ``packet``, one of a stack's: :data:`NO_OFFLOAD_HEADER`
    if it fits ``mtu``, else (a TCP packet built for ``Config.tcp_tso_packet``) a
    :func:`gso_header` for segments of ``segment_payload(packet)`` bytes, which is
    :meth:`l3l4.Stack.tso_segment_size`. If that raises
    :class:`~l3l4.UnknownFlowError` (the connection is gone since the packet was built),
    the segments carry what ``mtu`` allows beside the packet's headers.

    ``partial`` is the stack's ``Config.tcp_checksum_offload``: its TCP packets then ask
    the device to complete their checksums (UDP and ICMP ones are always complete).
    """
    partial = partial and is_tcp(packet)
    if len(packet) <= mtu:
        return partial_checksum_header(packet) if partial else NO_OFFLOAD_HEADER
    try:
        size = segment_payload(packet)
    except UnknownFlowError:
        size = mtu - _headers(packet)[1]
    return gso_header(packet, size, partial)
