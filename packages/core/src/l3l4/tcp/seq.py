"""Sequence-number arithmetic modulo 2**32 (RFC 9293 §3.4).

Plain functions on ints: the hot path compares sequence numbers several times per
segment, and a wrapper class would cost an object per comparison.
"""

from __future__ import annotations

__all__ = ["MASK", "seq_add", "seq_sub", "seq_lt", "seq_le", "seq_gt", "seq_ge", "seq_max", "seq_min"]

MASK = 0xFFFFFFFF
_HALF = 0x80000000


def seq_add(a: int, n: int) -> int:
    """``a + n`` on the sequence space."""
    return (a + n) & MASK


def seq_sub(a: int, b: int) -> int:
    """The signed distance from ``b`` to ``a``: positive when ``a`` is after ``b``."""
    return ((a - b + _HALF) & MASK) - _HALF


def seq_lt(a: int, b: int) -> bool:
    return ((a - b) & MASK) >= _HALF


def seq_le(a: int, b: int) -> bool:
    return a == b or ((a - b) & MASK) >= _HALF


def seq_gt(a: int, b: int) -> bool:
    return ((b - a) & MASK) >= _HALF


def seq_ge(a: int, b: int) -> bool:
    return a == b or ((b - a) & MASK) >= _HALF


def seq_max(a: int, b: int) -> int:
    return a if seq_ge(a, b) else b


def seq_min(a: int, b: int) -> int:
    return a if seq_le(a, b) else b
