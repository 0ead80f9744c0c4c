"""Running system commands and checking the machine: root, tools, processes by pid and start time."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from virtbalance.lab.errors import LabError

BOOTSTRAP_HINT = "run scripts/bootstrap (as root) to install the system packages"

# tool -> the Debian package that ships it
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mount": "mount",
    "libvirtd": "libvirt-daemon",
    "virtlockd": "libvirt-daemon",
    "qemu-system-x86_64": "qemu-system-x86",
    "nasm": "nasm",
    "qemu-img": "qemu-utils",  # qcow2 overlays of the disk-writer guests
}
MONITORING_TOOLS = {
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "victoria-metrics": "victoria-metrics",
    "vmalert": "victoria-metrics",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the lab needs root (network and mount namespaces, one libvirtd per host): "
            "run it as root, e.g. sudo .venv/bin/virtbalance lab up"
        )


def find_tool(name: str) -> str | None:
    """A tool on PATH or in the sbin directories a non-login shell may miss."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def require_tools(tools: dict[str, str]) -> dict[str, str]:
    """Tool name -> absolute path; LabError naming every missing tool and its package."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for tool, package in tools.items():
        path = find_tool(tool)
        if path is None:
            missing.append(f"{tool} (package {package})")
        else:
            found[tool] = path
    if missing:
        raise LabError(f"missing: {', '.join(missing)}; {BOOTSTRAP_HINT}")
    return found


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run a short command; LabError with its stderr if it fails and ``check``."""
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise LabError(f"{argv[0]}: not found; {BOOTSTRAP_HINT}") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: no answer within {timeout:.0f} s") from None
    if check and result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def spawn_detached(argv: Sequence[str], log: Path) -> int:
    """Start a long-lived process that is not our child (a shell forks it and exits); return its pid.

    A lab outlives the Python process that started it (``virtbalance lab up`` returns), so its daemons
    must not be children whose Popen objects would warn when dropped. Output is appended to ``log``.
    """
    script = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'
    result = subprocess.run(
        ["sh", "-c", script, "sh", str(log), *argv],
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
        timeout=30,
    )
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise LabError(
            f"could not start {argv[0]}: {result.stderr.strip() or result.stdout.strip()}"
        )
    return int(result.stdout.strip())


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone.

    A zombie counts as gone: it runs nothing and its parent (init, for detached processes) reaps it.

    Recorded next to each pid so that a later kill never hits a process that reused the number.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after its last ")"
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def is_same_process(pid: int, started: int | None) -> bool:
    current = start_time(pid)
    return current is not None and (started is None or current == started)


def kill_processes(processes: Iterable[tuple[int, int | None]], grace: float = 5.0) -> list[int]:
    """SIGTERM each (pid, start time) still alive, SIGKILL what is left after ``grace``; the pids hit."""
    targets = [
        (pid, started) for pid, started in processes if pid > 1 and is_same_process(pid, started)
    ]
    for pid, _ in targets:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = targets
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        _reap(pid for pid, _ in alive)
        alive = [
            (pid, started)
            for pid, started in alive
            if is_same_process(pid, started) and not _zombie(pid)
        ]
    for pid, _ in alive:
        _signal(pid, signal.SIGKILL)
    _reap(pid for pid, _ in alive)
    return [pid for pid, _ in targets]


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def _reap(pids: Iterable[int]) -> None:
    """Collect exit status of our own children so they do not linger as zombies."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
