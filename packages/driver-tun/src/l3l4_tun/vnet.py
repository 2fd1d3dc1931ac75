"""The virtio-net header a TUN device opened with ``IFF_VNET_HDR`` puts before every
packet (``include/uapi/linux/virtio_net.h``; virtio spec §5.1.6 "Device Operation").

Inbound, its flags say whether the kernel vouches for the checksums and its GSO type
whether the packet is a super-segment of many MSS-sized ones. Outbound, a TCP packet
larger than the MTU goes with a GSO type and size, and the kernel segments it (TSO).
"""

from __future__ import annotations

import struct

__all__ = [
    "VNET_HEADER",
    "NO_OFFLOAD_HEADER",
    "checksum_trusted",
    "gso_header",
]

# flags, gso_type, hdr_len, gso_size, csum_start, csum_offset; the legacy header is in
# the host's byte order, which the TUN driver takes as little-endian on x86 and arm64.
_HEADER = struct.Struct("<BBHHHH")
VNET_HEADER = _HEADER.size
F_NEEDS_CSUM = 1
"""The checksum field holds only the pseudo-header sum; the rest is "to do"."""
F_DATA_VALID = 2
"""The kernel has checked the checksums."""
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4

NO_OFFLOAD_HEADER = _HEADER.pack(0, GSO_NONE, 0, 0, 0, 0)
"""For a packet that is complete as it is: checksummed, no larger than the MTU."""


def checksum_trusted(header: bytes | bytearray | memoryview) -> bool:
    """Whether the packet behind ``header`` needs no checksum verification: the kernel
    either checked it (``DATA_VALID``) or left it partial for us (``NEEDS_CSUM``, a
    locally generated packet whose checksum no wire ever saw)."""
    return bool(header[0] & (F_NEEDS_CSUM | F_DATA_VALID))


def gso_header(packet: bytes | bytearray | memoryview, segment_payload: int) -> bytes:
    """The header that has the kernel split TCP ``packet`` into segments carrying
    ``segment_payload`` bytes each, every one with ``packet``'s IP and TCP headers.

    ``packet`` is fully checksummed: the kernel's TCP segmentation recomputes each
    segment's checksum from it (``tcp4_gso_segment``/``tcp6_gso_segment`` with
    ``CHECKSUM_NONE``), so no ``NEEDS_CSUM`` is set.
    """
    if packet[0] >> 4 == 4:
        ip_header = (packet[0] & 0x0F) * 4
        gso_type = GSO_TCPV4
    else:
        ip_header = 40
        gso_type = GSO_TCPV6
    headers = ip_header + (packet[ip_header + 12] >> 4) * 4
    return _HEADER.pack(0, gso_type, headers, segment_payload, 0, 0)
