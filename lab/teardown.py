"""Remove one lab completely, from its state file and its names, safe to repeat and after a crash."""

from __future__ import annotations

import shutil
from dataclasses import astuple, dataclass
from pathlib import Path

from virtbalance.lab import cpu_share
from virtbalance.lab.naming import LabNames
from virtbalance.lab.state import read_state
from virtbalance.lab.system import kill_processes, run, start_time


@dataclass(frozen=True)
class Leftovers:
    """What of a lab exists on the machine; all empty means nothing is left."""

    namespaces: tuple[str, ...] = ()
    links: tuple[str, ...] = ()
    processes: tuple[int, ...] = ()
    mounts: tuple[str, ...] = ()
    state_dir: bool = False
    cpu_group: bool = False  # lab.cpu_share

    def __bool__(self) -> bool:
        return any(astuple(self))


def lab_namespaces(names: LabNames) -> list[str]:
    result = run(["ip", "netns", "list"], check=False)
    found = (line.split()[0] for line in result.stdout.splitlines() if line.strip())
    return sorted(n for n in found if n.startswith(names.netns_prefix))


def lab_links(names: LabNames) -> list[str]:
    """The lab bridge and veth ends in the root namespace (they all start with the lab prefix)."""
    result = run(["ip", "-o", "link", "show"], check=False)
    links = []
    for line in result.stdout.splitlines():
        parts = line.split(": ")
        if len(parts) < 2:
            continue
        name = parts[1].split("@")[0]
        if name == names.bridge or (
            name.startswith(names.prefix)
            and name[len(names.prefix) : len(names.prefix) + 1] in {"h", "p"}
        ):
            links.append(name)
    return sorted(links)


def namespace_pids(netns: str) -> list[int]:
    result = run(["ip", "netns", "pids", netns], check=False)
    return [int(word) for word in result.stdout.split() if word.isdigit()]


def lab_mounts(names: LabNames) -> list[str]:
    """Mount points of the root mount table that belong to the lab (its netns files, its state dir)."""
    prefixes = (str(names.state_dir) + "/", *(f"/run/netns/{n}" for n in lab_namespaces(names)))
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == str(names.state_dir) or point.startswith(prefixes):
            mounts.append(point)
    return mounts


def recorded_processes(names: LabNames) -> list[tuple[int, int | None]]:
    state = read_state(names.state_dir) or {}
    processes = []
    for entry in state.get("processes", []):
        if isinstance(entry, dict) and isinstance(entry.get("pid"), int):
            started = entry.get("started")
            processes.append((int(entry["pid"]), started if isinstance(started, int) else None))
    return processes


def leftovers(names: LabNames) -> Leftovers:
    namespaces = lab_namespaces(names)
    pids = {pid for ns in namespaces for pid in namespace_pids(ns)}
    pids |= set(cpu_share.members(names))
    pids |= {
        pid
        for pid, started in recorded_processes(names)
        if started is not None and start_time(pid) == started
    }
    return Leftovers(
        namespaces=tuple(namespaces),
        links=tuple(lab_links(names)),
        processes=tuple(sorted(pids)),
        mounts=tuple(lab_mounts(names)),
        state_dir=names.state_dir.exists(),
        cpu_group=cpu_share.exists(names),
    )


def teardown(lab_id: int) -> Leftovers:
    """Stop every process of the lab, delete its namespaces, links and state; return what was found."""
    names = LabNames(lab_id)
    found = leftovers(names)
    # Everything running inside a host namespace or the lab's CPU group is the lab's: libvirtd, QEMU,
    # exporters. The recorded root-namespace processes (Prometheus, Alertmanager) are matched by pid
    # AND start time.
    inside = {pid for ns in found.namespaces for pid in namespace_pids(ns)}
    inside |= set(cpu_share.members(names))
    targets: dict[int, int | None] = {pid: start_time(pid) for pid in inside}
    for pid, started in recorded_processes(names):
        if started is not None:
            targets.setdefault(pid, started)
    kill_processes(targets.items())
    for netns in found.namespaces:
        run(["ip", "netns", "delete", netns], check=False)
    for link in lab_links(names):
        run(["ip", "link", "delete", link], check=False)
    for point in sorted(lab_mounts(names), reverse=True):
        run(["umount", "-l", point], check=False)
    cpu_share.remove(names)
    shutil.rmtree(names.state_dir, ignore_errors=True)
    return found
