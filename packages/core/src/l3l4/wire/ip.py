"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers: parse, verify, build."""

from __future__ import annotations

import struct

from ..buffers import ReadableBuffer, WritableBuffer
from ..stats import DropReason
from .checksum import checksum, fold
from .malformed import Malformed

__all__ = [
    "IpPacket",
    "parse_ip",
    "write_ipv4_header",
    "write_ipv6_header",
    "write_ipv6_fragment_header",
    "IPV4_HEADER",
    "IPV6_HEADER",
    "FRAGMENT_HEADER",
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "PROTO_ICMPV6",
    "PROTO_FRAGMENT",
]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58
PROTO_HOP_BY_HOP = 0
PROTO_ROUTING = 43
PROTO_FRAGMENT = 44
PROTO_DEST_OPTIONS = 60
PROTO_NO_NEXT = 59

IPV4_HEADER = 20
IPV6_HEADER = 40
FRAGMENT_HEADER = 8

_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6 = struct.Struct("!IHBB16s16s")
_V6_FRAGMENT = struct.Struct("!BBHI")
_V4_ANY = bytes(4)
_V6_ANY = bytes(16)
_V4_MF = 0x2000
_V4_DF = 0x4000
_V4_OFFSET = 0x1FFF

# RFC 8200 §4: extension headers that carry a length byte in 8-octet units.
_EXTENSION_HEADERS = frozenset((PROTO_HOP_BY_HOP, PROTO_ROUTING, PROTO_DEST_OPTIONS))


class IpPacket:
    """One parsed IP packet: packed addresses, the upper-layer protocol and its bytes.

    ``header`` is the packet up to the payload (IPv4 header with options, or IPv6 header
    with every extension header), kept for quoting in ICMP errors. A fragment has
    ``fragment_offset``/``more_fragments``/``fragment_id`` set; ``is_fragment`` tells.
    """

    __slots__ = (
        "version",
        "src",
        "dst",
        "proto",
        "ttl",
        "header",
        "payload",
        "fragment_id",
        "fragment_offset",
        "more_fragments",
    )

    def __init__(
        self,
        version: int,
        src: bytes,
        dst: bytes,
        proto: int,
        ttl: int,
        header: memoryview,
        payload: memoryview,
        fragment_id: int = 0,
        fragment_offset: int = 0,
        more_fragments: bool = False,
    ) -> None:
        self.version = version
        self.src = src
        self.dst = dst
        self.proto = proto
        self.ttl = ttl
        self.header = header
        self.payload = payload
        self.fragment_id = fragment_id
        self.fragment_offset = fragment_offset
        self.more_fragments = more_fragments

    @property
    def is_fragment(self) -> bool:
        return self.more_fragments or self.fragment_offset != 0


def parse_ip(data: ReadableBuffer, verify: bool = True, max_extension_headers: int = 8) -> IpPacket:
    """Parse one IPv4 or IPv6 packet. Raises :class:`Malformed` with the drop reason.

    Bytes past the length the header declares (link-layer padding) are ignored.
    """
    view = memoryview(data)
    if not view:
        raise Malformed(DropReason.TRUNCATED)
    version = view[0] >> 4
    if version == 4:
        return _parse_ipv4(view, verify)
    if version == 6:
        return _parse_ipv6(view, max_extension_headers)
    raise Malformed(DropReason.BAD_VERSION)


def _parse_ipv4(view: memoryview, verify: bool) -> IpPacket:
    size = len(view)
    if size < IPV4_HEADER:
        raise Malformed(DropReason.TRUNCATED)
    ver_ihl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = _V4.unpack_from(view)
    header_len = (ver_ihl & 0x0F) * 4
    if header_len < IPV4_HEADER:
        raise Malformed(DropReason.BAD_HEADER_LENGTH)
    if total > size:
        raise Malformed(DropReason.BAD_TOTAL_LENGTH)
    if header_len > total:
        raise Malformed(DropReason.BAD_HEADER_LENGTH)
    # RFC 791 §3.1: the checksum covers the header only.
    if verify and fold(view[:header_len]) != 0:
        raise Malformed(DropReason.BAD_IP_CHECKSUM)
    if ttl == 0:
        raise Malformed(DropReason.TTL_EXPIRED)
    # RFC 1122 §3.2.1.3: drop what comes from, or goes to, no single host.
    if src[0] >= 224 or dst[0] >= 224 or src == _V4_ANY or dst == _V4_ANY:
        raise Malformed(DropReason.BAD_ADDRESS)
    if header_len > IPV4_HEADER:
        _check_ipv4_options(view[IPV4_HEADER:header_len])
    return IpPacket(
        4,
        src,
        dst,
        proto,
        ttl,
        view[:header_len],
        view[header_len:total],
        ident,
        (frag & _V4_OFFSET) * 8,
        bool(frag & _V4_MF),
    )


