"""Domains libvirt lists as active with no QEMU behind them: a libvirtd killed while starting a guest.

libvirt (9.0) saves a guest's status file before QEMU's handshake; when the daemon dies inside that
handshake, the file keeps ``pid='0'`` and, for an incoming migration, a migration-in job. A restarted
daemon loads it, skips reconnecting a pid of 0, and keeps the domain active for good: destroy and
undefine wait on the job's state-change lock until they time out. Only removing the file while the
daemon is stopped clears it.
"""

from __future__ import annotations

import re
from pathlib import Path

from virtbalance.lab.hosts import RUN_DIR

_NO_PROCESS = re.compile(r"<domstatus\b[^>]*\bpid='0'")


def status_dir(namespace_pid: int) -> Path:
    """The qemu driver's status files as seen by a process in the host's mount namespace."""
    return Path(f"/proc/{namespace_pid}/root{RUN_DIR}/qemu")


def ghost_names(statuses: Path, qemu_guests: set[str]) -> list[str]:
    """Guests whose status file in ``statuses`` says no process started, with no QEMU on the host either."""
    names = []
    for status in sorted(statuses.glob("*.xml")):
        try:
            text = status.read_text()
        except OSError:  # the daemon removed it meanwhile: a guest that stopped
            continue
        if _NO_PROCESS.search(text) and status.stem not in qemu_guests:
            names.append(status.stem)
    return names


def remove_status(statuses: Path, name: str) -> None:
    """Drop a ghost's status and pid files; the caller has stopped the host's libvirtd."""
    for suffix in (".xml", ".pid"):
        (statuses / f"{name}{suffix}").unlink(missing_ok=True)


def qemu_guest(cmdline: bytes) -> str | None:
    """The guest name of a QEMU command line (``-name guest=NAME,...``), or None for another process."""
    args = cmdline.split(b"\0")
    if not args or b"qemu" not in Path(args[0].decode(errors="replace")).name.encode():
        return None
    for arg in args:
        if arg.startswith(b"guest="):
            return arg.split(b",", 1)[0].removeprefix(b"guest=").decode(errors="replace")
    return None
