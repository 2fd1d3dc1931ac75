"""Hostile packets, fast: raw TCP/IP packets built with a few lines of ``struct`` (not
scapy, which takes a hundred times longer per packet, and not l3l4's own codec, so the
stack never checks itself), and floods of spoofed SYNs from a seeded RNG.

Spoofed sources come from 198.18.0.0/15 (RFC 2544) and 2001:db8::/32 (RFC 3849).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from ipaddress import ip_address

from support.inet import inet_checksum

__all__ = ["SYN", "ACK", "RST", "FIN", "PSH", "LINUX_SYN_OPTIONS", "spoofed_syns", "tcp_packet"]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# MSS 1460, SACK-permitted, timestamps (TSval 1, TSecr 0), NOP, window scale 7: what
# Linux puts in a SYN.
LINUX_SYN_OPTIONS = bytes.fromhex("020405b4" "0402080a" "00000001" "00000000" "01030307")




def tcp_packet(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    *,
    window: int = 65535,
    options: bytes = b"",
    payload: bytes = b"",
) -> bytes:
    """One IPv4 or IPv6 TCP packet, checksums right. ``options`` must be padded to 32 bits."""
    source, destination = ip_address(src).packed, ip_address(dst).packed
    header = 20 + len(options)
    segment = bytearray(
        struct.pack("!HHIIHHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (header // 4) << 12 | flags, window, 0, 0)
    )
    segment += options + payload
    if len(source) == 4:
        pseudo = source + destination + struct.pack("!BBH", 0, 6, len(segment))
    else:
        pseudo = source + destination + struct.pack("!I3xB", len(segment), 6)
    segment[16:18] = struct.pack("!H", inet_checksum(pseudo + bytes(segment)))
    if len(source) == 16:
        return struct.pack("!IHBB", 6 << 28, len(segment), 6, 64) + source + destination + bytes(segment)
    ip = bytearray(struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(segment), 0, 0x4000, 64, 6, 0) + source + destination)
    ip[10:12] = struct.pack("!H", inet_checksum(bytes(ip)))
    return bytes(ip) + bytes(segment)


def spoofed_syns(count: int, seed: int, dst: str, dport: int, *, version: int = 4) -> Iterator[bytes]:
    """``count`` SYNs with Linux's options from random sources, ports and ISNs."""
    rng = random.Random(seed)
    for _ in range(count):
        if version == 4:
            src = str(ip_address((198 << 24 | 18 << 16) + rng.randrange(1, 1 << 17)))
        else:
            src = str(ip_address((0x20010DB8 << 96) + rng.randrange(1, 1 << 96)))
        yield tcp_packet(src, dst, rng.randrange(1024, 65536), dport, rng.getrandbits(32), 0, SYN, options=LINUX_SYN_OPTIONS)
