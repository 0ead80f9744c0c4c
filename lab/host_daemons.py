"""The lab's running hosts: their libvirtds and namespaces, links, connections and processes inside."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt

from virtbalance.lab import cpu_share
from virtbalance.lab.errors import LabError
from virtbalance.lab.hosts import (
    LOCKSPACE_DIR,
    HostLayout,
    create_host_network,
    create_lab_bridge,
    rejoin_libvirtd,
    set_link,
    start_libvirtd,
    wait_for_libvirtd,
    write_libvirt_config,
)
from virtbalance.lab.naming import LabNames
from virtbalance.lab.processes import (
    SERVICE_TIMEOUT,
    recorded_pid,
    spawn_recorded,
    stop_role_prefix,
)
from virtbalance.lab.scenario import Scenario
from virtbalance.lab.state import record_process, update_state
from virtbalance.lab.system import REQUIRED_TOOLS, find_tool, require_tools, start_time
from virtbalance.libvirt_client import is_alive, quiet_libvirt

quiet_libvirt()  # the lab raises libvirt's errors as LabError instead


@dataclass(frozen=True)
class LabHost:
    """A running lab host as clients see it: where to reach its libvirtd and what capacity it declares."""

    name: str
    address: str
    libvirt_uri: str
    migration_uri: str
    cpus: float
    memory_bytes: int


class LabHosts:
    """The hosts of one lab: their daemons, network links, libvirt connections and namespaces."""

    def __init__(self, lab_id: int, scenario: Scenario, state: dict[str, Any]) -> None:
        self.lab_id = lab_id
        self.names = LabNames(lab_id)
        self.scenario = scenario
        self._layouts = {
            h.name: HostLayout.of(self.names, h.name, i) for i, h in enumerate(scenario.hosts)
        }
        self.hosts = [
            LabHost(
                name=h.name,
                address=self._layouts[h.name].address,
                libvirt_uri=f"qemu+tcp://{self._layouts[h.name].address}/system",
                migration_uri=f"tcp://{self._layouts[h.name].address}",
                cpus=h.cpus,
                memory_bytes=h.memory_bytes,
            )
            for h in scenario.hosts
        ]
        self._libvirtd_pids = {
            h["name"]: int(h["libvirtd_pid"]) for h in state.get("hosts", []) if "libvirtd_pid" in h
        }
        self._connections: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def state_dir(self) -> Path:
        return self.names.state_dir

    def _start_hosts(self, tools: dict[str, str]) -> None:
        """The lab bridge, each host's namespaces and links, and its libvirtd, recorded and ready."""
        create_lab_bridge(self.names)
        networks = self.scenario.private_networks
        lockspace = self.state_dir / LOCKSPACE_DIR
        lockspace.mkdir()
        for host in self._layouts.values():
            create_host_network(self.names, host, networks)
            write_libvirt_config(host, lockspace)
        cpu_group = cpu_share.create(self.names)
        processes = {
            name: start_libvirtd(host, tools["libvirtd"], tools["virtlockd"], cpu_group)
            for name, host in self._layouts.items()
        }

        def record(state: dict[str, Any]) -> None:
            for spec in self.scenario.hosts:
                layout = self._layouts[spec.name]
                pid = processes[spec.name]
                state["hosts"].append(
                    {
                        "name": spec.name,
                        "address": layout.address,
                        "netns": layout.netns,
                        "libvirtd_pid": pid,
                    }
                )
                record_process(state, f"libvirtd:{spec.name}", pid, start_time(pid))

        update_state(self.state_dir, record)
        self._libvirtd_pids = dict(processes)
        for name, pid in processes.items():
            wait_for_libvirtd(self._layouts[name], pid)

    # ---- libvirt ----------------------------------------------------------------------------------

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"no lab host {name!r} (hosts: {', '.join(h.name for h in self.hosts)})")

    def connection(self, host: str) -> Any:
        """An open libvirt connection to ``host``'s libvirtd (reused, reopened if it died)."""
        with self._lock:
            connection = self._connections.get(host)
            if connection is not None and is_alive(connection):
                return connection
            uri = self.host(host).libvirt_uri
            try:
                connection = libvirt.open(uri)
            except libvirt.libvirtError as exc:
                raise LabError(f"cannot connect to {host} at {uri}: {exc}") from None
            self._connections[host] = connection
            return connection

    def _close(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                with contextlib.suppress(libvirt.libvirtError):
                    connection.close()
            self._connections.clear()

    def _forget_connection(self, host: str) -> None:
        with self._lock:
            connection = self._connections.pop(host, None)
        if connection is not None:
            with contextlib.suppress(libvirt.libvirtError):
                connection.close()

    # ---- outages ----------------------------------------------------------------------------------

    def libvirtd_running(self, host: str) -> bool:
        """Whether ``host``'s recorded libvirtd process is alive."""
        self.host(host)
        pid = self._libvirtd_pids.get(host)
        return pid is not None and start_time(pid) is not None

    def stop_libvirtd(self, host: str) -> None:
        """SIGKILL ``host``'s libvirtd, as when a hypervisor's daemon dies: its guests keep running.

        Clients get refused connections until ``start_libvirtd``; ``down`` still removes everything.
        """
        pid = self._libvirtd_pids.get(host)
        if not self.libvirtd_running(host) or pid is None:
            return
        self._hold_namespaces(host)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + SERVICE_TIMEOUT
        while start_time(pid) is not None:
            if time.monotonic() > deadline:
                raise LabError(f"libvirtd of {host} (pid {pid}) survived SIGKILL")
            time.sleep(0.05)
        self._forget_connection(host)

    def start_libvirtd(self, host: str) -> int:
        """Start ``host``'s libvirtd again (a no-op if it runs), adopting its running guests; its pid.

        It rejoins the namespaces the holder of ``stop_libvirtd`` kept, so the private mounts and
        ``/run/libvirt`` are the ones the guests were started with (without a holder, e.g. after a
        crash of the daemon on its own, they are made afresh). The new pid is recorded for ``down``.
        """
        layout = self._layouts[self.host(host).name]
        if self.libvirtd_running(host):
            return self._libvirtd_pids[host]
        daemons = require_tools({k: REQUIRED_TOOLS[k] for k in ("libvirtd", "virtlockd")})
        libvirtd = daemons["libvirtd"]
        holder = self._holder(host)
        # back in the lab's CPU group, so the QEMUs it starts (migrations to it) are in it too
        cpu_group = cpu_share.group_dir(self.names) if cpu_share.exists(self.names) else None
        if holder is None:
            pid = start_libvirtd(layout, libvirtd, daemons["virtlockd"], cpu_group)
        else:
            pid = rejoin_libvirtd(layout, libvirtd, holder, cpu_group)
        update_state(self.state_dir, lambda s: _record_libvirtd(s, host, pid))
        self._libvirtd_pids[host] = pid
        wait_for_libvirtd(layout, pid)
        stop_role_prefix(self.state_dir, f"holder:{host}")
        self._forget_connection(host)
        return pid

    def _hold_namespaces(self, host: str) -> None:
        """A sleeping process in the daemon's namespaces, so they outlive it for ``start_libvirtd``."""
        if self._holder(host) is not None:
            return
        sleep = find_tool("sleep") or "/bin/sleep"
        holder = spawn_recorded(
            self.state_dir,
            f"holder:{host}",
            self._nsenter(host, [sleep, "infinity"]),
            Path(os.devnull),
        )
        # nsenter needs the daemon alive to enter its namespaces: wait until the holder is inside
        # (and sleeping) before the daemon may be killed.
        daemon = self._libvirtd_pids[host]
        wanted = _namespaces(daemon)
        deadline = time.monotonic() + SERVICE_TIMEOUT
        while _namespaces(holder) != wanted or not _command(holder).startswith(sleep):
            if start_time(holder) is None or time.monotonic() > deadline:
                raise LabError(f"could not keep the namespaces of {host} (holder pid {holder})")
            time.sleep(0.02)

    def _holder(self, host: str) -> int | None:
        return recorded_pid(self.state_dir, f"holder:{host}")

    def disconnect(self, host: str) -> None:
        """Take ``host`` off the lab network (its link down): connections to it hang, new ones fail."""
        set_link(self._layouts[self.host(host).name], up=False)

    def reconnect(self, host: str) -> None:
        """Put ``host`` back on the lab network."""
        set_link(self._layouts[self.host(host).name], up=True)

    # ---- processes inside hosts -------------------------------------------------------------------

    def _nsenter(self, host: str, argv: Sequence[str]) -> list[str]:
        self.host(host)
        pid = self._libvirtd_pids.get(host)
        if pid is None or start_time(pid) is None:
            raise LabError(
                f"host {host} of lab {self.lab_id} is not running (its libvirtd is gone)"
            )
        return ["nsenter", "-t", str(pid), "--net", "--mount", "--uts", "--", *argv]

    def exec_in_host(
        self, host: str, argv: Sequence[str], **popen_kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``host``'s network, mount and UTS namespaces; the caller owns the process."""
        return subprocess.Popen(self._nsenter(host, argv), **popen_kwargs)

    def run_in_host(
        self, host: str, argv: Sequence[str], **run_kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` to completion inside ``host``'s namespaces (``subprocess.run`` keywords)."""
        return subprocess.run(self._nsenter(host, argv), check=False, **run_kwargs)


def _namespaces(pid: int) -> tuple[str, ...]:
    """The mount, network and UTS namespaces of a process (empty when it is gone)."""
    try:
        return tuple(os.readlink(f"/proc/{pid}/ns/{kind}") for kind in ("mnt", "net", "uts"))
    except OSError:
        return ()


def _command(pid: int) -> str:
    """The program a process runs (its argv[0]), empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


def _record_libvirtd(state: dict[str, Any], host: str, pid: int) -> None:
    """Replace ``host``'s libvirtd pid in the state (its host entry and its process record)."""
    for entry in state.get("hosts", []):
        if entry.get("name") == host:
            entry["libvirtd_pid"] = pid
    role = f"libvirtd:{host}"
    state["processes"] = [p for p in state.get("processes", []) if p.get("role") != role]
    record_process(state, role, pid, start_time(pid))
