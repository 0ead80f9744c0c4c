"""The Lab: bring a scenario up as real libvirt hosts in namespaces, drive its guests, tear it down."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import requests

from virtbalance.chunks import ChunkMember, find_chunks
from virtbalance.domain_metadata import NAMESPACE, PREFIX
from virtbalance.lab import cpu_share, dial
from virtbalance.lab.domain_xml import domain_xml
from virtbalance.lab.errors import LabAlreadyUp, LabError, LabNotUp
from virtbalance.lab.ghosts import ghost_names, qemu_guest, remove_status, status_dir
from virtbalance.lab.hosts import (
    IMAGE_DIR,
    IMAGE_POOL,
    LOCKSPACE_DIR,
    HostLayout,
    create_host_network,
    create_lab_bridge,
    image_pool_xml,
    rejoin_libvirtd,
    set_link,
    start_libvirtd,
    wait_for_libvirtd,
    write_libvirt_config,
)
from virtbalance.lab.image import build_image, build_writer_sector, write_writer_image
from virtbalance.lab.monitoring import (
    LAB_NIGHT,
    alertmanager_config,
    prometheus_config,
    victoriametrics_args,
    victoriametrics_scrape_config,
    vmalert_args,
)
from virtbalance.lab.naming import EXPORTER_PORT, LabNames, check_lab_id
from virtbalance.lab.preconditions import prepare_machine
from virtbalance.lab.scenario import (
    MAX_TOTAL_LOAD_PERCENT,
    DomainSpec,
    Scenario,
    load_scenario,
    parse_scenario,
)
from virtbalance.lab.state import read_state, record_process, update_state, write_state
from virtbalance.lab.system import (
    MONITORING_TOOLS,
    REQUIRED_TOOLS,
    find_tool,
    is_same_process,
    kill_processes,
    require_root,
    require_tools,
    spawn_detached,
    start_time,
)
from virtbalance.lab.teardown import Leftovers, leftovers, namespace_pids, teardown

MIGRATE_FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)
GUEST_READY_TIMEOUT = 30.0
WRITER_SECTOR = (
    "diskwriter.bin"  # in the state directory: the boot sector every writer image starts with
)
KEY_ATTEMPTS = 3
KEY_CONFIRM_TIMEOUT = 3.0
SERVICE_TIMEOUT = 30.0
# Recorded process roles of the monitoring stack (prefixes: one exporter per host).
MONITORING_ROLES = ("exporter:", "prometheus", "victoriametrics", "vmalert", "alertmanager")


def _ignore_libvirt_errors(_context: object, _error: object) -> None:
    """libvirt's default handler prints every error to stderr; the lab raises them as exceptions instead."""


libvirt.registerErrorHandler(_ignore_libvirt_errors, None)


@dataclass(frozen=True)
class LabHost:
    """A running lab host as clients see it: where to reach its libvirtd and what capacity it declares."""

    name: str
    address: str
    libvirt_uri: str
    migration_uri: str
    cpus: float
    memory_bytes: int


