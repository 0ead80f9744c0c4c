"""Debian's Go libvirt exporter on a lab host: the established exporter ours is a drop-in for."""

from __future__ import annotations

import subprocess
from typing import Any

from virtbalance.lab import Lab

GO_EXPORTER = "prometheus-libvirt-exporter"
GO_PORT = 19177


def start_go_exporter(lab: Lab, binary: str) -> tuple[str, subprocess.Popen[Any]]:
    """``binary`` serving the lab's first host on GO_PORT: (its host:port, the process, the caller's)."""
    host = lab.hosts[0]
    target = f"{host.address}:{GO_PORT}"
    process = lab.exec_in_host(
        host.name,
        [binary, "--libvirt.uri", "qemu:///system", "--web.listen-address", target],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # A session of its own, as the lab starts ours: with the kernel's autogroup scheduling each
        # session shares the CPU as one, so a process left in the caller's session got less CPU than
        # ours on a loaded machine.
        start_new_session=True,
    )
    return target, process
