"""Lab scenarios: a YAML file of hosts and domains, validated into frozen dataclasses before anything starts."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from virtbalance.domain_metadata import Placement
from virtbalance.errors import ValidationError
from virtbalance.lab.naming import MAX_HOSTS
from virtbalance.reader import POSITIVE, SIZE, Check, option, pattern, read_section, spec, within
from virtbalance.sizes import format_size

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

_LABEL_CHECK = (pattern(_LABEL, "a short name (letters, digits, _.:-)"),)


def _network_name(name: str) -> bool:
    return _NETWORK_NAME.fullmatch(name) is not None and name not in _RESERVED_NETWORKS


def _distinct(names: tuple[str, ...]) -> bool:
    return len(set(names)) == len(names)


@dataclass(frozen=True)
class HostSpec:
    """A lab host and the capacity it declares (all lab hosts share one real machine)."""

    name: str = field(
        metadata=spec(
            checks=(pattern(_HOST_NAME, "a host name like hv1 (a-z, 0-9, -, <= 12)"),),
        )
    )
    cpus: float = field(metadata=spec(checks=(POSITIVE, within(0, 256))))
    memory_bytes: int = field(
        metadata=spec(key="memory", unit=SIZE, checks=(POSITIVE,), hint="e.g. 64MiB, 1GiB")
    )


@dataclass(frozen=True)
class DomainSpec:
    """A guest, where it starts and its initial load (percent of one real core)."""

    name: str = field(
        metadata=spec(checks=(pattern(_DOMAIN_NAME, "a domain name (letters, digits, _.-)"),))
    )
    host: str
    vcpus: int = option(DEFAULT_VCPUS, checks=(within(1, MAX_VCPUS),))
    memory_bytes: int = option(
        DEFAULT_DOMAIN_MEMORY,
        key="memory",
        unit=SIZE,
        checks=(within(MIN_DOMAIN_MEMORY, MAX_DOMAIN_MEMORY, SIZE),),
    )
    private_networks: tuple[str, ...] = option(
        (),
        each=(Check(_network_name, "must be a bridge name (letter first, <= 15 chars)"),),
        checks=(Check(_distinct, "must not name a network twice"),),
    )
    group: str | None = option(None, checks=_LABEL_CHECK)
    load: int = option(0, checks=(within(0, 100),))  # percent of one core
    pinned: bool = False
    anti_affinity: str | None = option(None, checks=_LABEL_CHECK)
    disk: str = option(READONLY_DISK, choices=DISK_KINDS)
    disk_size: int = option(
        DEFAULT_DISK_SIZE, unit=SIZE, checks=(within(MIN_DISK_SIZE, MAX_DISK_SIZE, SIZE),)
    )

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

    name: str = field(metadata=spec(checks=_LABEL_CHECK))
    hosts: tuple[HostSpec, ...] = field(
        metadata=spec(min_items=1, max_items=MAX_HOSTS, hint="a non-empty list of hosts")
    )
    source: str = field(metadata=spec(read=False))
    description: str = ""
    domains: tuple[DomainSpec, ...] = option((), max_items=MAX_DOMAINS)

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
        at = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValidationError(
            source, [f"{at}not valid YAML: {getattr(exc, 'problem', exc)}"]
        ) from None
    if data is None or isinstance(data, Mapping):
        data = {"name": Path(source).stem, **(data or {})}  # named after its file by default
    where = functools.partial(_located, _line_map(root))
    problems: list[str] = []
    scenario = read_section(Scenario, data, "", problems, where=where, source=source)
    if scenario is not None:
        problems += [f"{where(path)}: {message}" for path, message in _problems(scenario, data)]
    if problems or scenario is None:
        raise ValidationError(source, problems)
    return scenario


def _located(lines: Mapping[str, int], path: str) -> str:
    """The path and its line, or the line of the nearest enclosing entry when the key is missing."""
    near = path
    while near and near not in lines:
        near = re.sub(r"(^|\.)[^.\[]*$|\[\d+\]$", "", near)
    line = lines.get(near)
    return f"{path or 'scenario'} (line {line})" if line else path or "scenario"


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


def _problems(scenario: Scenario, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What no single field shows: names given twice, hosts not declared, capacity, disk sizes.

    Paths count the entries of the file: when one was left out (a required key missing, already a
    problem) they would not, and these wait for the next run.
    """
    raw_hosts, raw_domains = data.get("hosts") or [], data.get("domains") or []
    if [len(scenario.hosts), len(scenario.domains)] != [len(raw_hosts), len(raw_domains)]:
        return []
    found = [
        (f"{kind}[{index}].name", f"duplicate {kind[:-1]} name {name!r}")
        for kind, names in (
            ("hosts", [h.name for h in scenario.hosts]),
            ("domains", [d.name for d in scenario.domains]),
        )
        for index, name in enumerate(names)
        if name in names[:index]
    ]
    hosts = [h.name for h in scenario.hosts]
    for index, domain in enumerate(scenario.domains):
        path = f"domains[{index}]"
        if domain.host not in hosts:
            declared = ", ".join(hosts) or "none"
            found.append(
                (f"{path}.host", f"{domain.host!r} is not a declared host (declared: {declared})")
            )
        if not domain.writable_disk and "disk_size" in raw_domains[index]:
            found.append(
                (f"{path}.disk_size", "only a writable disk (disk: raw or qcow2) has a size")
            )
    return found + _capacity(scenario)


def _capacity(scenario: Scenario) -> list[tuple[str, str]]:
    """Each host holds its guests' memory; all guests fit the machine's memory and CPU budget."""
    found = []
    for index, host in enumerate(scenario.hosts):
        used = sum(d.memory_bytes for d in scenario.domains_on(host.name))
        if used > host.memory_bytes:
            declares = f"host {host.name} declares {format_size(host.memory_bytes)}"
            found.append(
                (f"hosts[{index}].memory", f"{declares} but its domains need {format_size(used)}")
            )
    total_memory = sum(d.memory_bytes for d in scenario.domains)
    if total_memory > MAX_GUEST_MEMORY_TOTAL:
        allowed = f"the lab allows {format_size(MAX_GUEST_MEMORY_TOTAL)} on this machine"
        found.append(("domains", f"guests need {format_size(total_memory)} in all; {allowed}"))
    total_load = sum(d.load for d in scenario.domains)
    if total_load > MAX_TOTAL_LOAD_PERCENT:
        allowed = f"the lab allows {MAX_TOTAL_LOAD_PERCENT}% (1.5 cores) so the shared machine stays measurable"
        found.append(("domains", f"initial loads add up to {total_load}% of a core; {allowed}"))
    return found
