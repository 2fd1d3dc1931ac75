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

    Each ``send_*`` method hands the packets it built to ``transmit`` at once (each
    before the next buffer is asked for, so a pool of one buffer that ``transmit``
    recycles is enough), or appends them to ``out`` when there is no ``transmit``. It
    returns ``True``, or ``False`` when the allocator had no buffer: a datagram is
    sent whole or not at all (with ``transmit``, fragments already handed over stay
    sent). ``Stats.tx_buffer_unavailable`` counts every ``None``; a packet that will
    not be sent later (``deferrable=False``) is also a ``TX_BUFFER_EXHAUSTED`` drop.

    With ``errors`` (a list), an exception from ``alloc``, ``view`` or ``transmit``, or
    a buffer of the wrong size, is appended there instead of raised: the packet is not
    sent and is counted as a ``TX_CALLBACK_FAILED`` drop, and the caller's work goes on.
    """

    __slots__ = (
        "_alloc", "_view", "_transmit", "_errors", "_stats", "_ttl", "_ipv4_id", "_ipv6_id", "_secret",
        "_tcp_partial",
    )

    def __init__(
        self,
        alloc: Callable[[int], P | None],
        view: Callable[[P], memoryview],
        stats: Stats,
        ttl: int,
        secret: bytes,
        tcp_partial_checksum: bool = False,
        transmit: Callable[[P, int], None] | None = None,
        errors: list[Exception] | None = None,
    ) -> None:
        self._alloc = alloc
        self._view = view
        self._transmit = transmit
        self._errors = errors
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
        deferrable: bool = False,
        ecn: int = 0,
    ) -> bool:
        """One TCP segment; over IPv4 with Don't Fragment set (RFC 1191 §3).
        ``deferrable``: the caller keeps the segment to send later if this fails;
        ``ecn``: the ECN field (RFC 3168; not on a segment that must be fragmented)."""
        length = TCP_HEADER + len(options) + len(payload)
        ipv4 = len(src) == 4
        size = (IPV4_HEADER if ipv4 else IPV6_HEADER) + length
        if size > mtu:
            return self._send(
                out, src, dst, PROTO_TCP, length, mtu, write_tcp,
                src, dst, sport, dport, seq, ack, flags, window, options, payload, deferrable=deferrable,
            )
        # The common case, in one pass (l3l4.wire.tcp_packet).
        got = self._buffer(size, deferrable)
        if got is None:
            return False
        packet, view = got
        if ipv4:
            write_ipv4_tcp(
                view, self._next_ipv4_id(), self._ttl, src, dst, sport, dport, seq, ack, flags, window, options,
                payload, self._tcp_partial, ecn,
            )
        else:
            write_ipv6_tcp(
                view, self._ttl, src, dst, sport, dport, seq, ack, flags, window, options, payload, self._tcp_partial,
                ecn,
            )
        self._emit(out, packet, size)
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

    def _buffer(self, size: int, deferrable: bool = False) -> tuple[P, memoryview] | None:
        """A buffer and a view of exactly ``size`` bytes at its start, or ``None``."""
        try:
            packet = self._alloc(size)
            if packet is None:
                stats = self._stats
                stats.tx_buffer_unavailable += 1
                if not deferrable:
                    stats.drops[DropReason.TX_BUFFER_EXHAUSTED] += 1
                return None
            view = self._view(packet)
            if len(view) != size:
                if len(view) < size or self._transmit is None:
                    raise TxBufferError(
                        f"tx_buffer gave a buffer of {len(view)} bytes for a {size}-byte packet"
                        + ("" if len(view) < size else " (a longer one needs a transmit callable told the length)")
                    )
                # An mbuf larger than the packet: the packet fills its start.
                view = view[:size]
        except Exception as error:
            if self._errors is None:
                raise
            self._failed(error)
            return None
        return packet, view

    def _emit(self, out: list[P], packet: P, size: int) -> None:
        """Hand one finished packet over: to ``transmit`` now, or into ``out``."""
        transmit = self._transmit
        if transmit is None:
            out.append(packet)
        else:
            try:
                transmit(packet, size)
            except Exception as error:
                if self._errors is None:
                    raise
                self._failed(error)
                return
        stats = self._stats
        stats.tx_packets += 1
        stats.tx_bytes += size

    def _failed(self, error: Exception) -> None:
        assert self._errors is not None
        self._errors.append(error)
        self._stats.drops[DropReason.TX_CALLBACK_FAILED] += 1

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
        deferrable: bool = False,
    ) -> bool:
        header = IPV4_HEADER if len(src) == 4 else IPV6_HEADER
        if header + length <= mtu:
            got = self._buffer(header + length, deferrable)
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
            self._emit(out, packet, header + length)
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
        starts = range(0, size, step)
        buffers: list[tuple[P, memoryview] | None] = []
        if self._transmit is None:
            # Every buffer first: into ``out`` goes the whole datagram or none of it.
            for start in starts:
                got = self._buffer(header + min(step, size - start))
                if got is None:
                    return False
                buffers.append(got)
        ident = self._next_ipv4_id() if ipv4 else self._next_ipv6_id()
        source = memoryview(datagram)
        for index, start in enumerate(starts):
            # With ``transmit``, each fragment's buffer is asked for once the one
            # before it has gone (and may have come back to the pool).
            got = buffers[index] if buffers else self._buffer(header + min(step, size - start))
            if got is None:
                return False
            packet, view = got
            chunk = source[start : start + step]
            more = start + step < size
            view[header:] = chunk
            if ipv4:
                write_ipv4_header(view, len(view), ident, proto, self._ttl, src, dst, start, more)
            else:
                write_ipv6_header(view, FRAGMENT_HEADER + len(chunk), PROTO_FRAGMENT, self._ttl, src, dst)
                write_ipv6_fragment_header(view, IPV6_HEADER, proto, start, more, ident)
            self._emit(out, packet, len(view))
            self._stats.fragments_sent += 1
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
