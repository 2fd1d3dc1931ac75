"""The one exception the codec raises for a packet it must drop."""

from __future__ import annotations

from ..stats import DropReason

__all__ = ["Malformed"]


class Malformed(Exception):
    """Raised inside the codec for a bad packet; the stack catches it and counts ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: DropReason) -> None:
        super().__init__(reason.value)
        self.reason = reason
