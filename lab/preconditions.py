"""What the lab needs of the machine, checked before anything starts: every failure named with its fix.

A lab must come up on a brand-new machine, where nothing an earlier libvirt installation or an earlier
lab left behind can be relied on. So the lab makes what it may make itself (the mount points it covers
with private directories), and names everything else it needs but must not create on its own (root,
packages, the QEMU driver's user, kernel features), each with the command that fixes it.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from virtbalance.lab import system
from virtbalance.lab.errors import LabError
from virtbalance.lab.hosts import MOUNT_POINTS
from virtbalance.lab.system import BOOTSTRAP_HINT

# libvirt's QEMU driver resolves its default user and group at start-up even when qemu.conf says root;
# only libvirt-daemon-system creates them, and the lab does not install that package.
QEMU_DRIVER_ACCOUNT = "libvirt-qemu"
# TAP devices for the guests' interfaces on private bridges
TUN_DEVICE = Path("/dev/net/tun")
NETNS_HANDLE = Path("/proc/self/ns/net")


@dataclass(frozen=True)
class Problem:
    """One unmet precondition and the command (or step) that fixes it."""

    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what} (fix: {self.fix})"


def root_problems() -> list[Problem]:
    if os.geteuid() == 0:
        return []
    return [
        Problem(
            "the lab needs root (network and mount namespaces, one libvirtd per host)",
            "run it as root, e.g. sudo .venv/bin/virtbalance lab up",
        )
    ]


def tool_problems(tools: dict[str, str]) -> list[Problem]:
    """One problem per tool (name -> Debian package) that is not installed."""
    return [
        Problem(f"{tool} is missing (package {package})", BOOTSTRAP_HINT)
        for tool, package in tools.items()
        if system.find_tool(tool) is None
    ]


def account_problems() -> list[Problem]:
    problems = []
    try:
        grp.getgrnam(QEMU_DRIVER_ACCOUNT)
    except KeyError:
        problems.append(
            Problem(
                f"group {QEMU_DRIVER_ACCOUNT} does not exist (libvirt's QEMU driver will not start)",
                f"scripts/bootstrap, or: groupadd --system {QEMU_DRIVER_ACCOUNT}",
            )
        )
    try:
        pwd.getpwnam(QEMU_DRIVER_ACCOUNT)
    except KeyError:
        problems.append(
            Problem(
                f"user {QEMU_DRIVER_ACCOUNT} does not exist (libvirt's QEMU driver will not start)",
                f"scripts/bootstrap, or: useradd --system --no-create-home -g {QEMU_DRIVER_ACCOUNT} "
                f"-s /usr/sbin/nologin {QEMU_DRIVER_ACCOUNT}",
            )
        )
    return problems


def kernel_problems() -> list[Problem]:
    problems = []
    if not NETNS_HANDLE.exists():
        problems.append(
            Problem(
                "the kernel offers no network namespaces (/proc/self/ns/net is missing)",
                "run on a kernel built with CONFIG_NET_NS (every Debian kernel is)",
            )
        )
    if not TUN_DEVICE.exists():
        problems.append(
            Problem(
                f"{TUN_DEVICE} is missing (guests on private bridges need TAP devices)",
                f"modprobe tun, or: mkdir -p {TUN_DEVICE.parent} && mknod {TUN_DEVICE} c 10 200",
            )
        )
    return problems


def make_mount_points(points: tuple[str, ...] = MOUNT_POINTS) -> list[Problem]:
    """Create every directory the lab mounts over inside its hosts; a problem for each it cannot make.

    On a machine without libvirt-daemon-system none of them exists, and ``/run`` is emptied at every boot.
    They stay empty in the root mount namespace: each host mounts its own directories over them.
    """
    problems = []
    for point in points:
        path = Path(point)
        if path.exists() and not path.is_dir():
            fix = f"move it aside, e.g. mv {point} {point}.old"
            problems.append(Problem(f"{point} exists but is not a directory", fix))
            continue
        try:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as exc:
            problems.append(
                Problem(
                    f"cannot create the mount point {point}: {exc.strerror or exc}",
                    f"mkdir -p {point} (as root, on a writable filesystem)",
                )
            )
    return problems


def raise_if_any(problems: list[Problem]) -> None:
    if not problems:
        return
    if len(problems) == 1:
        raise LabError(str(problems[0]))
    listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
    raise LabError(f"the lab cannot start, {len(problems)} problems: {listed}")


def prepare_machine(tools: dict[str, str]) -> dict[str, str]:
    """Check every precondition of ``lab up`` and make the mount points; tool name -> path.

    Root is checked first and alone: without it nothing else can be judged (or created).
    """
    raise_if_any(root_problems())
    problems = [*tool_problems(tools), *account_problems(), *kernel_problems()]
    if not problems:
        problems = make_mount_points()
    raise_if_any(problems)
    return {tool: path for tool in tools if (path := system.find_tool(tool)) is not None}
