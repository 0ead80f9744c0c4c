"""The simulated cluster: hosts, seeded chunk assignment and the initial first-fit-by-memory placement."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from virtbalance.errors import ValidationError
from virtbalance.reader import (
    POSITIVE,
    RATIO,
    SHARE,
    at_least,
    option,
    read_valid,
    recheck,
    spec,
)
from virtbalance.simulator.power import POWER_MODELS, PowerModel
from virtbalance.simulator.traces import GIB, VmTrace

CHUNK_NETWORK_PREFIX = "simnet-"
AUTO_FILL_SLACK = 0.05


# A count of hosts, their CPUs and memory: the same rules for a group and for a cluster of one size.
_HOSTS = (at_least(1),)
_MEMORY = spec(key="memory_gib", scale=GIB, checks=(POSITIVE,))
_POWER = spec(choices=tuple(POWER_MODELS))  # a power model's name


@dataclass(frozen=True)
class HostGroup:
    """``hosts`` hosts of one size, for clusters of mixed hosts; ``power`` names their power model."""

    hosts: int = field(metadata=spec(checks=_HOSTS))
    cpus: float = field(metadata=spec(checks=(POSITIVE,)))
    memory_bytes: int = field(metadata=_MEMORY)
    power: str | None = field(default=None, metadata=_POWER)

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


@dataclass(frozen=True)
class ClusterSpec:
    """Host count and size, and how many VMs are chained into chunks by private networks."""

    hosts: int = option(10, checks=_HOSTS)
    cpus: float = option(32.0, checks=(POSITIVE,))
    memory_bytes: int = field(default=256 * GIB, metadata=_MEMORY)
    chunk_share: float = option(0.2, checks=(SHARE,))
    chunk_min: int = option(2, checks=(at_least(2),))
    chunk_max: int = 4
    seed: int = 1
    # First fit fills a host up to this share of its memory before trying the next one; None (auto)
    # is the cluster's average memory share plus AUTO_FILL_SLACK, so the start uses every host.
    fill: float | None = option(None, checks=(RATIO,), aliases={"auto": None})
    # Mixed clusters: groups of hosts of different sizes, in this order (instead of hosts/cpus/memory).
    groups: tuple[HostGroup, ...] = option(
        (), min_items=1, hint="groups of hosts, cpus, memory_gib"
    )
    # Power model of every host whose group names none (None: no energy is reported).
    power: str | None = field(default=None, metadata=_POWER)

    @classmethod
    def from_mapping(cls, data: Any, source: str = "cluster") -> ClusterSpec:
        """Validate a mapping (YAML ``cluster:`` section); ValidationError listing every problem."""
        return read_valid(cls, data, source)

    def section_problems(self) -> list[tuple[str, str]]:
        """Chunks of at least chunk_min and at most chunk_max VMs, as (key, problem)."""
        if self.chunk_max < self.chunk_min:
            return [
                ("chunk_max", f"must not be below chunk_min {self.chunk_min}, got {self.chunk_max}")
            ]
        return []

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
    problems = recheck(spec)
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
