"""The actioner as a child process of a lab run: started with its log, waited on until it answers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import requests


def start_actioner(config: Path, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """``python -m virtbalance.actioner.main`` on ``config`` at DEBUG, its output appended to ``log``."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "virtbalance.actioner.main",
                "--config",
                str(config),
                "--log-level",
                "DEBUG",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once ``url``/healthz answers 200; RuntimeError if the actioner exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the actioner exited with {process.returncode} before it was healthy"
            )
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("the actioner did not become healthy")


def ensure_stopped(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` if it still runs, and reap it: the cleanup after a run, however it ended."""
    if process.poll() is None:
        process.kill()
        process.wait(10)
