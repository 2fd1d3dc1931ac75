"""The Internet checksum (RFC 1071), computed the fastest way pure Python allows.

The one's-complement sum of 16-bit words is congruent to the whole buffer read as one
big-endian integer modulo 0xFFFF, because 2**16 ≡ 1 (mod 0xFFFF). ``int.from_bytes`` and
one ``%`` run in C, so a 1500-byte packet costs about a microsecond; see
``benchmarks/checksum.py`` for the alternatives we measured and rejected.

The only care needed is the two zeros of one's-complement arithmetic: a non-zero buffer
never sums to +0, so a residue of 0 means the sum was 0xFFFF ("-0").
"""

from __future__ import annotations

from ..buffers import ReadableBuffer

__all__ = ["fold", "checksum", "pseudo_header_sum"]

_FROM = int.from_bytes


def fold(data: ReadableBuffer) -> int:
    """Residue of ``data`` summed as 16-bit big-endian words, modulo 0xFFFF.

    An odd length is padded with one zero byte (RFC 1071 §4.1), which multiplies the
    integer by 256.
    """
    value = _FROM(data, "big")
    if len(data) & 1:
        value <<= 8
    return value % 0xFFFF


def checksum(residue: int) -> int:
    """The 16-bit checksum field for a header whose other words sum to ``residue``.

    ``residue`` may be any non-negative sum of :func:`fold` results. Returns the
    one's-complement of the folded sum (RFC 1071 §1), 0 when the sum is 0xFFFF.
    """
    return -residue % 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Residue of the TCP/UDP/ICMPv6 pseudo-header (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1).

    ``src`` and ``dst`` are 4 or 16 packed address bytes. IPv4 puts the protocol and a
    16-bit length in one word; IPv6 uses a 32-bit length and a 32-bit next-header word,
    which sum to the same residue because the words are added, not concatenated.
    """
    return (_FROM(src, "big") + _FROM(dst, "big") + proto + length) % 0xFFFF
