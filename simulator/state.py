"""What a policy plug-in sees at one step of the replay, and what it may answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from virtbalance.chunks import Chunk, ChunkMember, find_chunks
from virtbalance.simulator.power import PowerModel

# Chunk lists kept for hosts' domain lists seen before; a storm of moves makes many, so start over.
CHUNK_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Move:
    """Migrate ``domain`` to ``destination``; it takes effect at the next step."""

    domain: str
    destination: str
    reason: str = ""
    # Moves with the same group, source and destination in a row run together (a chunk); "" groups
    # consecutive moves between the same two hosts.
    group: str = ""


@dataclass(frozen=True)
class MigrationRecord:
    """A migration that happened: it ended at ``time`` after ``duration`` seconds, copying ``memory_bytes``."""

    time: float
    domain: str
    source: str
    destination: str
    memory_bytes: int
    duration: float = 0.0


@dataclass(frozen=True)
class ClusterView:
    """The cluster at one step. The mappings belong to the engine: plug-ins read, never write."""

    time: float
    step: int
    step_seconds: float
    host_names: tuple[str, ...]
    host_cpus: Mapping[str, float]
    host_memory: Mapping[str, int]
    placement: Mapping[str, str]
    domains_by_host: Mapping[str, Sequence[str]]
    cpu: Mapping[str, float]
    memory: Mapping[str, int]
    vcpus: Mapping[str, int]
    networks: Mapping[str, tuple[str, ...]]
    host_cpu_used: Mapping[str, float]
    host_memory_used: Mapping[str, int]
    firing: frozenset[str]
    history: Sequence[MigrationRecord]
    # Hosts whose HostChronicallyHot fires (short overloads coming back; simulator.alerting).
    hot: frozenset[str] = frozenset()
    # Whether HostsImbalanced fires (the spread of the hosts' CPU ratios; simulator.alerting).
    imbalanced: bool = False
    # When the migrations decided so far will all have ended (the executor is busy until then).
    executing_until: float = 0.0
    # Each domain's CPU per step of the whole trace: plug-ins may read the past (indexes <= step) only.
    cpu_series: Mapping[str, Sequence[float]] = field(default_factory=dict)
    # Chunks found so far, by a host's domains in order (the engine keeps it across steps: chunks
    # change only when domains move).
    chunk_cache: dict[tuple[str, ...], list[Chunk]] = field(default_factory=dict)
    # Each host's power model, where the cluster has one (power-aware policies read it).
    host_power: Mapping[str, PowerModel] = field(default_factory=dict)
    # One core's CPU per host, where the cluster caps domains at their cores (simulator.cluster).
    host_core: Mapping[str, float] = field(default_factory=dict)

    def recent_peaks(self, steps: int) -> tuple[dict[str, float], dict[str, float]]:
        """Peak CPU over the last ``steps`` steps: per domain, and per host of the domains it runs now."""
        first = max(0, self.step - steps + 1)
        domains = {
            name: max(values[first : self.step + 1]) for name, values in self.cpu_series.items()
        }
        hosts = {}
        for host, names in self.domains_by_host.items():
            rows = [self.cpu_series[n] for n in names if n in self.cpu_series]
            hosts[host] = max(
                (sum(row[i] for row in rows) for i in range(first, self.step + 1)), default=0.0
            )
        return domains, hosts

    def recent_averages(self, steps: int) -> dict[str, float]:
        """Each domain's mean CPU over the last ``steps`` steps (those there are at the start)."""
        first = max(0, self.step - steps + 1)
        count = self.step + 1 - first
        return {
            name: sum(values[first : self.step + 1]) / count
            for name, values in self.cpu_series.items()
        }

    def cpu_ratio(self, host: str) -> float:
        return self.host_cpu_used[host] / self.host_cpus[host]

    def memory_free(self, host: str) -> int:
        return self.host_memory[host] - self.host_memory_used[host]

    def chunks_on(self, host: str) -> list[Chunk]:
        """The host's chunks, found the way the exporter and planner find them."""
        key = tuple(self.domains_by_host[host])
        found = self.chunk_cache.get(key)
        if found is None:
            if len(self.chunk_cache) >= CHUNK_CACHE_SIZE:
                self.chunk_cache.clear()
            found = self.chunk_cache[key] = find_chunks(
                ChunkMember(name, self.networks.get(name, ())) for name in key
            )
        return found
