"""The lab's state file: hosts, recorded processes, loads and service addresses, updated under a lock."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"


def state_file(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def read_state(state_dir: Path) -> dict[str, Any] | None:
    """The state, or None when there is none (or it is unreadable, e.g. after a crash mid-write)."""
    try:
        data = json.loads(state_file(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_state(state_dir: Path, state: dict[str, Any]) -> None:
    """Write atomically: a reader sees the old or the new state, never half of one."""
    temporary = state_dir / f".{STATE_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
    temporary.replace(state_file(state_dir))


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    with (state_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def update_state(state_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read, change and write the state under the lock (several processes may use one lab)."""
    with locked(state_dir):
        state = read_state(state_dir) or {}
        change(state)
        write_state(state_dir, state)
        return state


def record_process(state: dict[str, Any], role: str, pid: int, started: int | None) -> None:
    state.setdefault("processes", []).append({"role": role, "pid": pid, "started": started})
