"""Shared fixtures for the core tests."""

from __future__ import annotations

import pytest

from l3l4 import Config, Stack

SECRET = b"l3l4-test-secret"


@pytest.fixture
def stack() -> Stack[bytearray]:
    """A stack with default limits and a fixed secret."""
    return Stack(Config(secret=SECRET))
