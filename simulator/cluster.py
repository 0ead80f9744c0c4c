"""The simulated cluster: hosts, seeded chunk assignment and the initial first-fit-by-memory placement."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from virtbalance.errors import ValidationError
from virtbalance.simulator.power import POWER_MODELS, PowerModel
from virtbalance.simulator.sections import parse_section
from virtbalance.simulator.traces import GIB, VmTrace

CHUNK_NETWORK_PREFIX = "simnet-"
AUTO_FILL_SLACK = 0.05


@dataclass(frozen=True)
class HostGroup:
    """``hosts`` hosts of one size, for clusters of mixed hosts; ``power`` names their power model."""

    hosts: int
    cpus: float
    memory_bytes: int
    power: str | None = None

    @classmethod
    def parse(cls, text: str) -> HostGroup:
        """``5x32x128`` (5 hosts of 32 CPUs and 128 GiB), ``5x32x128xml110-g5`` with a power model;
        ValueError saying what is wrong."""
        parts = text.strip().split("x", 3)
        usage = f"expected HOSTSxCPUSxGIB[xPOWER] like 5x32x128, got {text!r}"
        if len(parts) not in (3, 4):
            raise ValueError(usage)
        try:
            group = cls(int(parts[0]), float(parts[1]), int(float(parts[2]) * GIB))
        except ValueError as exc:
            raise ValueError(usage) from exc
        return replace(group, power=parts[3]) if len(parts) == 4 else group

    def problems(self, where: str) -> list[str]:
        found = _size_problems(f"{where}.", self.hosts, self.cpus, self.memory_bytes)
        if self.power is not None and self.power not in POWER_MODELS:
            found.append(f"{where}.power: {_unknown_power(self.power)}")
        return found


def _size_problems(prefix: str, hosts: int, cpus: float, memory_bytes: int) -> list[str]:
    """What is wrong with a number of hosts and their size: the same rules for a group and a cluster."""
    found = []
    if hosts < 1:
        found.append(f"{prefix}hosts: must be at least 1, got {hosts}")
    if cpus <= 0:
        found.append(f"{prefix}cpus: must be positive, got {cpus}")
    if memory_bytes <= 0:
        found.append(f"{prefix}memory_gib: must be positive, got {memory_bytes / GIB}")
    return found


def _unknown_power(name: str) -> str:
    return f"unknown power model {name!r} (known: {', '.join(POWER_MODELS)})"


def _read_cluster(data: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """The ``cluster:`` keys as ClusterSpec arguments (``memory_gib`` in bytes), problems appended."""
    values: dict[str, Any] = {}
    known = {
        "hosts": int,
        "cpus": float,
        "memory_gib": float,
        "chunk_share": float,
        "chunk_min": int,
        "chunk_max": int,
        "seed": int,
        "fill": float,
    }
    for key, raw in data.items():
        if key == "groups":
            values["groups"] = _groups(raw, problems)
            continue
        if key == "power":
            if isinstance(raw, str):
                values["power"] = raw
            else:
                problems.append(f"power: expected a power model name, got {raw!r}")
            continue
        if key not in known:
            names = ", ".join(sorted([*known, "groups", "power"]))
            problems.append(f"{key}: unknown key (known: {names})")
            continue
        if key == "fill" and raw == "auto":
            continue
        want = known[key]
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            problems.append(f"{key}: expected a number, got {raw!r}")
            continue
        if want is int and not isinstance(raw, int):
            problems.append(f"{key}: expected a whole number, got {raw!r}")
            continue
        if key == "memory_gib":
            values["memory_bytes"] = int(raw * GIB)
        else:
            values[key] = want(raw)
    return values


@dataclass(frozen=True)
class ClusterSpec:
    """Host count and size, and how many VMs are chained into chunks by private networks."""

    hosts: int = 10
    cpus: float = 32.0
    memory_bytes: int = 256 * GIB
    chunk_share: float = 0.2
    chunk_min: int = 2
    chunk_max: int = 4
    seed: int = 1
    # First fit fills a host up to this share of its memory before trying the next one; None (auto)
    # is the cluster's average memory share plus AUTO_FILL_SLACK, so the start uses every host.
    fill: float | None = None
    # Mixed clusters: groups of hosts of different sizes, in this order (instead of hosts/cpus/memory).
    groups: tuple[HostGroup, ...] = ()
    # Power model of every host whose group names none (None: no energy is reported).
    power: str | None = None

    @classmethod
    def from_mapping(cls, data: Any, source: str = "cluster") -> ClusterSpec:
        """Validate a mapping (YAML ``cluster:`` section); ValidationError listing every problem."""
        return parse_section(cls, data, source, _read_cluster)

    def problems(self) -> list[str]:
        found = _size_problems("", self.hosts, self.cpus, self.memory_bytes)
        if not 0.0 <= self.chunk_share <= 1.0:
            found.append(f"chunk_share: must be within [0, 1], got {self.chunk_share}")
        if self.chunk_min < 2 or self.chunk_max < self.chunk_min:
            found.append(
                f"chunk_min/chunk_max: need 2 <= chunk_min <= chunk_max, got "
                f"{self.chunk_min}/{self.chunk_max}"
            )
        if self.fill is not None and not 0.0 < self.fill <= 1.0:
            found.append(f"fill: must be within (0, 1], got {self.fill}")
        for index, group in enumerate(self.groups):
            found += group.problems(f"groups[{index}]")
        if self.power is not None and self.power not in POWER_MODELS:
            found.append(f"power: {_unknown_power(self.power)}")
        return found

    def host_groups(self) -> tuple[HostGroup, ...]:
        """The groups, or one group of identical hosts."""
        return self.groups or (HostGroup(self.hosts, self.cpus, self.memory_bytes),)

    @property
    def host_count(self) -> int:
        return sum(g.hosts for g in self.host_groups())

    @property
    def host_names(self) -> tuple[str, ...]:
        count = self.host_count
        width = len(str(count - 1))
        return tuple(f"host{index:0{width}d}" for index in range(count))

    def sizes(self) -> list[tuple[float, int]]:
        """(CPUs, memory bytes) of every host, in ``host_names`` order."""
        return [(g.cpus, g.memory_bytes) for g in self.host_groups() for _ in range(g.hosts)]

    def power_models(self) -> dict[str, PowerModel]:
        """Each host's power model, for hosts that have one (a group's, else the cluster's)."""
        models = {}
        names = iter(self.host_names)
        for group in self.host_groups():
            chosen = group.power or self.power
            for _ in range(group.hosts):
                name = next(names)
                if chosen is not None:
                    models[name] = POWER_MODELS[chosen]
        return models


