"""Lab scenarios: a YAML file of hosts and domains, validated into frozen dataclasses before anything starts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from virtbalance.domain_metadata import Placement
from virtbalance.errors import ValidationError
from virtbalance.lab.naming import MAX_HOSTS
from virtbalance.sizes import format_size, parse_size

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

# Guards for a shared 2-core machine: a scenario beyond these would distort every measurement on it.
MAX_DOMAINS = 24
MAX_VCPUS = 4
MIN_DOMAIN_MEMORY = 16 * 1024**2
MAX_DOMAIN_MEMORY = 512 * 1024**2
MAX_GUEST_MEMORY_TOTAL = 1536 * 1024**2
MAX_TOTAL_LOAD_PERCENT = 150  # percent of ONE real core, summed over all guests

DEFAULT_VCPUS = 1
DEFAULT_DOMAIN_MEMORY = 64 * 1024**2
# A guest's disk: the shared read-only load-dial image, or a writable image of its own in its host's
# private image directory (the disk-writer guest), copied by a migration with local storage: raw, or
# a qcow2 overlay on a raw base image that every host holds (a golden image; incremental copies).
READONLY_DISK, RAW_DISK, QCOW2_DISK = "readonly", "raw", "qcow2"
DISK_KINDS = (READONLY_DISK, RAW_DISK, QCOW2_DISK)
DEFAULT_DISK_SIZE = 64 * 1024**2
MIN_DISK_SIZE = 32 * 1024**2  # the writer's counter ring (16 MiB) and its boot sector must fit
MAX_DISK_SIZE = 1024**3

_HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,11}$")  # a hostname that also fits the netns name
_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NETWORK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$")  # a Linux interface name (<= 15)
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_RESERVED_NETWORKS = frozenset({"lo", "eth0"})

_TOP_KEYS = ("name", "description", "hosts", "domains")
_HOST_KEYS = ("name", "cpus", "memory")
_DOMAIN_KEYS = (
    "name",
    "host",
    "vcpus",
    "memory",
    "private_networks",
    "group",
    "load",
    "pinned",
    "anti_affinity",
    "disk",
    "disk_size",
)


@dataclass(frozen=True)
class HostSpec:
    """A lab host and the capacity it declares (all lab hosts share one real machine)."""

    name: str
    cpus: float
    memory_bytes: int


@dataclass(frozen=True)
class DomainSpec:
    """A guest, where it starts and its initial load (percent of one real core)."""

    name: str
    host: str
    vcpus: int = DEFAULT_VCPUS
    memory_bytes: int = DEFAULT_DOMAIN_MEMORY
    private_networks: tuple[str, ...] = ()
    group: str | None = None
    load: int = 0
    pinned: bool = False
    anti_affinity: str | None = None
    disk: str = READONLY_DISK
    disk_size: int = DEFAULT_DISK_SIZE

    @property
    def writable_disk(self) -> bool:
        """Whether the guest writes to a disk image of its own on its host (host-local storage)."""
        return self.disk != READONLY_DISK

    @property
    def disk_file(self) -> str:
        """The file name of its writable disk in its host's image directory."""
        return f"{self.name}.qcow2" if self.disk == QCOW2_DISK else f"{self.name}.img"

    @property
    def base_file(self) -> str | None:
        """The raw base image of a qcow2 overlay, on every host; None for other disks."""
        return f"{self.name}-base.img" if self.disk == QCOW2_DISK else None

    @property
    def placement(self) -> Placement:
        return Placement(group=self.group, anti_affinity=self.anti_affinity, pinned=self.pinned)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; ``source`` is the file it came from (or ``<string>``)."""

    name: str
    description: str
    hosts: tuple[HostSpec, ...]
    domains: tuple[DomainSpec, ...]
    source: str

    def host(self, name: str) -> HostSpec:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def domain(self, name: str) -> DomainSpec:
        for domain in self.domains:
            if domain.name == name:
                return domain
        raise KeyError(name)

    def domains_on(self, host: str) -> tuple[DomainSpec, ...]:
        return tuple(d for d in self.domains if d.host == host)

    @property
    def local_storage(self) -> bool:
        """Whether any guest has a writable disk on its host (each host then gets a storage pool)."""
        return any(d.writable_disk for d in self.domains)

    @property
    def private_networks(self) -> tuple[str, ...]:
        """Every private network of the scenario; each exists as a bridge on every host."""
        return tuple(sorted({n for d in self.domains for n in d.private_networks}))


def scenario_path(scenario: str | Path) -> Path:
    """A shipped scenario's name (``default``) or a file path -> the file."""
    if (
        isinstance(scenario, str)
        and _LABEL.match(scenario)
        and not scenario.endswith((".yaml", ".yml"))
    ):
        return SCENARIO_DIR / f"{scenario}.yaml"
    return Path(scenario)


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(scenario: str | Path) -> Scenario:
    """Read and validate a scenario by name or path; ValidationError lists every problem."""
    path = scenario_path(scenario)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(shipped_scenarios())
        raise ValidationError(
            str(path), [f"no such scenario file (shipped scenarios: {known})"]
        ) from None
    except OSError as exc:
        raise ValidationError(str(path), [f"cannot read: {exc.strerror}"]) from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    """Validate scenario YAML text; problems name the field path and its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValidationError(
            source, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]
        ) from None
    validator = _Validator(_line_map(root))
    scenario = validator.scenario(data, source)
    if validator.problems or scenario is None:
        raise ValidationError(source, validator.problems)
    return scenario


def _line_map(
    node: yaml.Node | None, path: str = "", lines: dict[str, int] | None = None
) -> dict[str, int]:
    """Field path (``domains[2].memory``) -> 1-based line, from the composed YAML node tree."""
    lines = {} if lines is None else lines
    if node is None:
        return lines
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            lines[child] = key.start_mark.line + 1
            _line_map(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, f"{path}[{index}]", lines)
    return lines


class _Validator:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, lines: Mapping[str, int]) -> None:
        self.lines = lines
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        line = self.lines.get("" if path == "scenario" else path)
        where = f"{path} (line {line})" if line else path
        self.problems.append(f"{where}: {message}")

    def mapping(self, data: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        if not isinstance(data, dict):
            self.problem(path or "scenario", f"must be a mapping, not {type(data).__name__}")
            return None
        for key in data:
            if key not in allowed:
                field = f"{path}.{key}" if path else str(key)
                self.problem(field, f"unknown key {key!r} (allowed: {', '.join(allowed)})")
        return data

    def scenario(self, data: Any, source: str) -> Scenario | None:
        top = self.mapping(data, "", _TOP_KEYS)
        if top is None:
            return None
        name = top.get("name", Path(source).stem)
        if not isinstance(name, str) or not _LABEL.match(name):
            self.problem("name", f"must be a short name, not {name!r}")
        description = top.get("description", "")
        if not isinstance(description, str):
            self.problem("description", "must be a string")
        hosts = self.hosts(top.get("hosts"))
        domains = self.domains(top.get("domains"), {h.name: h for h in hosts})
        if self.problems:
            return None
        return Scenario(str(name), str(description), hosts, domains, source)

    def hosts(self, data: Any) -> tuple[HostSpec, ...]:
        if not isinstance(data, list) or not data:
            self.problem("hosts", "must be a non-empty list of hosts")
            return ()
        if len(data) > MAX_HOSTS:
            self.problem("hosts", f"at most {MAX_HOSTS} hosts, got {len(data)}")
        hosts: list[HostSpec] = []
        seen: set[str] = set()
        for index, item in enumerate(data):
            path = f"hosts[{index}]"
            entry = self.mapping(item, path, _HOST_KEYS)
            if entry is None:
                continue
            name = entry.get("name")
            if not isinstance(name, str) or not _HOST_NAME.match(name):
                self.problem(
                    f"{path}.name",
                    f"must be a host name like hv1 (a-z, 0-9, -, <= 12), not {name!r}",
                )
                continue
            if name in seen:
                self.problem(f"{path}.name", f"duplicate host name {name!r}")
            seen.add(name)
            cpus = entry.get("cpus")
            if isinstance(cpus, bool) or not isinstance(cpus, int | float) or not 0 < cpus <= 256:
                self.problem(f"{path}.cpus", f"must be a number of CPUs > 0, not {cpus!r}")
                cpus = 0
            memory = self.size(entry.get("memory"), f"{path}.memory", required=True)
            hosts.append(HostSpec(name, float(cpus), memory or 0))
        return tuple(hosts)

    def domains(self, data: Any, hosts: Mapping[str, HostSpec]) -> tuple[DomainSpec, ...]:
        if data is None:
            return ()
        if not isinstance(data, list):
            self.problem("domains", "must be a list of domains")
            return ()
        if len(data) > MAX_DOMAINS:
            self.problem("domains", f"at most {MAX_DOMAINS} domains, got {len(data)}")
        domains: list[DomainSpec] = []
        seen: set[str] = set()
        for index, item in enumerate(data):
            domain = self.domain(item, f"domains[{index}]", hosts, seen)
            if domain is not None:
                domains.append(domain)
        self.capacity(domains, hosts)
        return tuple(domains)

    def domain(
        self, item: Any, path: str, hosts: Mapping[str, HostSpec], seen: set[str]
    ) -> DomainSpec | None:
        entry = self.mapping(item, path, _DOMAIN_KEYS)
        if entry is None:
            return None
        before = len(self.problems)
        name = entry.get("name")
        if not isinstance(name, str) or not _DOMAIN_NAME.match(name):
            self.problem(
                f"{path}.name", f"must be a domain name (letters, digits, _.-), not {name!r}"
            )
        elif name in seen:
            self.problem(f"{path}.name", f"duplicate domain name {name!r}")
        else:
            seen.add(name)
        host = entry.get("host")
        if not isinstance(host, str) or host not in hosts:
            declared = ", ".join(hosts) or "none"
            self.problem(f"{path}.host", f"{host!r} is not a declared host (declared: {declared})")
        vcpus = entry.get("vcpus", DEFAULT_VCPUS)
        if isinstance(vcpus, bool) or not isinstance(vcpus, int) or not 1 <= vcpus <= MAX_VCPUS:
            self.problem(f"{path}.vcpus", f"must be an integer 1..{MAX_VCPUS}, not {vcpus!r}")
        memory = self.size_within(
            entry.get("memory", DEFAULT_DOMAIN_MEMORY),
            f"{path}.memory",
            MIN_DOMAIN_MEMORY,
            MAX_DOMAIN_MEMORY,
        )
        networks = self.networks(entry.get("private_networks", []), f"{path}.private_networks")
        group = self.label(entry.get("group"), f"{path}.group")
        anti_affinity = self.label(entry.get("anti_affinity"), f"{path}.anti_affinity")
        load = entry.get("load", 0)
        if isinstance(load, bool) or not isinstance(load, int) or not 0 <= load <= 100:
            self.problem(f"{path}.load", f"must be a percent of one core 0..100, not {load!r}")
        pinned = entry.get("pinned", False)
        if not isinstance(pinned, bool):
            self.problem(f"{path}.pinned", f"must be true or false, not {pinned!r}")
        disk = entry.get("disk", READONLY_DISK)
        if disk not in DISK_KINDS:
            self.problem(f"{path}.disk", f"must be one of {', '.join(DISK_KINDS)}, not {disk!r}")
        disk_size = self.size_within(
            entry.get("disk_size", DEFAULT_DISK_SIZE),
            f"{path}.disk_size",
            MIN_DISK_SIZE,
            MAX_DISK_SIZE,
        )
        if "disk_size" in entry and disk == READONLY_DISK:
            self.problem(
                f"{path}.disk_size", "only a writable disk (disk: raw or qcow2) has a size"
            )
        if len(self.problems) != before:
            return None
        return DomainSpec(
            name=str(name),
            host=str(host),
            vcpus=vcpus,
            memory_bytes=memory or 0,
            private_networks=networks,
            group=group,
            load=load,
            pinned=pinned,
            anti_affinity=anti_affinity,
            disk=str(disk),
            disk_size=disk_size or DEFAULT_DISK_SIZE,
        )

    def size(self, value: Any, path: str, *, required: bool) -> int | None:
        if value is None:
            if required:
                self.problem(path, "is required (e.g. 64MiB, 1GiB)")
            return None
        try:
            size = parse_size(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        if size <= 0:
            self.problem(path, "must be more than 0 bytes")
            return None
        return size

    def size_within(self, value: Any, path: str, low: int, high: int) -> int | None:
        """A required size; one outside ``low..high`` is a problem but still returned, as read."""
        size = self.size(value, path, required=True)
        if size is not None and not low <= size <= high:
            self.problem(
                path, f"{format_size(size)} is outside {format_size(low)}..{format_size(high)}"
            )
        return size

    def networks(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.problem(path, f"must be a list of network names, not {value!r}")
            return ()
        names: list[str] = []
        for index, name in enumerate(value):
            if (
                not isinstance(name, str)
                or not _NETWORK_NAME.match(name)
                or name in _RESERVED_NETWORKS
            ):
                self.problem(
                    f"{path}[{index}]",
                    f"must be a bridge name (letter first, <= 15 chars), not {name!r}",
                )
            elif name in names:
                self.problem(f"{path}[{index}]", f"duplicate network {name!r}")
            else:
                names.append(name)
        return tuple(names)

    def label(self, value: Any, path: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _LABEL.match(value):
            self.problem(path, f"must be a short name (letters, digits, _.:-), not {value!r}")
            return None
        return value

    def capacity(self, domains: list[DomainSpec], hosts: Mapping[str, HostSpec]) -> None:
        for host in hosts.values():
            used = sum(d.memory_bytes for d in domains if d.host == host.name)
            if used > host.memory_bytes:
                index = next(i for i, h in enumerate(hosts) if h == host.name)
                self.problem(
                    f"hosts[{index}].memory",
                    f"host {host.name} declares {format_size(host.memory_bytes)} but its domains "
                    f"need {format_size(used)}",
                )
        total_memory = sum(d.memory_bytes for d in domains)
        if total_memory > MAX_GUEST_MEMORY_TOTAL:
            self.problem(
                "domains",
                f"guests need {format_size(total_memory)} in all; the lab allows "
                f"{format_size(MAX_GUEST_MEMORY_TOTAL)} on this machine",
            )
        total_load = sum(d.load for d in domains)
        if total_load > MAX_TOTAL_LOAD_PERCENT:
            self.problem(
                "domains",
                f"initial loads add up to {total_load}% of a core; the lab allows "
                f"{MAX_TOTAL_LOAD_PERCENT}% (1.5 cores) so the shared machine stays measurable",
            )
