"""Flows: the 5-tuple that names one TCP connection or one UDP conversation."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

__all__ = ["Proto", "Flow", "IPAddress", "flow_key"]

IPAddress = IPv4Address | IPv6Address


class Proto(enum.IntEnum):
    """The transport protocol of a flow; the values are IP protocol numbers."""

    TCP = 6
    UDP = 17


def flow_key(proto: int, local_ip: bytes, local_port: bytes, remote_ip: bytes, remote_port: bytes) -> bytes:
    """The packed key the flow table is indexed by on the hot path.

    Ports are the two big-endian bytes as they sit in the transport header, so a receive
    path builds the key from slices of the packet without unpacking anything.
    """
    return bytes((proto,)) + local_ip + local_port + remote_ip + remote_port


@dataclass(frozen=True, slots=True)
class Flow:
    """One transport flow, seen from the stack's side.

    ``local_ip``/``local_port`` are the stack's end: the address the peer sent to,
    whatever it is. ``remote_ip``/``remote_port`` are the peer. Flows are hashable and
    compare by value, so applications can key their own tables by them.

    Raises :class:`ValueError` when the two addresses are of different IP versions or a
    port is outside 1..65535.
    """

    proto: Proto
    local_ip: IPAddress
    local_port: int
    remote_ip: IPAddress
    remote_port: int
    key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.local_ip.version != self.remote_ip.version:
            raise ValueError(f"flow mixes IPv{self.local_ip.version} and IPv{self.remote_ip.version} addresses")
        for port in (self.local_port, self.remote_port):
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is outside 1..65535")
        key = flow_key(
            Proto(self.proto),
            self.local_ip.packed,
            self.local_port.to_bytes(2, "big"),
            self.remote_ip.packed,
            self.remote_port.to_bytes(2, "big"),
        )
        object.__setattr__(self, "key", key)

    def __hash__(self) -> int:
        return hash(self.key)

    @classmethod
    def from_key(cls, key: bytes) -> Flow:
        """Rebuild the flow a packed key names (the inverse of :func:`flow_key`)."""
        width = (len(key) - 5) // 2
        local_end = 1 + width
        return cls(
            Proto(key[0]),
            ip_address(key[1:local_end]),
            int.from_bytes(key[local_end : local_end + 2], "big"),
            ip_address(key[local_end + 2 : local_end + 2 + width]),
            int.from_bytes(key[-2:], "big"),
        )

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.local_ip.version

    def reversed(self) -> Flow:
        """The same flow as the peer sees it: local and remote swapped."""
        return Flow(self.proto, self.remote_ip, self.remote_port, self.local_ip, self.local_port)
