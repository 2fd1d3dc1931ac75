"""The Internet checksum (RFC 1071) the slow, obvious way: 16-bit words summed with
end-around carry. Tests and the fuzzer check l3l4's packets with it, independently of
l3l4's own fast implementation."""

from __future__ import annotations

import struct


def inet_sum(data: bytes) -> int:
    """The one's-complement sum of ``data`` as 16-bit big-endian words (odd length padded)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def inet_checksum(data: bytes) -> int:
    """The checksum field for ``data`` (its other words, with the field itself zero)."""
    return ~inet_sum(data) & 0xFFFF