class Lab:
    """A running lab; get one with ``Lab.up`` or ``Lab.attach``."""

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

    # ---- life cycle -------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.names.state_dir

    @classmethod
    def up(cls, scenario: str | Path = "default", lab_id: int = 0) -> Lab:
        """Start every host and guest of ``scenario``; on any failure remove what was started, re-raise."""
        check_lab_id(lab_id)
        parsed = load_scenario(scenario)  # a bad scenario fails here, before anything exists
        tools = prepare_machine(REQUIRED_TOOLS)
        names = LabNames(lab_id)
        found = leftovers(names)
        if found:
            raise LabAlreadyUp(
                f"lab {lab_id} is already up (or left over from a crash): {_describe(found)}; "
                f"use it, or run: virtbalance lab down --lab-id {lab_id}"
            )
        names.state_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            names.state_dir.mkdir(mode=0o755)
        except FileExistsError:
            raise LabAlreadyUp(f"lab {lab_id} is being brought up by another process") from None
        lab: Lab | None = None
        try:
            (names.state_dir / "scenario.yaml").write_text(
                Path(parsed.source).read_text(encoding="utf-8")
            )
            state: dict[str, Any] = {
                "lab_id": lab_id,
                "status": "starting",
                "scenario_source": parsed.source,
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                # who brought it up: a test session tells its own lab from one a crashed run left
                "owner": {"pid": os.getpid(), "started": start_time(os.getpid())},
                "hosts": [],
                "processes": [],
                "loads": {},
            }
            write_state(names.state_dir, state)
            lab = cls(lab_id, parsed, state)
            lab._bring_up(tools)
            update_state(names.state_dir, lambda s: s.update(status="up"))
            return lab
        except BaseException:
            if lab is not None:
                lab._close()
            teardown(lab_id)
            raise

    @classmethod
    def attach(cls, lab_id: int = 0) -> Lab:
        """The running lab with this id, from its state file."""
        check_lab_id(lab_id)
        names = LabNames(lab_id)
        state = read_state(names.state_dir)
        if state is None:
            raise LabNotUp(
                f"no lab {lab_id} is up; start one with: virtbalance lab up --lab-id {lab_id}"
            )
        if state.get("status") != "up":
            raise LabNotUp(f"lab {lab_id} is {state.get('status')!r}, not up")
        text = (names.state_dir / "scenario.yaml").read_text(encoding="utf-8")
        return cls(
            lab_id, parse_scenario(text, str(state.get("scenario_source", "scenario.yaml"))), state
        )

    def down(self) -> Leftovers:
        """Remove everything of this lab; what was found is returned (empty if it was already down)."""
        self._close()
        return teardown(self.lab_id)

    @staticmethod
    def teardown(lab_id: int = 0) -> Leftovers:
        """Remove lab ``lab_id`` without attaching: works after a crash and when nothing is there."""
        require_root()
        return teardown(check_lab_id(lab_id))

    def _close(self) -> None:
        with self._lock:
            for connection in self._connections.values():
                with contextlib.suppress(libvirt.libvirtError):
                    connection.close()
            self._connections.clear()

    def _bring_up(self, tools: dict[str, str]) -> None:
        image = build_image(self.state_dir / "guest.img")
        if self.scenario.local_storage:
            build_writer_sector(self.state_dir / WRITER_SECTOR)
        (self.state_dir / "guests").mkdir()
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
        if self.scenario.local_storage:
            for name in processes:
                self._define_image_pool(name)
        emulator = tools["qemu-system-x86_64"]
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            list(pool.map(lambda h: self._start_guests(h.name, image, emulator), self.hosts))
        for domain in self.scenario.domains:
            self._wait_guest_ready(domain.name)
        for domain in self.scenario.domains:
            if domain.load:
                self._press(domain.name, domain.host, dial.level_for(domain.load))
        loads = {d.name: d.load for d in self.scenario.domains}
        update_state(self.state_dir, lambda s: s.update(loads=loads))

    def _start_guests(self, host: str, image: Path, emulator: str) -> None:
        for domain in self.scenario.domains_on(host):
            self._define_and_start(host, domain, image, emulator)

    def _define_image_pool(self, host: str) -> None:
        """The host's directory pool over its private image directory, started and autostarted."""
        self._layouts[host].image_dir.mkdir(parents=True, exist_ok=True)
        pool = self.connection(host).storagePoolDefineXML(image_pool_xml(), 0)
        pool.setAutostart(1)
        pool.create(0)

    def disk_image(self, domain: str, host: str) -> Path:
        """Where ``domain``'s writable disk lies on ``host``, as the root namespace sees it."""
        return (
            self._layouts[self.host(host).name].image_dir / self.scenario.domain(domain).disk_file
        )

    def disk_contents(self, domain: str, host: str) -> Path:
        """A raw file of what the guest sees on ``host``'s copy of its disk (a qcow2 overlay with its
        base converted by qemu-img inside the host, where the base's path resolves)."""
        spec = self.scenario.domain(domain)
        image = self.disk_image(domain, host)
        if spec.base_file is None:
            return image
        out = self.state_dir / "guests" / f"{domain}.{host}.raw"
        converted = self.run_in_host(
            host,
            ["qemu-img", "convert", "-O", "raw", f"{IMAGE_DIR}/{spec.disk_file}", str(out)],
            capture_output=True,
            text=True,
        )
        if converted.returncode:
            raise LabError(f"cannot read {domain}'s disk on {host}: {converted.stderr.strip()}")
        return out

    def _define_and_start(self, host: str, domain: DomainSpec, image: Path, emulator: str) -> None:
        serial = self.serial_log(domain.name)
        serial.touch()
        if domain.writable_disk:
            # a fresh image of its own on its host; the domain sees the host's private image directory
            image = Path(IMAGE_DIR) / domain.disk_file
            if domain.base_file is None:
                write_writer_image(
                    self.state_dir / WRITER_SECTOR,
                    self.disk_image(domain.name, host),
                    domain.disk_size,
                )
            else:
                self._write_overlay(domain, host)
            self._refresh_image_pool(host)
        connection = self.connection(host)
        dom = connection.defineXML(domain_xml(domain, image, serial, emulator))
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            domain.placement.to_xml(),
            PREFIX,
            NAMESPACE,
            libvirt.VIR_DOMAIN_AFFECT_CONFIG,
        )
        dom.create()

    def _write_overlay(self, domain: DomainSpec, host: str) -> None:
        """The same raw base on every host (a golden image), the guest's qcow2 overlay on its own."""
        assert domain.base_file is not None
        for other in self._layouts.values():
            write_writer_image(
                self.state_dir / WRITER_SECTOR, other.image_dir / domain.base_file, domain.disk_size
            )
            self._refresh_image_pool(other.name)
        base, overlay = f"{IMAGE_DIR}/{domain.base_file}", f"{IMAGE_DIR}/{domain.disk_file}"
        created = self.run_in_host(
            host,
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, overlay],
            capture_output=True,
            text=True,
        )
        if created.returncode:
            raise LabError(
                f"cannot create {domain.name}'s overlay on {host}: {created.stderr.strip()}"
            )

    def _refresh_image_pool(self, host: str) -> None:
        """Make the host's pool list images the lab wrote behind libvirt's back."""
        with contextlib.suppress(libvirt.libvirtError):
            self.connection(host).storagePoolLookupByName(IMAGE_POOL).refresh(0)

    def serial_log(self, domain: str) -> Path:
        """The guest's serial output: ``R`` when it runs the dial, ``L<n>`` at each level change."""
        return self.state_dir / "guests" / f"{domain}.serial"

    def _wait_guest_ready(self, domain: str, offset: int = 0) -> None:
        deadline = time.monotonic() + GUEST_READY_TIMEOUT
        while time.monotonic() < deadline:
            if dial.is_ready(dial.read_log(self.serial_log(domain), offset)):
                return
            time.sleep(0.1)
        raise LabError(
            f"guest {domain} did not boot into its load dial within {GUEST_READY_TIMEOUT:.0f} s"
        )

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
            if connection is not None:
                try:
                    if connection.isAlive():
                        return connection
                except libvirt.libvirtError:
                    pass
            uri = self.host(host).libvirt_uri
            try:
                connection = libvirt.open(uri)
            except libvirt.libvirtError as exc:
                raise LabError(f"cannot connect to {host} at {uri}: {exc}") from None
            self._connections[host] = connection
            return connection

    def running_hosts(self) -> dict[str, list[str]]:
        """Domain -> every host it is active on right now (every scenario domain, [] if none)."""
        result: dict[str, list[str]] = {d.name: [] for d in self.scenario.domains}
        for host in self.hosts:
            for dom in self.connection(host.name).listAllDomains(
                libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
            ):
                result.setdefault(dom.name(), []).append(host.name)
        return result

    def placement(self) -> dict[str, str]:
        """Domain -> the one host it runs on; LabError if any runs on none or several (see running_hosts)."""
        running = self.running_hosts()
        wrong = {name: hosts for name, hosts in running.items() if len(hosts) != 1}
        if wrong:
            detail = ", ".join(f"{n} on {h or 'no host'}" for n, h in sorted(wrong.items()))
            raise LabError(f"domains not running exactly once: {detail}")
        return {name: hosts[0] for name, hosts in running.items()}

    def _host_of(self, domain: str) -> str:
        hosts = self.running_hosts().get(domain)
        if hosts is None:
            raise LabError(f"no domain {domain!r} in the lab")
        if len(hosts) != 1:
            raise LabError(f"domain {domain} runs on {hosts or 'no host'}, not exactly one")
        return hosts[0]

    def migrate(self, domain: str, destination: str) -> float:
        """Live-migrate ``domain`` to ``destination`` as the actioner does; return the seconds it took."""
        source = self._host_of(domain)
        target = self.host(destination)
        if source == destination:
            return 0.0
        dom = self.connection(source).lookupByName(domain)
        began = time.monotonic()
        try:
            dom.migrate3(
                self.connection(destination),
                {libvirt.VIR_MIGRATE_PARAM_URI: target.migration_uri},
                MIGRATE_FLAGS,
            )
        except libvirt.libvirtError as exc:
            raise LabError(
                f"migrating {domain} from {source} to {destination} failed: {exc}"
            ) from None
        return time.monotonic() - began

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
        self._stop_role_prefix(f"holder:{host}")
        self._forget_connection(host)
        return pid

    def _hold_namespaces(self, host: str) -> None:
        """A sleeping process in the daemon's namespaces, so they outlive it for ``start_libvirtd``."""
        if self._holder(host) is not None:
            return
        sleep = find_tool("sleep") or "/bin/sleep"
        holder = self._spawn(f"holder:{host}", [sleep, "infinity"], Path(os.devnull), host)
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
        state = read_state(self.state_dir) or {}
        for entry in state.get("processes", []):
            if entry.get("role") == f"holder:{host}" and is_same_process(
                int(entry["pid"]), entry.get("started")
            ):
                return int(entry["pid"])
        return None

    def disconnect(self, host: str) -> None:
        """Take ``host`` off the lab network (its link down): connections to it hang, new ones fail."""
        set_link(self._layouts[self.host(host).name], up=False)

    def reconnect(self, host: str) -> None:
        """Put ``host`` back on the lab network."""
        set_link(self._layouts[self.host(host).name], up=True)

    def _forget_connection(self, host: str) -> None:
        with self._lock:
            connection = self._connections.pop(host, None)
        if connection is not None:
            with contextlib.suppress(libvirt.libvirtError):
                connection.close()

    # ---- load -------------------------------------------------------------------------------------

    def loads(self) -> dict[str, int]:
        """Domain -> the load last set (percent of one core)."""
        state = read_state(self.state_dir) or {}
        return {str(k): int(v) for k, v in state.get("loads", {}).items()}

    def guest_level(self, domain: str) -> int:
        """The dial level the guest itself last reported (0 if it never changed)."""
        return dial.last_level(dial.read_log(self.serial_log(domain))) or 0

    def set_load(self, domain: str, percent: int) -> int:
        """Set the guest's load (percent of one real core); returns the percent the dial really runs."""
        level = dial.level_for(percent)
        total = sum(v for k, v in self.loads().items() if k != domain) + percent
        if total > MAX_TOTAL_LOAD_PERCENT:
            raise LabError(
                f"load {percent}% on {domain} would make {total}% of a core in all; the lab allows "
                f"{MAX_TOTAL_LOAD_PERCENT}% on this shared machine: lower another guest first"
            )
        self._press(domain, self._host_of(domain), level)
        update_state(
            self.state_dir, lambda s: s.setdefault("loads", {}).__setitem__(domain, percent)
        )
        return dial.percent_for(level)

    def _press(self, domain: str, host: str, level: int) -> None:
        """Press the digit key and wait for the guest to echo the level; retry lost keys."""
        log = self.serial_log(domain)
        dom = self.connection(host).lookupByName(domain)
        expected = f"L{level}".encode()
        for _attempt in range(KEY_ATTEMPTS):
            offset = log.stat().st_size if log.exists() else 0
            dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, 50, [dial.keycode_for(level)], 1, 0)
            deadline = time.monotonic() + KEY_CONFIRM_TIMEOUT
            while time.monotonic() < deadline:
                if expected in dial.read_log(log, offset):
                    return
                time.sleep(0.05)
        raise LabError(
            f"guest {domain} on {host} did not confirm load level {level} after {KEY_ATTEMPTS} keys"
        )

    # ---- reset ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Every scenario domain back on its scenario host (chunk by chunk) at its initial load."""
        running = self.running_hosts()
        duplicated = {n: h for n, h in running.items() if len(h) > 1 and n in self._scenario_names}
        if duplicated:
            raise LabError(f"cannot reset: domains running on several hosts: {duplicated}")
        for chunk in self._scenario_chunks():
            for name in chunk:
                spec = self.scenario.domain(name)
                hosts = running.get(name, [])
                if not hosts:
                    self._restart_guest(spec)
                elif hosts[0] != spec.host and spec.writable_disk:
                    # its disk holds nothing worth copying back: a fresh guest on its own host
                    self.connection(hosts[0]).lookupByName(name).destroy()
                    self._restart_guest(spec)
                elif hosts[0] != spec.host:
                    self.migrate(name, spec.host)
        for spec in self.scenario.domains:
            level = dial.level_for(spec.load)
            if self.guest_level(spec.name) != level:
                self._press(spec.name, spec.host, level)
        loads = {d.name: d.load for d in self.scenario.domains}
        update_state(self.state_dir, lambda s: s.update(loads=loads))

    def repair(self) -> list[str]:
        """Put a guest that does not run exactly once, running, anywhere, back as new on its host.

        For tests after a failure (a guest on two hosts, or paused by an interrupted migration): the lab's
        guests hold no state worth keeping, so every copy is destroyed and the guest starts again.
        Returns what was found, one line per guest repaired.
        """
        found = self.clear_ghosts()
        for spec in self.scenario.domains:
            copies = {}
            for host in self.hosts:
                try:
                    dom = self.connection(host.name).lookupByName(spec.name)
                except libvirt.libvirtError:
                    continue
                copies[host.name] = dom
            states = {}
            for h, d in copies.items():
                with contextlib.suppress(libvirt.libvirtError):  # a transient copy may vanish
                    if d.isActive():
                        states[h] = d.state()[0]
            if list(states.values()) == [libvirt.VIR_DOMAIN_RUNNING]:
                continue
            found.append(
                f"{spec.name}: active copies {states or 'none'}, defined on {sorted(copies)}"
            )
            for dom in copies.values():
                with contextlib.suppress(libvirt.libvirtError):
                    if dom.isActive():
                        dom.destroy()
            self._restart_guest(spec)
        return found

    def clear_ghosts(self) -> list[str]:
        """Remove the domains libvirt lists with no QEMU behind them (lab/ghosts.py), one line each.

        Only a guest with no QEMU process in the host's namespace is touched, so a running guest is
        never forgotten; the host's libvirtd is restarted around the removal, its guests keep running.
        """
        found: list[str] = []
        for host in self.hosts:
            pid = self._libvirtd_pids.get(host.name)
            if pid is None or start_time(pid) is None:
                continue
            ghosts = ghost_names(status_dir(pid), self.qemu_guests(host.name))
            if not ghosts:
                continue
            self.stop_libvirtd(host.name)
            holder = self._holder(host.name)
            if holder is None:  # stop_libvirtd keeps the namespaces in a holder first
                raise LabError(f"no process keeps the namespaces of {host.name} to clear {ghosts}")
            for name in ghosts:
                remove_status(status_dir(holder), name)
            self.start_libvirtd(host.name)
            found.extend(
                f"{name}: listed active on {host.name} with no QEMU (a libvirtd killed while "
                "starting it), its status removed"
                for name in ghosts
            )
        return found

    def qemu_guests(self, host: str) -> set[str]:
        """Names of the guests a QEMU process runs for in ``host``'s network namespace."""
        names = set()
        for pid in namespace_pids(self._layouts[host].netns):
            try:
                name = qemu_guest(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:  # the process ended meanwhile
                continue
            if name is not None:
                names.add(name)
        return names

    @property
    def _scenario_names(self) -> set[str]:
        return {d.name for d in self.scenario.domains}

    def _scenario_chunks(self) -> list[tuple[str, ...]]:
        """The scenario's chunks per scenario host, so members travel back one right after another."""
        chunks: list[tuple[str, ...]] = []
        for host in self.scenario.hosts:
            members = [
                ChunkMember(d.name, d.private_networks, d.group)
                for d in self.scenario.domains_on(host.name)
            ]
            chunks.extend(chunk.members for chunk in find_chunks(members))
        return chunks

    def _restart_guest(self, spec: DomainSpec) -> None:
        """A scenario guest that runs nowhere: drop stale definitions, start it fresh on its host."""
        for host in self.hosts:
            try:
                dom = self.connection(host.name).lookupByName(spec.name)
            except libvirt.libvirtError:
                continue
            try:
                dom.undefineFlags(0)
            except libvirt.libvirtError as exc:
                # an incoming copy of an interrupted migration may vanish between lookup and undefine
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        if spec.writable_disk:
            for host in self.hosts:  # a copy a move left behind would look like this guest's disk
                self.disk_image(spec.name, host.name).unlink(missing_ok=True)
                (self.state_dir / "guests" / f"{spec.name}.{host.name}.raw").unlink(missing_ok=True)
                self._refresh_image_pool(host.name)
        offset = (
            self.serial_log(spec.name).stat().st_size if self.serial_log(spec.name).exists() else 0
        )
        emulator = find_tool("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
        self._define_and_start(spec.host, spec, self.state_dir / "guest.img", emulator)
        self._wait_guest_ready(spec.name, offset)
        # a fresh guest starts at level 0; make the log say so for guest_level()
        self._press(spec.name, spec.host, 0)

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

    # ---- monitoring -------------------------------------------------------------------------------

    def start_exporters(self, extra_args: Iterable[str] = ()) -> dict[str, str]:
        """One ``virtbalance-exporter`` inside each host, with its declared capacity; host -> target."""
        exporter = _exporter_binary()
        self._stop_role_prefix("exporter:")
        targets: dict[str, str] = {}
        started: list[tuple[str, int]] = []
        for host in self.hosts:
            target = f"{host.address}:{EXPORTER_PORT}"
            argv = [
                exporter,
                "--libvirt.uri",
                "qemu:///system",
                "--web.listen-address",
                target,
                "--host.cpus",
                _number(host.cpus),
                "--host.memory-bytes",
                str(host.memory_bytes),
                *extra_args,
            ]
            process = self._spawn(
                f"exporter:{host.name}",
                argv,
                self.state_dir / f"exporter-{host.name}.log",
                host.name,
            )
            started.append((host.name, process))
            targets[host.name] = target
        for name, process in started:
            _wait_for_port(
                targets[name],
                process,
                self.state_dir / f"exporter-{name}.log",
                f"exporter on {name}",
            )
        update_state(self.state_dir, lambda s: s.update(exporters=targets))
        return targets

    def start_prometheus(
        self,
        rule_files: Sequence[Path] = (),
        scrape_interval: str = "2s",
        evaluation_interval: str = "2s",
        alertmanager: str | None = None,
        extra_jobs: Mapping[str, Sequence[str]] | None = None,
        *,
        extra_jobs_token_file: Path | None = None,
    ) -> str:
        """Debian's Prometheus on 127.0.0.1 scraping every exporter (started if needed); its URL.

        ``extra_jobs`` adds scrape jobs by name (the actioner's metrics, for instance), sending the
        bearer token of ``extra_jobs_token_file`` when given.
        """
        binary = require_tools({"prometheus": MONITORING_TOOLS["prometheus"]})["prometheus"]
        state = read_state(self.state_dir) or {}
        targets = state.get("exporters") or self.start_exporters()
        directory = self.state_dir / "prometheus"
        directory.mkdir(exist_ok=True)
        config = directory / "prometheus.yml"
        config.write_text(
            prometheus_config(
                targets,
                rule_files,
                scrape_interval,
                evaluation_interval,
                alertmanager,
                extra_jobs=extra_jobs,
                extra_jobs_token_file=extra_jobs_token_file,
            )
        )
        self._stop_role_prefix("prometheus")
        address = f"127.0.0.1:{self.names.prometheus_port}"
        _require_free_port(address)
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={address}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            # An alert that fires before the notifier has found Alertmanager (right after start) is only
            # sent again after the resend delay, 1 minute by default: far too slow for a lab's short loop.
            "--rules.alert.resend-delay=5s",
        ]
        log = directory / "prometheus.log"
        process = self._spawn("prometheus", argv, log)
        url = f"http://{address}"
        _wait_for_http(f"{url}/-/ready", process, log, "Prometheus")
        update_state(self.state_dir, lambda s: s.update(prometheus=url))
        return url

    def start_victoriametrics(
        self,
        scrape_interval: str = "2s",
        extra_jobs: Mapping[str, Sequence[str]] | None = None,
        *,
        extra_jobs_token_file: Path | None = None,
    ) -> str:
        """Debian's VictoriaMetrics single-node on 127.0.0.1 scraping Prometheus's jobs; its URL.

        It serves the Prometheus query API the actioner and the demo read; rules run in vmalert.
        """
        binary = require_tools({"victoria-metrics": MONITORING_TOOLS["victoria-metrics"]})[
            "victoria-metrics"
        ]
        state = read_state(self.state_dir) or {}
        targets = state.get("exporters") or self.start_exporters()
        directory = self.state_dir / "victoriametrics"
        directory.mkdir(exist_ok=True)
        config = directory / "scrape.yml"
        config.write_text(
            victoriametrics_scrape_config(
                targets,
                scrape_interval,
                extra_jobs=extra_jobs,
                extra_jobs_token_file=extra_jobs_token_file,
            )
        )
        self._stop_role_prefix("victoriametrics")
        address = f"127.0.0.1:{self.names.victoriametrics_port}"
        _require_free_port(address)
        log = directory / "victoriametrics.log"
        process = self._spawn(
            "victoriametrics",
            [binary, *victoriametrics_args(config, directory / "data", address)],
            log,
        )
        url = f"http://{address}"
        _wait_for_http(f"{url}/health", process, log, "VictoriaMetrics")
        update_state(self.state_dir, lambda s: s.update(victoriametrics=url))
        return url

    def start_vmalert(
        self,
        rule_files: Sequence[Path],
        datasource: str,
        alertmanagers: Sequence[str],
        evaluation_interval: str = "2s",
    ) -> str:
        """Debian's vmalert on 127.0.0.1: ``rule_files`` against ``datasource``, alerts to Alertmanager."""
        binary = require_tools({"vmalert": MONITORING_TOOLS["vmalert"]})["vmalert"]
        directory = self.state_dir / "vmalert"
        directory.mkdir(exist_ok=True)
        self._stop_role_prefix("vmalert")
        address = f"127.0.0.1:{self.names.vmalert_port}"
        _require_free_port(address)
        argv = vmalert_args(
            rule_files,
            datasource=datasource,
            alertmanagers=alertmanagers,
            listen=address,
            evaluation_interval=evaluation_interval,
        )
        log = directory / "vmalert.log"
        process = self._spawn("vmalert", [binary, *argv], log)
        url = f"http://{address}"
        _wait_for_http(f"{url}/health", process, log, "vmalert")
        update_state(self.state_dir, lambda s: s.update(vmalert=url))
        return url

    def start_alertmanager(
        self,
        webhook_url: str,
        token_file: Path | None = None,
        group_wait: str = "1s",
        group_interval: str = "5s",
        repeat_interval: str = "30s",
        *,
        consolidate: bool = False,
        night: Sequence[Mapping[str, Any]] = LAB_NIGHT,
    ) -> str:
        """Debian's Alertmanager on 127.0.0.1, no gossip, routing HostSustainedOverload to the webhook
        (``consolidate``: HostUnderutilized too, see lab.monitoring.alertmanager_config)."""
        config = self._write_alertmanager_config(
            alertmanager_config(
                webhook_url,
                token_file,
                group_wait,
                group_interval,
                repeat_interval,
                consolidate=consolidate,
                night=night,
            )
        )
        self._stop_role_prefix("alertmanager")
        url = self._start_alertmanager_instance(
            "alertmanager", self.names.alertmanager_port, config, cluster=None
        )
        update_state(self.state_dir, lambda s: s.update(alertmanager=url))
        return url

    def start_alertmanager_pair(
        self,
        webhook_url: str,
        token_file: Path | None = None,
        group_wait: str = "1s",
        group_interval: str = "5s",
        repeat_interval: str = "30s",
    ) -> tuple[str, str]:
        """Two Alertmanagers gossiping on 127.0.0.1 (``--cluster.peer``), both routing to the webhook.

        They share notifications (one sends a group, the other sees it in the gossiped log) and
        silences (one made on either holds on both). Returns both URLs, the first also as ``alertmanager``.
        """
        config = self._write_alertmanager_config(
            alertmanager_config(
                webhook_url, token_file, group_wait, group_interval, repeat_interval
            )
        )
        self._stop_role_prefix("alertmanager")
        gossip = [f"127.0.0.1:{self.names.alertmanager_cluster_port(i)}" for i in (0, 1)]
        urls = tuple(
            self._start_alertmanager_instance(
                role, port, config, cluster=(gossip[i], gossip[1 - i])
            )
            for i, (role, port) in enumerate(
                (
                    ("alertmanager", self.names.alertmanager_port),
                    ("alertmanager-peer", self.names.alertmanager_peer_port),
                )
            )
        )
        first, second = urls
        update_state(
            self.state_dir, lambda s: s.update(alertmanager=first, alertmanager_peer=second)
        )
        return first, second

    def _write_alertmanager_config(self, text: str) -> Path:
        """``text`` as the lab's alertmanager.yml, which every instance of the lab reads."""
        directory = self.state_dir / "alertmanager"
        directory.mkdir(exist_ok=True)
        config = directory / "alertmanager.yml"
        config.write_text(text)
        return config

    def _start_alertmanager_instance(
        self, role: str, port: int, config: Path, cluster: tuple[str, str] | None
    ) -> str:
        """One Alertmanager; ``cluster`` = (own gossip address, peer's) or None for no gossip."""
        binary = require_tools(
            {"prometheus-alertmanager": MONITORING_TOOLS["prometheus-alertmanager"]}
        )["prometheus-alertmanager"]
        address = f"127.0.0.1:{port}"
        _require_free_port(address)
        directory = self.state_dir / role
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address={address}",
            # Debug: the log then says when a route's time interval held a notification back.
            "--log.level=debug",
        ]
        if cluster is None:
            argv.append("--cluster.listen-address=")
        else:
            own, peer = cluster
            argv += [
                f"--cluster.listen-address={own}",
                # Loopback is not a private address: without this Alertmanager refuses to pick one.
                f"--cluster.advertise-address={own}",
                f"--cluster.peer={peer}",
                # The second instance waits this long for the first to send a group before sending
                # it itself (15 s by default): a lab's loop is shorter than that.
                "--cluster.peer-timeout=2s",
            ]
        directory.mkdir(exist_ok=True)
        log = directory / "alertmanager.log"
        process = self._spawn(role, argv, log)
        url = f"http://{address}"
        _wait_for_http(f"{url}/-/ready", process, log, f"Alertmanager ({role})")
        return url

    def _spawn(
        self, role: str, argv: Sequence[str], log_path: Path, host: str | None = None
    ) -> int:
        """Start a lab service detached (it outlives this process) and record its pid."""
        command = self._nsenter(host, argv) if host else list(argv)
        pid = spawn_detached(command, log_path)
        update_state(self.state_dir, lambda s: record_process(s, role, pid, start_time(pid)))
        return pid

    def stop_monitoring(self) -> None:
        """Stop the exporters, metrics backends and Alertmanager of this lab (the hosts and guests stay)."""
        for role in MONITORING_ROLES:
            self._stop_role_prefix(role)

        def forget(state: dict[str, Any]) -> None:
            for key in (
                "exporters",
                "prometheus",
                "victoriametrics",
                "vmalert",
                "alertmanager",
                "alertmanager_peer",
            ):
                state.pop(key, None)

        update_state(self.state_dir, forget)

    def _stop_role_prefix(self, prefix: str) -> None:
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

        update_state(self.state_dir, drop)
        kill_processes(stopped)


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


