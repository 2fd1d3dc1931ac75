"""Fragment reassembly with bounded memory and time (RFC 791 §3.2, RFC 8200 §4.5,
RFC 5722)."""

from __future__ import annotations

from ..config import Config
from ..stats import DropReason
from ..wire.ip import IPV6_HEADER, IpPacket
from ..wire.malformed import Malformed

__all__ = ["Reassembler", "Expired"]

_MAX_DATAGRAM = 65535


class _Pending:
    """One datagram being reassembled."""

    __slots__ = ("deadline", "pieces", "size", "total", "first")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.pieces: list[tuple[int, int, bytes]] = []
        self.size = 0
        self.total: int | None = None
        self.first: IpPacket | None = None


class Expired:
    """A datagram given up on: its first fragment, if one came, for the ICMP error."""

    __slots__ = ("first",)

    def __init__(self, first: IpPacket | None) -> None:
        self.first = first


class Reassembler:
    """Holds fragments until their datagram is whole, within ``Config``'s caps.

    New datagrams beyond ``max_reassembly_datagrams`` or fragments that would go past
    ``max_reassembly_bytes`` are dropped (``FRAGMENT_LIMIT``); what is held is never
    evicted for newcomers, so a flood cannot flush datagrams already under way.
    Datagrams are kept in arrival order, which is also deadline order.
    """

    __slots__ = ("_config", "_pending", "_bytes")

    def __init__(self, config: Config) -> None:
        self._config = config
        self._pending: dict[bytes, _Pending] = {}
        self._bytes = 0

    @property
    def bytes_held(self) -> int:
        """Payload bytes currently held across all datagrams."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, packet: IpPacket, now: float) -> IpPacket | None:
        """Take one fragment; return the whole datagram once its last piece arrives.

        Raises :class:`Malformed` for a fragment that must be dropped; where the rules say
        so (overlaps, contradictions) the datagram's other fragments go with it.
        """
        config = self._config
        data = packet.payload
        start = packet.fragment_offset
        end = start + len(data)
        more = packet.more_fragments
        # RFC 8200 §4.5: a fragment other than the last must carry a multiple of 8 bytes.
        if more and (not data or len(data) % 8):
            raise Malformed(DropReason.BAD_FRAGMENT)
        unfragmentable = len(packet.header) if packet.version == 4 else len(packet.header) - IPV6_HEADER - 8
        if end + unfragmentable > _MAX_DATAGRAM:
            raise Malformed(DropReason.FRAGMENT_TOO_LARGE)
        if packet.version == 4:
            key = b"\x04" + packet.src + packet.dst + bytes((packet.proto,)) + packet.fragment_id.to_bytes(2, "big")
        else:
            key = b"\x06" + packet.src + packet.dst + packet.fragment_id.to_bytes(4, "big")
        pending = self._pending.get(key)
        if self._bytes + len(data) > config.max_reassembly_bytes:
            raise Malformed(DropReason.FRAGMENT_LIMIT)
        if pending is None:
            if len(self._pending) >= config.max_reassembly_datagrams:
                raise Malformed(DropReason.FRAGMENT_LIMIT)
            pending = self._pending[key] = _Pending(now + config.fragment_timeout)
        if not more:
            if (pending.total is not None and pending.total != end) or any(
                piece_end > end for _, piece_end, _ in pending.pieces
            ):
                self._discard(key, pending)
                raise Malformed(DropReason.BAD_FRAGMENT)
            pending.total = end
        elif pending.total is not None and end > pending.total:
            self._discard(key, pending)
            raise Malformed(DropReason.BAD_FRAGMENT)
        for piece_start, piece_end, held in pending.pieces:
            if piece_start < end and start < piece_end:
                if piece_start == start and piece_end == end and held == data:
                    raise Malformed(DropReason.FRAGMENT_DUPLICATE)
                # RFC 5722 §3 (and, for IPv4, the same defence RFC 1858 §4 asks for):
                # overlapping fragments discard the whole datagram.
                self._discard(key, pending)
                raise Malformed(DropReason.FRAGMENT_OVERLAP)
        if len(pending.pieces) >= config.max_fragments_per_datagram:
            self._discard(key, pending)
            raise Malformed(DropReason.FRAGMENT_LIMIT)
        piece = bytes(data)
        pending.pieces.append((start, end, piece))
        pending.size += len(data)
        self._bytes += len(data)
        if start == 0:
            # A copy: the caller may reuse the buffer the fragment came in.
            pending.first = IpPacket(
                packet.version,
                packet.src,
                packet.dst,
                packet.proto,
                packet.ttl,
                memoryview(bytes(packet.header)),
                memoryview(piece),
            )
        if pending.size != pending.total:
            return None
        self._discard(key, pending)
        first = pending.first
        assert first is not None  # the pieces cover 0..total without overlap
        pending.pieces.sort()
        payload = b"".join(piece for _, _, piece in pending.pieces)
        return IpPacket(
            packet.version, packet.src, packet.dst, first.proto, first.ttl, first.header, memoryview(payload)
        )

    def expire(self, now: float) -> list[Expired]:
        """Give up on every datagram whose time ran out by ``now``."""
        expired = []
        while self._pending:
            key = next(iter(self._pending))
            pending = self._pending[key]
            if pending.deadline > now:
                break
            self._discard(key, pending)
            expired.append(Expired(pending.first))
        return expired

    def next_deadline(self) -> float | None:
        for pending in self._pending.values():
            return pending.deadline
        return None

    def _discard(self, key: bytes, pending: _Pending) -> None:
        del self._pending[key]
        self._bytes -= pending.size

