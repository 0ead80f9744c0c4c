"""The lab's CPU cgroup: its hypervisors' processes get the machine's CPU before anything else on it."""

from __future__ import annotations

import errno
import logging
import time
from pathlib import Path

from virtbalance.lab.naming import LabNames

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The highest weight each interface takes. The lab caps its guests' dials at 1.5 cores in all
# (lab.scenario), so even at the top weight it leaves part of the machine to everything else.
V1_SHARES = 262144  # cpu.shares, default 1024
V2_WEIGHT = 10000  # cpu.weight, default 100

log = logging.getLogger(__name__)


def controller_root(root: Path = CGROUP_ROOT) -> Path | None:
    """Where the CPU controller's hierarchy is mounted (cgroup v1 or v2), None if nowhere."""
    if (root / "cpu" / "cpu.shares").exists():
        return root / "cpu"
    controllers = root / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return root
    return None


def group_dir(names: LabNames, root: Path = CGROUP_ROOT) -> Path | None:
    """The lab's group in the CPU hierarchy (whether or not it exists), None without a CPU controller."""
    hierarchy = controller_root(root)
    return None if hierarchy is None else hierarchy / names.prefix


def create(names: LabNames, root: Path = CGROUP_ROOT) -> Path | None:
    """Make the lab's group with the top CPU weight; its path, or None where there is no CPU controller.

    Why: libvirt starts every QEMU in a session of its own, and with the kernel's autogroups every
    session weighs as much as any other. On a shared machine at load 20 a lab guest then got about a
    tenth of a core while it spun, and the phase ends it was late to see made it look busier than its
    dial (its vCPU wait counts as demand): a lab host's calm load crossed ``cpu_high``. In one group of
    top weight the guests wait only for each other, as on a hypervisor that runs nothing but its guests.
    Where the machine has no usable CPU controller the lab still runs, unshielded, and says so.
    """
    group = group_dir(names, root)
    if group is None:
        log.warning(
            "no CPU cgroup controller: the lab's guests compete with all the machine's load"
        )
        return None
    v2 = group.parent == root
    try:
        if v2:  # the root must hand the CPU controller down to its children
            subtree = root / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
        group.mkdir(exist_ok=True)
        if v2:
            (group / "cpu.weight").write_text(str(V2_WEIGHT))
        else:
            (group / "cpu.shares").write_text(str(V1_SHARES))
    except OSError as exc:
        log.warning(
            "no CPU cgroup for the lab (%s): its guests compete with all the machine's load", exc
        )
        return None
    return group


def run_in(group: Path | None, argv: list[str]) -> list[str]:
    """``argv`` prefixed so that it starts inside ``group``: it and all it forks are in it from the start.

    The shell moves itself into the group and execs, so the pid stays the command's own.
    """
    if group is None:
        return argv
    script = 'procs=$1; shift; echo $$ >"$procs" && exec "$@"'
    return ["sh", "-c", script, "sh", str(group / "cgroup.procs"), *argv]


def move(pid: int, group: Path) -> None:
    """Put process ``pid`` (all its threads) in ``group``, e.g. the hierarchy's root to unshield it."""
    (group / "cgroup.procs").write_text(str(pid))


def members(names: LabNames, root: Path = CGROUP_ROOT) -> list[int]:
    """The pids in the lab's group: all of them are the lab's (its daemons and what they started)."""
    group = group_dir(names, root)
    try:
        text = (group / "cgroup.procs").read_text() if group is not None else ""
    except FileNotFoundError:
        return []
    return sorted(int(word) for word in text.split())


def exists(names: LabNames, root: Path = CGROUP_ROOT) -> bool:
    group = group_dir(names, root)
    return group is not None and group.is_dir()


def remove(names: LabNames, root: Path = CGROUP_ROOT, timeout: float = 2.0) -> bool:
    """Delete the lab's group once its processes are gone; False if some are still in it at ``timeout``.

    A process killed a moment ago may still be leaving the group (EBUSY) for a short while.
    """
    group = group_dir(names, root)
    if group is None:
        return True
    deadline = time.monotonic() + timeout
    while True:
        try:
            group.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        else:
            return True
