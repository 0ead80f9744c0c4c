"""Waiting in a test for a condition to hold, failing with what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    what: str, predicate: Callable[[], T], timeout: float = 120.0, poll: float = 0.02
) -> T:
    """``predicate``'s first truthy value, asked every ``poll`` seconds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
