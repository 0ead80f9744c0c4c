"""The lab's guests: their images and disks, starting them, where they run, migration, load dials."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt

from virtbalance.domain_metadata import NAMESPACE, PREFIX
from virtbalance.lab import dial
from virtbalance.lab.domain_xml import domain_xml
from virtbalance.lab.errors import LabError
from virtbalance.lab.host_daemons import LabHosts
from virtbalance.lab.hosts import IMAGE_DIR, IMAGE_POOL, image_pool_xml
from virtbalance.lab.image import build_image, build_writer_sector, write_writer_image
from virtbalance.lab.scenario import MAX_TOTAL_LOAD_PERCENT, DomainSpec
from virtbalance.lab.state import read_state, update_state
from virtbalance.lab.system import find_tool

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


class LabGuests(LabHosts):
    """The scenario's guests on the lab's hosts: defined, started, moved and loaded as asked."""

    def _build_images(self) -> Path:
        """The guest image every read-only guest boots (and the writers' boot sector); its path."""
        image = build_image(self.state_dir / "guest.img")
        if self.scenario.local_storage:
            build_writer_sector(self.state_dir / WRITER_SECTOR)
        (self.state_dir / "guests").mkdir()
        return image

    def _start_scenario_guests(self, image: Path, emulator: str) -> None:
        """Every scenario guest on its host, booted into its dial at its initial load."""
        if self.scenario.local_storage:
            for host in self.hosts:
                self._define_image_pool(host.name)
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            list(pool.map(lambda h: self._start_guests(h.name, image, emulator), self.hosts))
        for domain in self.scenario.domains:
            self._wait_guest_ready(domain.name)
        for domain in self.scenario.domains:
            if domain.load:
                self._press(domain.name, domain.host, dial.level_for(domain.load))
        self._record_scenario_loads()

    def _record_scenario_loads(self) -> None:
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
        out = self._raw_copy(domain, host)
        converted = self.run_in_host(
            host,
            ["qemu-img", "convert", "-O", "raw", f"{IMAGE_DIR}/{spec.disk_file}", str(out)],
            capture_output=True,
            text=True,
        )
        if converted.returncode:
            raise LabError(f"cannot read {domain}'s disk on {host}: {converted.stderr.strip()}")
        return out

    def _raw_copy(self, domain: str, host: str) -> Path:
        """Where ``disk_contents`` converts ``domain``'s disk on ``host`` to."""
        return self.state_dir / "guests" / f"{domain}.{host}.raw"

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
                self._raw_copy(spec.name, host.name).unlink(missing_ok=True)
                self._refresh_image_pool(host.name)
        offset = (
            self.serial_log(spec.name).stat().st_size if self.serial_log(spec.name).exists() else 0
        )
        emulator = find_tool("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
        self._define_and_start(spec.host, spec, self.state_dir / "guest.img", emulator)
        self._wait_guest_ready(spec.name, offset)
        # a fresh guest starts at level 0; make the log say so for guest_level()
        self._press(spec.name, spec.host, 0)

    # ---- placement --------------------------------------------------------------------------------

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
