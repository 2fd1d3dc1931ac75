"""Turning transport datagrams into IP packets in the caller's buffers, fragmenting
what does not fit the path MTU (RFC 791 §3.2, RFC 8200 §4.5)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Generic, TypeVar

from ..buffers import ReadableBuffer
from ..errors import TxBufferError
from ..stats import DropReason, Stats
from ..wire.checksum import pseudo_header_sum
from ..wire.icmp import write_icmp
from ..wire.ip import (
    FRAGMENT_HEADER,
    IPV4_HEADER,
    IPV6_HEADER,
    PROTO_FRAGMENT,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    write_ipv4_header,
    write_ipv6_fragment_header,
    write_ipv6_header,
)
from ..wire.tcp import TCP_HEADER, write_tcp
from ..wire.tcp_packet import write_ipv4_tcp, write_ipv6_tcp
from ..wire.udp import write_udp

__all__ = ["PacketWriter"]

P = TypeVar("P")


class PacketWriter(Generic[P]):
    """Builds outgoing packets straight into buffers from the ``alloc`` callable.

    Each ``send_*`` method appends the packets it built to ``out`` and returns ``True``,
    or counts ``TX_BUFFER_EXHAUSTED`` and returns ``False`` when the caller's allocator
    had no buffer: a datagram is sent whole or not at all.
    """

    __slots__ = ("_alloc", "_view", "_stats", "_ttl", "_ipv4_id", "_ipv6_id", "_secret", "_tcp_partial")

    def __init__(
        self,
        alloc: Callable[[int], P | None],
        view: Callable[[P], memoryview],
        stats: Stats,
        ttl: int,
        secret: bytes,
        tcp_partial_checksum: bool = False,
    ) -> None:
        self._alloc = alloc
        self._view = view
        self._stats = stats
        self._ttl = ttl
        self._secret = secret
        self._ipv4_id = int.from_bytes(hashlib.blake2s(b"ipv4-id", key=secret).digest()[:2], "big")
        self._ipv6_id = 0
        # Config.tcp_checksum_offload: TCP segments carry a partial checksum.
        self._tcp_partial = tcp_partial_checksum

    def send_udp(
        self, out: list[P], src: bytes, dst: bytes, sport: int, dport: int, payload: ReadableBuffer, mtu: int
    ) -> bool:
        """One UDP datagram, fragmented if it is larger than ``mtu``."""
        return self._send(out, src, dst, PROTO_UDP, 8 + len(payload), mtu, write_udp, src, dst, sport, dport, payload)

    def send_tcp(
        self,
        out: list[P],
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        options: bytes,
        payload: ReadableBuffer,
        mtu: int,
    ) -> bool:
        """One TCP segment; over IPv4 with Don't Fragment set (RFC 1191 §3)."""
        length = TCP_HEADER + len(options) + len(payload)
        ipv4 = len(src) == 4
        size = (IPV4_HEADER if ipv4 else IPV6_HEADER) + length
        if size > mtu:
            return self._send(
                out, src, dst, PROTO_TCP, length, mtu, write_tcp,
                src, dst, sport, dport, seq, ack, flags, window, options, payload,
            )
        # The common case, in one pass (l3l4.wire.tcp_packet).
        got = self._buffer(size)
        if got is None:
            return False
        packet, view = got
        if ipv4:
            write_ipv4_tcp(
                view, self._next_ipv4_id(), self._ttl, src, dst, sport, dport, seq, ack, flags, window, options,
                payload, self._tcp_partial,
            )
        else:
            write_ipv6_tcp(
                view, self._ttl, src, dst, sport, dport, seq, ack, flags, window, options, payload, self._tcp_partial
            )
        out.append(packet)
        stats = self._stats
        stats.tx_packets += 1
        stats.tx_bytes += size
        return True

    def send_icmp(
        self, out: list[P], src: bytes, dst: bytes, icmp_type: int, code: int, rest: int, body: ReadableBuffer, mtu: int
    ) -> bool:
        """One ICMP (IPv4 addresses) or ICMPv6 (IPv6 addresses) message."""
        length = 8 + len(body)
        if len(src) == 4:
            return self._send(out, src, dst, PROTO_ICMP, length, mtu, write_icmp, icmp_type, code, rest, body)
        pseudo = pseudo_header_sum(src, dst, PROTO_ICMPV6, length)
        return self._send(out, src, dst, PROTO_ICMPV6, length, mtu, write_icmp, icmp_type, code, rest, body, pseudo)

    def _buffer(self, size: int) -> tuple[P, memoryview] | None:
        packet = self._alloc(size)
        if packet is None:
            self._stats.drops[DropReason.TX_BUFFER_EXHAUSTED] += 1
            return None
        view = self._view(packet)
        if len(view) != size:
            raise TxBufferError(f"tx_buffer returned {len(view)} bytes for a {size}-byte packet")
        return packet, view

    def _send(
        self,
        out: list[P],
        src: bytes,
        dst: bytes,
        proto: int,
        length: int,
        mtu: int,
        write_l4: Callable[..., None],
        *args: object,
    ) -> bool:
        header = IPV4_HEADER if len(src) == 4 else IPV6_HEADER
        if header + length <= mtu:
            got = self._buffer(header + length)
            if got is None:
                return False
            packet, view = got
            write_l4(view, header, *args)
            if header == IPV4_HEADER:
                write_ipv4_header(
                    view, header + length, self._next_ipv4_id(), proto, self._ttl, src, dst,
                    dont_fragment=proto == PROTO_TCP,
                )
            else:
                write_ipv6_header(view, length, proto, self._ttl, src, dst)
            out.append(packet)
            self._stats.tx_packets += 1
            self._stats.tx_bytes += header + length
            return True
        datagram = bytearray(length)
        write_l4(datagram, 0, *args)
        return self._fragment(out, src, dst, proto, datagram, mtu)

    def _fragment(self, out: list[P], src: bytes, dst: bytes, proto: int, datagram: bytearray, mtu: int) -> bool:
        """Split ``datagram`` into fragments of at most ``mtu`` bytes; every fragment but
        the last carries a multiple of 8 payload bytes."""
        ipv4 = len(src) == 4
        header = IPV4_HEADER if ipv4 else IPV6_HEADER + FRAGMENT_HEADER
        step = (mtu - header) // 8 * 8
        size = len(datagram)
        buffers = []
        for start in range(0, size, step):
            got = self._buffer(header + min(step, size - start))
            if got is None:
                return False
            buffers.append(got)
        ident = self._next_ipv4_id() if ipv4 else self._next_ipv6_id()
        source = memoryview(datagram)
        for (packet, view), start in zip(buffers, range(0, size, step)):
            chunk = source[start : start + step]
            more = start + step < size
            view[header:] = chunk
            if ipv4:
                write_ipv4_header(view, len(view), ident, proto, self._ttl, src, dst, start, more)
            else:
                write_ipv6_header(view, FRAGMENT_HEADER + len(chunk), PROTO_FRAGMENT, self._ttl, src, dst)
                write_ipv6_fragment_header(view, IPV6_HEADER, proto, start, more, ident)
            out.append(packet)
            self._stats.tx_bytes += len(view)
        self._stats.tx_packets += len(buffers)
        self._stats.fragments_sent += len(buffers)
        return True

    def _next_ipv4_id(self) -> int:
        # RFC 6864 §4.1: unique per source, destination and protocol while fragments of
        # the datagram may live; a counter from a secret start satisfies that.
        self._ipv4_id = (self._ipv4_id + 1) & 0xFFFF
        return self._ipv4_id

    def _next_ipv6_id(self) -> int:
        # RFC 7739 §5: fragment identifications must not be predictable.
        self._ipv6_id += 1
        digest = hashlib.blake2s(self._ipv6_id.to_bytes(8, "big"), key=self._secret, digest_size=4).digest()
        return int.from_bytes(digest, "big")
