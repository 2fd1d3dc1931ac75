"""Initial sequence numbers (RFC 6528) and timestamp offsets (RFC 7323 §7.1)."""

from __future__ import annotations

import hashlib

__all__ = ["IsnGenerator"]


class IsnGenerator:
    """ISN = M + F(4-tuple, secret), where M is a 4-microsecond clock (RFC 6528 §3).

    F is a keyed BLAKE2s hash, so an off-path attacker who cannot learn the secret cannot
    predict the ISN of one connection from another's. The same keyed hash gives each
    connection a random offset for its TCP timestamps (RFC 7323 §7.1), so timestamps
    leak no global clock.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _hash(self, label: bytes, flow_key: bytes) -> int:
        digest = hashlib.blake2s(label + flow_key, key=self._key, digest_size=4).digest()
        return int.from_bytes(digest, "big")

    def isn(self, flow_key: bytes, now: float) -> int:
        return (int(now * 250_000) + self._hash(b"isn", flow_key)) & 0xFFFFFFFF

    def timestamp_offset(self, flow_key: bytes) -> int:
        return self._hash(b"ts", flow_key)