def _groups(raw: Any, problems: list[str]) -> tuple[HostGroup, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"groups: expected a list of {{hosts, cpus, memory_gib}}, got {raw!r}")
        return ()
    groups = []
    for index, item in enumerate(raw):
        where = f"groups[{index}]"
        if not isinstance(item, Mapping) or not (
            {"hosts", "cpus", "memory_gib"} <= set(item) <= {"hosts", "cpus", "memory_gib", "power"}
        ):
            problems.append(
                f"{where}: expected hosts, cpus, memory_gib and optionally power, got {item!r}"
            )
            continue
        numbers = [item[k] for k in ("hosts", "cpus", "memory_gib")]
        if any(isinstance(n, bool) or not isinstance(n, int | float) for n in numbers):
            problems.append(f"{where}: hosts, cpus and memory_gib must be numbers, got {item!r}")
            continue
        if not isinstance(item["hosts"], int):
            problems.append(f"{where}.hosts: expected a whole number, got {item['hosts']!r}")
            continue
        power = item.get("power")
        if power is not None and not isinstance(power, str):
            problems.append(f"{where}.power: expected a power model name, got {power!r}")
            continue
        groups.append(
            HostGroup(item["hosts"], float(item["cpus"]), int(item["memory_gib"] * GIB), power)
        )
    return tuple(groups)