def _check_ipv4_options(options: memoryview) -> None:
    """Walk the options only to prove they fit (RFC 791 §3.1); none of them is acted on."""
    index = 0
    end = len(options)
    while index < end:
        kind = options[index]
        if kind == 0:  # end of option list
            return
        if kind == 1:  # no operation
            index += 1
            continue
        if index + 1 >= end or options[index + 1] < 2 or index + options[index + 1] > end:
            raise Malformed(DropReason.BAD_IPV4_OPTIONS)
        index += options[index + 1]


def _parse_ipv6(view: memoryview, max_extension_headers: int) -> IpPacket:
    size = len(view)
    if size < IPV6_HEADER:
        raise Malformed(DropReason.TRUNCATED)
    _vtcfl, payload_len, next_header, hop_limit, src, dst = _V6.unpack_from(view)
    end = IPV6_HEADER + payload_len
    if end > size:
        raise Malformed(DropReason.BAD_TOTAL_LENGTH)
    if hop_limit == 0:
        raise Malformed(DropReason.TTL_EXPIRED)
    # RFC 4291 §2.5.2, §2.7: the unspecified and multicast addresses name no single host.
    if src[0] == 0xFF or dst[0] == 0xFF or src == _V6_ANY or dst == _V6_ANY:
        raise Malformed(DropReason.BAD_ADDRESS)
    offset = IPV6_HEADER
    fragment_id = fragment_offset = 0
    more_fragments = fragmented = False
    seen = 0
    while next_header in _EXTENSION_HEADERS or next_header == PROTO_FRAGMENT:
        seen += 1
        if seen > max_extension_headers:
            raise Malformed(DropReason.TOO_MANY_EXTENSION_HEADERS)
        if offset + 8 > end:
            raise Malformed(DropReason.BAD_EXTENSION_HEADER)
        # RFC 8200 §4.1: hop-by-hop options may only follow the IPv6 header.
        if next_header == PROTO_HOP_BY_HOP and offset != IPV6_HEADER:
            raise Malformed(DropReason.BAD_EXTENSION_HEADER)
        if next_header == PROTO_FRAGMENT:
            # RFC 8200 §4.5; a second fragment header in one chain is malformed.
            if fragmented:
                raise Malformed(DropReason.BAD_EXTENSION_HEADER)
            fragmented = True
            header, _reserved, offset_flags, fragment_id = _V6_FRAGMENT.unpack_from(view, offset)
            fragment_offset = offset_flags & 0xFFF8
            more_fragments = bool(offset_flags & 1)
            length = FRAGMENT_HEADER
        else:
            header = view[offset]
            length = (view[offset + 1] + 1) * 8
            if offset + length > end:
                raise Malformed(DropReason.BAD_EXTENSION_HEADER)
            # RFC 8200 §4.4: with segments left, the packet is still on its way to a
            # later hop of its route; we are not its destination.
            if next_header == PROTO_ROUTING and view[offset + 3] != 0:
                raise Malformed(DropReason.ROUTING_HEADER)
        next_header = header
        offset += length
    if next_header == PROTO_NO_NEXT:
        raise Malformed(DropReason.UNSUPPORTED_PROTOCOL)
    return IpPacket(
        6,
        src,
        dst,
        next_header,
        hop_limit,
        view[:offset],
        view[offset:end],
        fragment_id,
        fragment_offset,
        more_fragments,
    )


def write_ipv4_header(
    buf: WritableBuffer,
    total: int,
    ident: int,
    proto: int,
    ttl: int,
    src: bytes,
    dst: bytes,
    fragment_offset: int = 0,
    more_fragments: bool = False,
    dont_fragment: bool = False,
) -> None:
    """Write a 20-byte IPv4 header with its checksum at the start of ``buf``."""
    frag = (fragment_offset >> 3) | (_V4_MF if more_fragments else 0) | (_V4_DF if dont_fragment else 0)
    _V4.pack_into(buf, 0, 0x45, 0, total, ident, frag, ttl, proto, 0, src, dst)
    struct.pack_into("!H", buf, 10, checksum(fold(memoryview(buf)[:IPV4_HEADER])))


def write_ipv6_header(
    buf: WritableBuffer, payload_len: int, next_header: int, hop_limit: int, src: bytes, dst: bytes
) -> None:
    """Write a 40-byte IPv6 header (traffic class and flow label 0) at the start of ``buf``."""
    _V6.pack_into(buf, 0, 0x60000000, payload_len, next_header, hop_limit, src, dst)


def write_ipv6_fragment_header(
    buf: WritableBuffer, offset: int, next_header: int, fragment_offset: int, more: bool, ident: int
) -> None:
    """Write an 8-byte IPv6 fragment header (RFC 8200 §4.5) at ``offset`` in ``buf``."""
    _V6_FRAGMENT.pack_into(buf, offset, next_header, 0, fragment_offset | int(more), ident)
