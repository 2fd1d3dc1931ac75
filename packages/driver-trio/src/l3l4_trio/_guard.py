"""A small conflict detector: one task at a time in an operation, else ``BusyResourceError``."""

from __future__ import annotations

import trio

__all__ = ["Guard"]


class Guard:
    """``with guard:`` raises :class:`trio.BusyResourceError` if another task is inside.

    trio's streams refuse concurrent ``send_all`` (or ``receive_some``) rather than
    interleave bytes unpredictably; this is the same rule.
    """

    __slots__ = ("_message", "_held")

    def __init__(self, message: str) -> None:
        self._message = message
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._message)
        self._held = True

    def __exit__(self, *exc: object) -> None:
        self._held = False
