"""A whole IP packet carrying one TCP segment, written in one pass.

:func:`~l3l4.wire.tcp.write_tcp` and the IP header writers build a packet in layers,
each folding the bytes it wrote into its checksum. A packet that is not fragmented (every
TCP segment: RFC 1191 §3 sets Don't Fragment) can do better: every header word is
known as a number before anything is written, and the one's-complement sum of a word
is the word itself modulo 0xFFFF (``l3l4.wire.checksum``: 2**16 ≡ 1), so both
checksums come from integer additions, and only the payload is folded as bytes. Then
one ``pack_into`` writes the IP header, the TCP header and the checksums together.
"""

from __future__ import annotations

import struct

from ..buffers import ReadableBuffer, WritableBuffer
from .ip import IPV4_HEADER, IPV6_HEADER, PROTO_TCP
from .tcp import TCP_HEADER

__all__ = ["write_ipv4_tcp", "write_ipv6_tcp"]

_FROM = int.from_bytes
_V4_TCP = struct.Struct("!BBHHHBBH4s4sHHIIHHHH")
_V6_TCP = struct.Struct("!IHBB16s16sHHIIHHHH")
# RFC 791 §3.1: version 4, a 20-byte header, no TOS; Don't Fragment (RFC 1191 §3).
_V4_VERSION_IHL = 0x45
_V4_DF = 0x4000
_V6_VERSION = 0x60000000


def _checksum_field(
    src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, offset_flags: int, window: int,
    options: bytes, payload: ReadableBuffer, length: int, partial: bool,
) -> int:
    """The TCP checksum field (RFC 9293 §3.1): the complement of the pseudo-header's and
    the whole segment's sum (header words as numbers, options and payload folded as
    bytes); or, ``partial``, the pseudo-header's sum alone, folded and not complemented,
    for a device to complete over the segment (virtio spec 1.1 §5.1.6.2: "the TCP
    checksum field ... is set to the sum of the TCP pseudo header"; Linux's
    ``__tcp_v4_send_check`` for ``CHECKSUM_PARTIAL`` stores the same)."""
    residue = _FROM(src, "big") + _FROM(dst, "big") + PROTO_TCP + length
    if partial:
        return residue % 0xFFFF or 0xFFFF
    residue += sport + dport + seq + ack + offset_flags + window
    if options:
        residue += _FROM(options, "big")  # a whole number of 32-bit words
    if payload:
        value = _FROM(payload, "big")
        # RFC 1071 §4.1: an odd byte is padded with a zero to a 16-bit word. The payload
        # starts on a word boundary (the header is a whole number of 32-bit words).
        residue += value << 8 if len(payload) & 1 else value
    return -residue % 0xFFFF


def write_ipv4_tcp(
    buf: WritableBuffer, ident: int, ttl: int, src: bytes, dst: bytes, sport: int, dport: int,
    seq: int, ack: int, flags: int, window: int, options: bytes, payload: ReadableBuffer, partial: bool = False,
    ecn: int = 0,
) -> int:
    """Write an IPv4 packet (20-byte header, Don't Fragment) with one TCP segment at the
    start of ``buf``, which must be exactly that long; return its size. ``partial``: a
    partial TCP checksum, for a device to complete; ``ecn``: the IP header's ECN field
    (RFC 3168 §5: 2 is ECT(0))."""
    header_len = TCP_HEADER + len(options)
    length = header_len + len(payload)
    size = IPV4_HEADER + length
    offset_flags = (header_len << 10) | flags
    tcp_csum = _checksum_field(src, dst, sport, dport, seq, ack, offset_flags, window, options, payload, length, partial)
    ip_sum = (_V4_VERSION_IHL << 8) + ecn + size + ident + _V4_DF + (ttl << 8) + PROTO_TCP
    ip_csum = -(ip_sum + _FROM(src, "big") + _FROM(dst, "big")) % 0xFFFF
    _V4_TCP.pack_into(
        buf, 0, _V4_VERSION_IHL, ecn, size, ident, _V4_DF, ttl, PROTO_TCP, ip_csum, src, dst,
        sport, dport, seq, ack, offset_flags, window, tcp_csum, 0,
    )
    _write_body(buf, IPV4_HEADER + TCP_HEADER, options, payload, size)
    return size


def write_ipv6_tcp(
    buf: WritableBuffer, hop_limit: int, src: bytes, dst: bytes, sport: int, dport: int,
    seq: int, ack: int, flags: int, window: int, options: bytes, payload: ReadableBuffer, partial: bool = False,
    ecn: int = 0,
) -> int:
    """Write an IPv6 packet (no extension headers) with one TCP segment at the start of
    ``buf``, which must be exactly that long; return its size. ``partial``: a partial
    TCP checksum, for a device to complete; ``ecn``: the traffic class's ECN field."""
    header_len = TCP_HEADER + len(options)
    length = header_len + len(payload)
    offset_flags = (header_len << 10) | flags
    tcp_csum = _checksum_field(src, dst, sport, dport, seq, ack, offset_flags, window, options, payload, length, partial)
    _V6_TCP.pack_into(
        buf, 0, _V6_VERSION | (ecn << 20), length, PROTO_TCP, hop_limit, src, dst,
        sport, dport, seq, ack, offset_flags, window, tcp_csum, 0,
    )
    _write_body(buf, IPV6_HEADER + TCP_HEADER, options, payload, IPV6_HEADER + length)
    return IPV6_HEADER + length


def _write_body(buf: WritableBuffer, start: int, options: bytes, payload: ReadableBuffer, end: int) -> None:
    if options:
        buf[start : start + len(options)] = options
        start += len(options)
    if start < end:
        buf[start:end] = payload
