"""Waiting in a test for a condition to hold or a server to answer, failing with what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from subprocess import Popen
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


def wait_answering(
    what: str, probe: Callable[[], object], process: Popen[bytes], timeout: float
) -> None:
    """Call ``probe`` until it no longer raises OSError (connection refused, not ready yet).

    AssertionError once ``process`` (the server probed) has exited, or after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return
        except OSError:
            assert process.poll() is None, f"{what} exited with {process.returncode}"
            assert time.monotonic() < deadline, f"{what} did not answer within {timeout:.0f} s"
            time.sleep(0.2)
