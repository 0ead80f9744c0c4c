"""Seeded random cluster snapshots for the planner's tests and benchmarks: chunks, pins, anti-affinity, overloads."""

from __future__ import annotations

import random
from dataclasses import dataclass

from virtbalance.snapshot import DomainState, HostState, Snapshot

MIB = 2**20
GIB = 2**30
NOW = 1_700_000_000.0


@dataclass(frozen=True)
class Shape:
    """What a random instance looks like; fractions are of hosts or of domains."""

    hosts: int = 10
    domains: int = 60
    chunked: float = 0.20  # domains that belong to a chunk of 2-4
    pinned: float = 0.05
    anti_affinity: float = 0.05
    cooling: float = 0.03  # domains migrated within the cooldown window
    overloaded: float = 0.10  # hosts above cpu_high (a third of them above memory_high too)
    maintenance: float = 0.0
    calm_cpu: tuple[float, float] = (0.05, 0.55)  # CPU ratio range of the hosts not overloaded
    hot_cpu: tuple[float, float] = (0.78, 0.97)  # CPU ratio range of the overloaded hosts


def generate(seed: int, shape: Shape) -> Snapshot:
    """A snapshot where every number is a whole MiB or a hundredth of a core, so exact solvers agree."""
    rng = random.Random(seed)
    hosts: list[HostState] = []
    domains: list[DomainState] = []
    per_host = _spread(rng, shape.domains, shape.hosts)
    overloaded = set(rng.sample(range(shape.hosts), max(1, round(shape.overloaded * shape.hosts))))
    in_maintenance = set(rng.sample(range(shape.hosts), round(shape.maintenance * shape.hosts)))
    aa_keys = [f"aa{i}" for i in range(max(2, shape.hosts // 3))]
    serial = 0
    for index in range(shape.hosts):
        name = f"hv{index:04d}"
        cpus = float(rng.choice((8, 16, 32)))
        memory = rng.choice((32, 64, 128)) * GIB
        count = per_host[index]
        if index in overloaded:
            cpu_ratio = rng.uniform(*shape.hot_cpu)
            memory_ratio = rng.uniform(0.91, 0.96) if rng.random() < 0.33 else rng.uniform(0.3, 0.8)
        else:
            cpu_ratio = rng.uniform(*shape.calm_cpu)
            memory_ratio = rng.uniform(0.2, 0.7)
        immovable = round(cpus * rng.uniform(0.0, 0.04), 2)
        cpu_weights = [rng.expovariate(1.0) for _ in range(count)]
        memory_weights = [rng.expovariate(1.0) for _ in range(count)]
        cpu_total = max(0.0, cpus * cpu_ratio - immovable)
        memory_total = memory * memory_ratio
        used_keys: set[str] = set()
        chunk_left = 0
        network = ""
        own: list[DomainState] = []
        for k in range(count):
            serial += 1
            networks: tuple[str, ...] = ()
            if chunk_left > 0:
                networks, chunk_left = (network,), chunk_left - 1
            elif k < count - 1 and rng.random() < shape.chunked / 1.9:
                network = f"lan{k}"
                networks, chunk_left = (network,), rng.randint(1, 3)
            key = None
            if rng.random() < shape.anti_affinity:
                key = rng.choice(aa_keys)
                key = None if key in used_keys else key
                if key:
                    used_keys.add(key)
            cooling = rng.random() < shape.cooling
            own.append(
                DomainState(
                    name=f"vm{serial:06d}",
                    host=name,
                    vcpus=rng.randint(1, 8),
                    cpu_used=round(cpu_total * cpu_weights[k] / sum(cpu_weights), 2),
                    memory_bytes=max(
                        64, round(memory_total * memory_weights[k] / sum(memory_weights) / MIB)
                    )
                    * MIB,
                    private_networks=networks,
                    anti_affinity=key,
                    pinned=rng.random() < shape.pinned,
                    last_migrated=NOW - rng.uniform(60, 3000) if cooling else None,
                    last_host=f"hv{rng.randrange(shape.hosts):04d}" if cooling else None,
                )
            )
        domains.extend(own)
        hosts.append(
            HostState(
                name=name,
                cpus=cpus,
                memory_bytes=memory,
                cpu_used=round(immovable + sum(d.cpu_used for d in own), 2),
                memory_used_bytes=sum(d.memory_bytes for d in own),
                maintenance=index in in_maintenance,
            )
        )
    return Snapshot(time=NOW, hosts=tuple(hosts), domains=tuple(domains))


def _spread(rng: random.Random, domains: int, hosts: int) -> list[int]:
    counts = [domains // hosts] * hosts
    for index in rng.sample(range(hosts), domains % hosts):
        counts[index] += 1
    return counts


def tight(seed: int) -> Shape:
    """A tight cluster: a third of the hosts at 80-105% CPU, the others at 35-60%, half the domains in
    chunks of 2-4, a few pinned and anti-affine, none in cooldown (so no host is settling: what is hard
    is where to put things). Overloaded hosts compete for the little room there is."""
    rng = random.Random(seed)
    hosts = rng.randint(4, 30)
    return Shape(
        hosts=hosts,
        domains=hosts * rng.randint(8, 24),
        chunked=0.5,
        cooling=0.0,
        overloaded=1 / 3,
        calm_cpu=(0.35, 0.6),
        hot_cpu=(0.80, 1.05),
    )
