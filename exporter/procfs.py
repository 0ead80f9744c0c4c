"""Resident memory of a local QEMU process from /proc, so scrapes can skip libvirt's balloon query."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# Where libvirtd (qemu:///system) keeps each running domain's QEMU PID.
QEMU_PID_DIR = Path("/run/libvirt/qemu")
PROC = Path("/proc")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def is_local_system_uri(uri: str) -> bool:
    """Whether ``uri`` reaches this machine's system QEMU daemon (so its PIDs are ours to read)."""
    parts = urlsplit(uri)
    scheme, _, transport = parts.scheme.partition("+")
    if scheme != "qemu" or parts.path != "/system" or parts.netloc:
        return False
    if transport not in ("", "unix"):
        return False
    return set(parse_qs(parts.query)) <= {"socket", "mode"}


class QemuProcesses:
    """Reads a running domain's RSS the way libvirt does (/proc/PID/statm), without an RPC.

    The PID comes from libvirtd's PID file and is trusted only if that process's command line
    names the domain (a PID from another PID namespace, or a reused one, is not).
    """

    def __init__(self, pid_dir: Path = QEMU_PID_DIR, proc: Path = PROC) -> None:
        self._pid_dir = pid_dir
        self._proc = proc
        self._checked: dict[tuple[str, int], bool] = {}  # (name, pid) -> command line matches

    def rss_kib(self, name: str) -> int | None:
        """The domain's resident memory in KiB, None when it cannot be read here."""
        try:
            pid = int((self._pid_dir / f"{name}.pid").read_text().strip())
            if not self._names(name, pid):
                return None
            resident_pages = int((self._proc / str(pid) / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return resident_pages * PAGE_KIB

    def _names(self, name: str, pid: int) -> bool:
        key = (name, pid)
        if key not in self._checked:
            # libvirt starts QEMU with "-name guest=NAME,..." (a comma in NAME doubled).
            marker = b"guest=" + name.replace(",", ",,").encode() + b","
            cmdline = (self._proc / str(pid) / "cmdline").read_bytes()
            if len(self._checked) > 4096:  # PIDs of domains long gone
                self._checked.clear()
            self._checked[key] = marker in cmdline
        return self._checked[key]