@dataclass(frozen=True)
class Cluster:
    """Hosts with their capacity, each VM's private networks, and where every VM starts."""

    host_names: tuple[str, ...]
    host_cpus: Mapping[str, float]
    host_memory: Mapping[str, int]
    networks: Mapping[str, tuple[str, ...]]
    placement: Mapping[str, str]
    # Hosts with a power model (none: the replay reports no energy).
    host_power: Mapping[str, PowerModel] = field(default_factory=dict)
    # One core's CPU, on hosts that cap a domain at its vCPUs' cores (none: a domain may use the host).
    host_core: Mapping[str, float] = field(default_factory=dict)

    def chunks(self) -> dict[str, tuple[str, ...]]:
        """Seeded chunks: network name -> member VM names."""
        members: dict[str, list[str]] = {}
        for vm, nets in self.networks.items():
            for net in nets:
                members.setdefault(net, []).append(vm)
        return {net: tuple(sorted(vms)) for net, vms in sorted(members.items())}


def assign_chunks(names: Sequence[str], spec: ClusterSpec) -> dict[str, tuple[str, ...]]:
    """Chain a seeded share of the VMs into chunks of chunk_min..chunk_max, one private network each."""
    rng = random.Random(spec.seed)
    chosen = [n for n in names if rng.random() < spec.chunk_share]
    rng.shuffle(chosen)
    networks: dict[str, tuple[str, ...]] = {n: () for n in names}
    index = 0
    position = 0
    while len(chosen) - position >= spec.chunk_min:
        size = min(rng.randint(spec.chunk_min, spec.chunk_max), len(chosen) - position)
        network = f"{CHUNK_NETWORK_PREFIX}{index}"
        for name in chosen[position : position + size]:
            networks[name] = (network,)
        position += size
        index += 1
    return networks


def build_cluster(vms: Sequence[VmTrace], spec: ClusterSpec) -> Cluster:
    """Chunks by seed, then first fit by memory: largest chunk first, each on the first host with room.

    "Room" is memory below ``fill`` (by default just above the cluster average, so that first fit
    spreads the VMs over every host as an operator would, instead of leaving hosts empty). A chunk is placed as one unit, so every chunk starts whole. If nothing has room within ``fill``,
    the host with the most free memory takes it: the simulation still runs, overcommitted.
    """
    problems = spec.problems()
    if problems:
        raise ValidationError("cluster", problems)
    names = [vm.name for vm in vms]
    if len(set(names)) != len(names):
        raise ValidationError("workload", ["VM names are not unique"])
    networks = assign_chunks(names, spec)
    memory = {vm.name: vm.memory_bytes for vm in vms}
    units: dict[str, list[str]] = {}
    for name in names:
        key = networks[name][0] if networks[name] else f"vm:{name}"
        units.setdefault(key, []).append(name)
    ordered = sorted(units.values(), key=lambda group: (-sum(memory[n] for n in group), group[0]))
    hosts = spec.host_names
    sizes = dict(zip(hosts, spec.sizes(), strict=True))
    capacity = {h: sizes[h][1] for h in hosts}
    used = dict.fromkeys(hosts, 0)
    fill = spec.fill
    if fill is None:
        total = sum(memory.values()) / sum(capacity.values())
        fill = min(1.0, total + AUTO_FILL_SLACK)
    placement: dict[str, str] = {}
    for group in ordered:
        need = sum(memory[n] for n in group)
        # Room is a share of each host's memory: on mixed hosts every host fills to the same ratio.
        target = next((h for h in hosts if used[h] + need <= fill * capacity[h]), None)
        if target is None:
            target = min(hosts, key=lambda h: (used[h] / capacity[h], h))
        used[target] += need
        for name in group:
            placement[name] = target
    return Cluster(
        host_names=hosts,
        host_cpus={h: sizes[h][0] for h in hosts},
        host_memory=capacity,
        networks=networks,
        placement={n: placement[n] for n in names},
        host_power=spec.power_models(),
    )
