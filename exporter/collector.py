"""The prometheus_client custom collector: one libvirt scrape -> fresh metric families."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from virtbalance import contract as c
from virtbalance.chunks import ChunkMember, chunk_of
from virtbalance.exporter.bridges import BridgeInspector
from virtbalance.exporter.domain_families import KIB, DomainFamilies
from virtbalance.exporter.exposition import Family, LabelSet, counter, gauge
from virtbalance.exporter.labels import (
    CHUNK_LABELS,
    INTERFACE_LABELS,
    POOL_LABELS,
    DomainLabels,
    LabelCache,
)
from virtbalance.exporter.privacy import PrivacyJudge
from virtbalance.exporter.source import (
    DURATION_STAGES,
    STAGES,
    Clock,
    DomainRecord,
    LibvirtSource,
    NodeFacts,
    PoolRecord,
    ScrapeData,
)
from virtbalance.exporter.topology import DomainTopology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapacityOverride:
    """Declared host capacity (several lab hosts share one machine); None keeps libvirt's figure."""

    cpus: int | None = None
    memory_bytes: int | None = None


class LibvirtCollector(Collector):
    """Exports libvirt host capacity, domain usage and chunk topology; all I/O comes in from outside."""

    def __init__(
        self,
        source: LibvirtSource,
        *,
        bridges: BridgeInspector,
        clock: Clock,
        capacity: CapacityOverride = CapacityOverride(),
        private_bridges: frozenset[str] = frozenset(),
        public_bridges: frozenset[str] = frozenset(),
    ) -> None:
        self._source = source
        self._clock = clock
        self._capacity = capacity
        self._privacy = PrivacyJudge(bridges, private_bridges, public_bridges)
        self._errors = dict.fromkeys(STAGES, 0)
        self._lock = threading.Lock()  # one scrape at a time: the connection and caches are shared
        self._labels = LabelCache()
        self._per_domain = DomainFamilies(self._labels.get)
        # The last topology label sets and what they were computed from (see _topology_families).
        self._topology_key: tuple[tuple[DomainLabels, ...], dict[tuple[str, str], bool]] | None = (
            None
        )
        self._topology_rows: tuple[list[LabelSet], list[LabelSet]] = ([], [])

    def describe(self) -> list[Metric]:
        # Empty: registering must not scrape libvirt; families are built fresh per collect().
        return []

    def healthy(self) -> bool:
        """Whether libvirt answers now (the health endpoint); waits for a running scrape."""
        with self._lock:
            return self._source.reachable()

    def collect(self) -> Iterator[Metric]:
        for family in self.families():
            yield family.to_metric()

    def families(self) -> list[Family]:
        """Scrape libvirt once and build every family (the HTTP endpoint renders these directly)."""
        with self._lock:
            start = self._clock()
            data = self._source.scrape()
            collect_start = self._clock()
            families = self._families(data)
            data.durations["collect"] = self._clock() - collect_start
            data.durations["total"] = self._clock() - start
            for stage, count in data.errors.items():
                self._errors[stage] = self._errors.get(stage, 0) + count
            families.extend(self._self_metrics(data))
        return families

    # --- building the families ---------------------------------------------------------------

    def _families(self, data: ScrapeData) -> list[Family]:
        up = gauge(c.LIBVIRT_UP, "Whether scraping libvirt's metrics was successful.")
        up.add((), 1.0 if data.up else 0.0)
        families = [up]
        if data.node is not None:
            families.extend(self._node_families(data.node, data.domains))
        if data.up:
            families.extend(self._domain_families(data))
        return families

    def _node_families(self, node: NodeFacts, domains: list[DomainRecord]) -> list[Family]:
        info = gauge(
            "libvirt_node_info",
            "The hypervisor host: names and versions, value 1.",
            (
                "hostname",
                "host_uuid",
                "libvirt_version",
                "hypervisor",
                "hypervisor_version",
                "cpu_model",
            ),
        )
        info.add(
            (
                node.hostname,
                node.host_uuid,
                node.libvirt_version,
                node.hypervisor,
                node.hypervisor_version,
                node.cpu_model,
            ),
            1.0,
        )
        cpus = gauge(c.NODE_CPUS, "Logical CPUs of the host (the declared capacity if set).")
        cpus.add((), float(self._capacity.cpus or node.cpus))
        families = [info, cpus]
        total = gauge(c.NODE_MEMORY_TOTAL, "Memory capacity of the host, in bytes.")
        free = gauge(c.NODE_MEMORY_FREE, "Free memory of the host, in bytes.")
        available = gauge(
            c.NODE_MEMORY_AVAILABLE,
            "Memory available for new domains without swapping, in bytes.",
        )
        if self._capacity.memory_bytes is not None:
            # Declared capacity: what the domains of this host do not use is free and available.
            used = sum(d.stats.get("balloon.current", 0) * KIB for d in domains)
            left = float(max(0, self._capacity.memory_bytes - used))
            total.add((), float(self._capacity.memory_bytes))
            free.add((), left)
            available.add((), left)
        else:
            if node.memory_total_bytes is not None:
                total.add((), float(node.memory_total_bytes))
            if node.memory_free_bytes is not None:
                free.add((), float(node.memory_free_bytes))
            if node.memory_available_bytes is not None:
                available.add((), float(node.memory_available_bytes))
        families.extend(f for f in (total, free, available) if f.values)
        cpu_seconds = counter(
            c.NODE_CPU_SECONDS, "CPU time of the host by mode, in seconds.", ("mode",)
        )
        for mode, seconds in sorted(node.cpu_seconds.items()):
            cpu_seconds.add((mode,), seconds)
        if cpu_seconds.values:
            families.append(cpu_seconds)
        return families

    def _domain_families(self, data: ScrapeData) -> list[Family]:
        families = self._per_domain.build(data.domains, data.inactive)
        self._labels.retain({record.uuid for record in (*data.domains, *data.inactive)})
        families += self._topology_families(data)
        families += self._pool_families(data.pools)
        return families

    @staticmethod
    def _pool_families(pools: list[PoolRecord]) -> list[Family]:
        state = gauge(
            "libvirt_storage_pool_state",
            "State of the storage pool (virStoragePoolState: 2 running).",
            POOL_LABELS,
        )
        capacity = gauge(
            "libvirt_storage_pool_capacity_bytes",
            "Size of the storage pool, in bytes.",
            POOL_LABELS,
        )
        allocation = gauge(
            "libvirt_storage_pool_allocation_bytes",
            "Current allocation of the storage pool, in bytes.",
            POOL_LABELS,
        )
        available = gauge(
            "libvirt_storage_pool_available_bytes",
            "Remaining free space of the storage pool, in bytes.",
            POOL_LABELS,
        )
        timed_out = gauge(
            "libvirt_storage_pool_timed_out",
            "1 when the scrape deadline passed before the storage pool was read.",
            POOL_LABELS,
        )
        for pool in pools:
            values = (pool.name,)
            timed_out.add(values, 1.0 if pool.state is None else 0.0)
            for family, value in (
                (state, pool.state),
                (capacity, pool.capacity_bytes),
                (allocation, pool.allocation_bytes),
                (available, pool.available_bytes),
            ):
                if value is not None:
                    family.add(values, float(value))
        return [state, capacity, allocation, available, timed_out]

    def _topology_families(self, data: ScrapeData) -> list[Family]:
        interface_info = gauge(
            "libvirt_domain_interface_info",
            "A domain interface: its bridge, libvirt network and whether that is private, value 1.",
            INTERFACE_LABELS,
        )
        chunk_info = gauge(
            c.DOMAIN_CHUNK_INFO,
            "The chunk (domains chained by private networks or a group) of a domain, value 1.",
            CHUNK_LABELS,
        )
        known = [
            (record.topology, self._labels.get(record.name, record.uuid, record.topology))
            for record in data.domains
            if record.topology is not None
        ]
        # Privacy is decided afresh every scrape (an uplink may have been plugged into a bridge),
        # once per distinct (network, bridge) pair rather than per interface.
        bridge_private: dict[str, bool] = {}
        privacy: dict[tuple[str, str], bool] = {}
        for topology, _ in known:
            for interface in topology.interfaces:
                pair = (interface.network, interface.bridge)
                if pair not in privacy:
                    privacy[pair] = self._privacy.is_private(
                        interface, data.networks_private, bridge_private
                    )
        # Same domains with the same topologies and privacy give the same rows and chunks: reuse
        # them (LabelCache hands out the same DomainLabels while name and topology are unchanged).
        key = (tuple(labels for _, labels in known), privacy)
        if key != self._topology_key:
            self._topology_key = key
            self._topology_rows = self._topology_rows_of(known, privacy)
        for family, label_sets in zip(
            (interface_info, chunk_info), self._topology_rows, strict=True
        ):
            family.label_sets = list(label_sets)
            family.values = [1.0] * len(label_sets)
        return [interface_info, chunk_info]

    @staticmethod
    def _topology_rows_of(
        known: list[tuple[DomainTopology, DomainLabels]], privacy: dict[tuple[str, str], bool]
    ) -> tuple[list[LabelSet], list[LabelSet]]:
        """Label sets of libvirt_domain_interface_info and libvirt_domain_chunk_info."""
        interface_rows: list[LabelSet] = []
        members = []
        for topology, labels in known:
            private_links = []
            for index, interface in enumerate(topology.interfaces):
                private = privacy[interface.network, interface.bridge]
                interface_rows.append(labels.interface(index, interface, private))
                if private:
                    private_links.append(interface.network or interface.bridge)
            members.append(
                ChunkMember(
                    name=labels.name,
                    private_networks=tuple(private_links),
                    group=topology.placement.group,
                )
            )
        chunks = chunk_of(members)
        chunk_rows = [labels.chunk(chunks[labels.name]) for _, labels in known]
        return interface_rows, chunk_rows

    def _self_metrics(self, data: ScrapeData) -> list[Family]:
        duration = gauge(
            c.SCRAPE_DURATION,
            "Time the last scrape spent per stage, in seconds.",
            ("stage",),
        )
        for stage in DURATION_STAGES:
            duration.add((stage,), data.durations.get(stage, 0.0))
        errors = counter(
            c.SCRAPE_ERRORS,
            "Failures while scraping libvirt, by stage.",
            ("stage",),
        )
        for stage in STAGES:
            errors.add((stage,), float(self._errors[stage]))
        return [duration, errors]
