"""Type aliases for the byte buffers that cross the API."""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["ReadableBuffer", "WritableBuffer"]

#: Anything the stack can read packet or payload bytes from.
ReadableBuffer: TypeAlias = bytes | bytearray | memoryview
#: Anything the stack can write an outgoing packet into.
WritableBuffer: TypeAlias = bytearray | memoryview
