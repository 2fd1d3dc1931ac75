"""``Config``: every limit and knob of a stack, with documented defaults."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Config"]

# RFC 791 §3.2: every IPv4 host must accept 576-byte datagrams; RFC 8200 §5: IPv6 links
# carry at least 1280. Path MTUs learnt from ICMP never go below these.
IPV4_MIN_MTU = 576
IPV6_MIN_MTU = 1280


@dataclass(frozen=True, slots=True)
class Config:
    """Settings for a :class:`~l3l4.Stack`. Frozen: build a new one to change anything.

    Every resource the stack holds on behalf of peers is bounded by a field here.
    Raises :class:`ValueError` for values that cannot work.
    """

    mtu: int = 1500
    """Largest L3 packet the stack emits, before any ICMP lowers a flow's path MTU."""
    ttl: int = 64
    """TTL (IPv4) and hop limit (IPv6) of outgoing packets."""
    rx_checksum_verified: bool = False
    """The driver has already verified (or offloaded) every checksum of incoming
    packets: skip verification. The IPv4 header checksum is skipped too."""
    max_udp_flows: int = 16384
    """UDP flows kept at once; one more evicts the least recently used
    (``FlowClosed(EVICTED)``)."""
    udp_idle_timeout: float = 60.0
    """Seconds without a datagram either way before a UDP flow closes
    (``FlowClosed(IDLE)``)."""
    icmp_echo: bool = True
    """Answer ICMP and ICMPv6 echo requests sent to any address."""
    icmp_errors: bool = True
    """Send the ICMP errors the RFCs ask of a destination host; today that is
    "fragment reassembly time exceeded" (RFC 792, RFC 8200 §4.5)."""
    max_extension_headers: int = 8
    """IPv6 extension headers walked before the packet is dropped."""
    fragment_timeout: float = 30.0
    """Seconds to wait for the rest of a fragmented datagram (RFC 791 §3.2 suggests 15,
    RFC 8200 §4.5 says 60; Linux uses 30 for both)."""
    max_reassembly_datagrams: int = 256
    """Fragmented datagrams being reassembled at once."""
    max_fragments_per_datagram: int = 64
    """Fragments held for one datagram."""
    max_reassembly_bytes: int = 4 * 1024 * 1024
    """Payload bytes held across all datagrams being reassembled."""
    secret: bytes | None = None
    """Key for values a peer must not guess (IP IDs now; ISNs and SYN cookies later).
    ``None`` draws 32 random bytes per stack; set it for reproducible runs."""

    def __post_init__(self) -> None:
        if not IPV4_MIN_MTU <= self.mtu <= 65535:
            raise ValueError(f"mtu {self.mtu} is outside {IPV4_MIN_MTU}..65535")
        if not 1 <= self.ttl <= 255:
            raise ValueError(f"ttl {self.ttl} is outside 1..255")
        for name in (
            "max_udp_flows",
            "max_extension_headers",
            "max_reassembly_datagrams",
            "max_fragments_per_datagram",
            "max_reassembly_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("udp_idle_timeout", "fragment_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
