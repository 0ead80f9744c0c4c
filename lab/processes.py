"""The lab's recorded processes: start one detached under a role, find it, stop every one of a role."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from virtbalance.lab.state import read_state, record_process, update_state
from virtbalance.lab.system import is_same_process, kill_processes, spawn_detached, start_time

# How long a lab service may take to be ready, or a killed daemon to be gone.
SERVICE_TIMEOUT = 30.0


def spawn_recorded(state_dir: Path, role: str, command: Sequence[str], log_path: Path) -> int:
    """Start ``command`` detached (it outlives this process) and record its pid under ``role``."""
    pid = spawn_detached(command, log_path)
    update_state(state_dir, lambda s: record_process(s, role, pid, start_time(pid)))
    return pid


def recorded_pid(state_dir: Path, role: str) -> int | None:
    """The pid recorded under exactly ``role`` if that very process still runs, else None."""
    state = read_state(state_dir) or {}
    for entry in state.get("processes", []):
        if entry.get("role") == role and is_same_process(int(entry["pid"]), entry.get("started")):
            return int(entry["pid"])
    return None


def stop_role_prefix(state_dir: Path, prefix: str) -> None:
    """Stop the recorded processes whose role starts with ``prefix`` (a restart with new settings)."""
    stopped: list[tuple[int, int | None]] = []

    def drop(state: dict[str, Any]) -> None:
        keep = []
        for entry in state.get("processes", []):
            if str(entry.get("role", "")).startswith(prefix):
                stopped.append((int(entry["pid"]), entry.get("started")))
            else:
                keep.append(entry)
        state["processes"] = keep

    update_state(state_dir, drop)
    kill_processes(stopped)
