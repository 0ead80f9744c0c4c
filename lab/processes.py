"""The lab's recorded processes: start one detached under a role, wait until it serves, find it, stop it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from virtbalance.lab.errors import LabError
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


def log_tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a service's log on one line, for the error that says it failed."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def _wait_until(ready: Callable[[], bool], pid: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while time.monotonic() < deadline:
        if start_time(pid) is None:
            raise LabError(f"{what} exited: {log_tail(log)}")
        if ready():
            return
        time.sleep(0.2)
    raise LabError(f"{what} not ready within {SERVICE_TIMEOUT:.0f} s: {log_tail(log)}")


def wait_for_port(target: str, pid: int, log: Path, what: str) -> None:
    address, port = target.rsplit(":", 1)

    def listening() -> bool:
        try:
            with socket.create_connection((address, int(port)), timeout=0.5):
                return True
        except OSError:
            return False

    _wait_until(listening, pid, log, what)


def wait_for_http(url: str, pid: int, log: Path, what: str) -> None:
    def ready() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    _wait_until(ready, pid, log, what)


def require_free_port(address: str) -> None:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        # Prometheus and Alertmanager bind with SO_REUSEADDR: a restart finds the port free while the
        # previous instance's connections linger in TIME_WAIT, so the probe must judge it the same way.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except OSError:
            raise LabError(
                f"{address} is in use by a process that is not this lab's; stop it first"
            ) from None
