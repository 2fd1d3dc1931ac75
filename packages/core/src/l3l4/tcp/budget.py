"""The stack-wide budget of bytes that TCP connections hold for their peers."""

from __future__ import annotations

__all__ = ["BufferBudget"]


class BufferBudget:
    """``Config.max_tcp_buffer_bytes``: the bytes all connections together hold in send
    buffers and out-of-order data. Every buffer that holds bytes counts them here, and
    takes none past ``limit``."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def free(self) -> int:
        return max(self.limit - self.used, 0)