def _describe(found: Leftovers) -> str:
    parts = []
    if found.namespaces:
        parts.append(f"namespaces {', '.join(found.namespaces)}")
    if found.links:
        parts.append(f"links {', '.join(found.links)}")
    if found.processes:
        parts.append(f"{len(found.processes)} processes")
    if found.mounts:
        parts.append(f"mounts {', '.join(found.mounts)}")
    if found.state_dir:
        parts.append("its state directory")
    if found.cpu_group:
        parts.append("its CPU cgroup")
    return "; ".join(parts)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _exporter_binary() -> str:
    beside = Path(sys.executable).parent / "virtbalance-exporter"
    if beside.exists():
        return str(beside)
    found = find_tool("virtbalance-exporter")
    if found is None:
        raise LabError(
            "virtbalance-exporter not found; run scripts/bootstrap to install the project"
        )
    return found


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        return (
            " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
            or "(empty log)"
        )
    except OSError:
        return "(no log)"


def _wait_until(ready: Callable[[], bool], pid: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while time.monotonic() < deadline:
        if start_time(pid) is None:
            raise LabError(f"{what} exited: {_log_tail(log)}")
        if ready():
            return
        time.sleep(0.2)
    raise LabError(f"{what} not ready within {SERVICE_TIMEOUT:.0f} s: {_log_tail(log)}")


def _wait_for_port(target: str, pid: int, log: Path, what: str) -> None:
    address, port = target.rsplit(":", 1)

    def listening() -> bool:
        try:
            with socket.create_connection((address, int(port)), timeout=0.5):
                return True
        except OSError:
            return False

    _wait_until(listening, pid, log, what)


def _wait_for_http(url: str, pid: int, log: Path, what: str) -> None:
    def ready() -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    _wait_until(ready, pid, log, what)


def _require_free_port(address: str) -> None:
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


def live_owner(lab_id: int) -> int | None:
    """The pid of the still-running process that brought lab ``lab_id`` up, None if it is gone."""
    state = read_state(LabNames(lab_id).state_dir) or {}
    owner = state.get("owner")
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return None
    return int(owner["pid"]) if is_same_process(int(owner["pid"]), owner.get("started")) else None


def is_up(lab_id: int) -> bool:
    """Whether lab ``lab_id`` has a state file saying it is up and its libvirtds still run."""
    state = read_state(LabNames(lab_id).state_dir)
    if not state or state.get("status") != "up":
        return False
    return all(
        is_same_process(int(p["pid"]), p.get("started"))
        for p in state.get("processes", [])
        if str(p.get("role", "")).startswith("libvirtd:")
    )


__all__ = ["Lab", "LabHost", "is_up", "live_owner"]
