"""UDP flows for any address: a table kept in least-recently-used order."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from .flow import Flow

__all__ = ["UdpFlow", "UdpTable"]


class UdpFlow:
    """The state of one UDP conversation: its packed addresses, when it was last used
    and its path MTU."""

    __slots__ = ("flow", "local", "remote", "last_active", "mtu")

    def __init__(self, flow: Flow, now: float, mtu: int) -> None:
        self.flow = flow
        self.local = flow.local_ip.packed
        self.remote = flow.remote_ip.packed
        self.last_active = now
        self.mtu = mtu


class UdpTable:
    """UDP flows by packed key, least recently used first.

    Because every use moves a flow to the end, the flow at the front is both the next
    to evict and the next to go idle: expiry and eviction never scan.
    """

    __slots__ = ("_flows", "idle_timeout")

    def __init__(self, idle_timeout: float) -> None:
        self._flows: OrderedDict[bytes, UdpFlow] = OrderedDict()
        self.idle_timeout = idle_timeout

    def __len__(self) -> int:
        return len(self._flows)

    def __iter__(self) -> Iterator[UdpFlow]:
        return iter(self._flows.values())

    def get(self, key: bytes) -> UdpFlow | None:
        return self._flows.get(key)

    def touch(self, key: bytes, state: UdpFlow, now: float) -> None:
        """Mark a flow used at ``now``."""
        state.last_active = now
        self._flows.move_to_end(key)

    def add(self, state: UdpFlow) -> None:
        self._flows[state.flow.key] = state

    def remove(self, key: bytes) -> UdpFlow | None:
        return self._flows.pop(key, None)

    def pop_oldest(self) -> UdpFlow:
        return self._flows.popitem(last=False)[1]

    def pop_idle(self, now: float) -> UdpFlow | None:
        """Remove and return the least recently used flow if it has been idle too long."""
        if not self._flows:
            return None
        state = next(iter(self._flows.values()))
        if state.last_active + self.idle_timeout > now:
            return None
        del self._flows[state.flow.key]
        return state

    def next_deadline(self) -> float | None:
        for state in self._flows.values():
            return state.last_active + self.idle_timeout
        return None
