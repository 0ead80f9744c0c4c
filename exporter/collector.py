"""The prometheus_client custom collector: one libvirt scrape -> fresh metric families."""

from __future__ import annotations

import functools
import logging
import operator
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.bridges import BridgeInspector
from exporter.exposition import Family, LabelSet, Row, counter, gauge
from exporter.labels import (
    BLOCK_LABELS,
    CHUNK_LABELS,
    DOMAIN_LABELS,
    INTERFACE_LABELS,
    NET_LABELS,
    VCPU_LABELS,
    DomainLabels,
    LabelCache,
)
from exporter.source import (
    DURATION_STAGES,
    STAGES,
    Clock,
    DomainRecord,
    LibvirtSource,
    NodeFacts,
    ScrapeData,
)
from exporter.topology import DomainTopology, Interface
from virtbalance.chunks import ChunkMember, chunk_of

log = logging.getLogger(__name__)

KIB = 1024
NS = 1e9
# (metric suffix, bulk-stats field, help) for the Go exporter's per-device counters.
BLOCK_COUNTERS = (
    ("read_bytes", "rd.bytes", "Number of bytes read from a block device, in bytes."),
    ("read_requests", "rd.reqs", "Number of read requests from a block device."),
    ("write_bytes", "wr.bytes", "Number of bytes written to a block device, in bytes."),
    ("write_requests", "wr.reqs", "Number of write requests to a block device."),
)
NET_COUNTERS = (
    ("receive_bytes", "rx.bytes", "Number of bytes received on a network interface, in bytes."),
    ("receive_packets", "rx.pkts", "Number of packets received on a network interface."),
    ("receive_errors", "rx.errs", "Number of packet receive errors on a network interface."),
    ("receive_drops", "rx.drop", "Number of packet receive drops on a network interface."),
    ("transmit_bytes", "tx.bytes", "Number of bytes transmitted on a network interface, in bytes."),
    ("transmit_packets", "tx.pkts", "Number of packets transmitted on a network interface."),
    ("transmit_errors", "tx.errs", "Number of packet transmit errors on a network interface."),
    ("transmit_drops", "tx.drop", "Number of packet transmit drops on a network interface."),
)
BLOCK_FIELDS = tuple(key for _, key, _ in BLOCK_COUNTERS)
NET_FIELDS = tuple(key for _, key, _ in NET_COUNTERS)
DIRTYRATE_MEASURED = 2  # virDomainDirtyRateStatus: the last calculation has finished


@dataclass(frozen=True)
class CapacityOverride:
    """Declared host capacity (several lab hosts share one machine); None keeps libvirt's figure."""

    cpus: int | None = None
    memory_bytes: int | None = None


@functools.cache
def _vcpu_delay_key(index: int) -> str:
    return f"vcpu.{index}.delay"


@dataclass(frozen=True)
class _DeviceKeys:
    """Bulk-stats keys of one device index: its path, its name and its counter fields."""

    path: str
    name: str
    fields: tuple[str, ...]
    get_fields: Callable[[dict[str, Any]], tuple[Any, ...]]  # all fields in one C call


@functools.cache
def _device_keys(group: str, index: int, fields: tuple[str, ...]) -> _DeviceKeys:
    prefix = f"{group}.{index}."
    keys = tuple(prefix + field for field in fields)
    return _DeviceKeys(prefix + "path", prefix + "name", keys, operator.itemgetter(*keys))


def _add_device(
    rows_by_field: list[list[Row]], device: LabelSet, stats: dict[str, Any], keys: _DeviceKeys
) -> None:
    """One device's counters into their families' rows; a field libvirt left out has no row."""
    try:
        values = keys.get_fields(stats)
    except KeyError:  # e.g. NOWAIT skipped a busy domain's monitor query: add what is there
        for rows, key in zip(rows_by_field, keys.fields, strict=True):
            if key in stats:
                rows.append((device, float(stats[key])))
        return
    for rows, value in zip(rows_by_field, values, strict=True):
        rows.append((device, float(value)))


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
        self._bridges = bridges
        self._clock = clock
        self._capacity = capacity
        self._private = private_bridges
        self._public = public_bridges
        self._errors = dict.fromkeys(STAGES, 0)
        self._lock = threading.Lock()  # one scrape at a time: the connection and caches are shared
        self._unknown_bridges_logged: set[str] = set()
        self._labels = LabelCache()
        # The last topology rows and what they were computed from (see _topology_families).
        self._topology_key: tuple[tuple[DomainLabels, ...], dict[tuple[str, str], bool]] | None = (
            None
        )
        self._topology_rows: tuple[list[Row], list[Row]] = ([], [])

    def describe(self) -> list[Metric]:
        # Empty: registering must not scrape libvirt; families are built fresh per collect().
        return []

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
        up = gauge("libvirt_up", "Whether scraping libvirt's metrics was successful.")
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
        cpus = gauge(
            "libvirt_node_cpus", "Logical CPUs of the host (the declared capacity if set)."
        )
        cpus.add((), float(self._capacity.cpus or node.cpus))
        families = [info, cpus]
        total = gauge("libvirt_node_memory_total_bytes", "Memory capacity of the host, in bytes.")
        free = gauge("libvirt_node_memory_free_bytes", "Free memory of the host, in bytes.")
        available = gauge(
            "libvirt_node_memory_available_bytes",
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
        families.extend(f for f in (total, free, available) if f.rows)
        cpu_seconds = counter(
            "libvirt_node_cpu_seconds_total", "CPU time of the host by mode, in seconds.", ("mode",)
        )
        for mode, seconds in sorted(node.cpu_seconds.items()):
            cpu_seconds.add((mode,), seconds)
        if cpu_seconds.rows:
            families.append(cpu_seconds)
        return families

    def _domain_families(self, data: ScrapeData) -> list[Family]:
        number = gauge("libvirt_domains_number", "Number of domains.")
        number.add((), float(len(data.domains)))
        state = gauge("libvirt_domain_state_code", "State of the domain.", DOMAIN_LABELS)
        cpu_time = counter(
            "libvirt_domain_info_cpu_time_seconds_total",
            "Amount of CPU time used by the domain, in seconds.",
            DOMAIN_LABELS,
        )
        vcpus = gauge(
            "libvirt_domain_info_virtual_cpus",
            "Number of virtual CPUs for the domain.",
            DOMAIN_LABELS,
        )
        max_memory = gauge(
            "libvirt_domain_info_maximum_memory_bytes",
            "Maximum allowed memory of the domain, in bytes.",
            DOMAIN_LABELS,
        )
        memory = gauge(
            "libvirt_domain_info_memory_usage_bytes",
            "Memory usage of the domain, in bytes.",
            DOMAIN_LABELS,
        )
        rss = gauge(
            "libvirt_domain_memory_rss_bytes",
            "Resident memory of the domain's process on the host, in bytes.",
            DOMAIN_LABELS,
        )
        balloon = gauge(
            "libvirt_domain_memory_balloon_current_bytes",
            "Memory the balloon currently gives the guest, in bytes.",
            DOMAIN_LABELS,
        )
        delay = counter(
            "libvirt_domain_vcpu_delay_seconds_total",
            "Time a vCPU was runnable but waited for a host CPU (steal), in seconds.",
            VCPU_LABELS,
        )
        migrating = gauge(
            "libvirt_domain_migration_in_progress",
            "1 while a migration job of the domain runs on this host.",
            DOMAIN_LABELS,
        )
        dirty = gauge(
            "libvirt_domain_dirty_rate_bytes_per_second",
            "Memory dirty rate of the last libvirt dirty-rate calculation, in bytes per second.",
            DOMAIN_LABELS,
        )
        block = [
            counter(f"libvirt_domain_block_stats_{name}_total", text, BLOCK_LABELS)
            for name, _, text in BLOCK_COUNTERS
        ]
        net = [
            counter(f"libvirt_domain_interface_stats_{name}_total", text, NET_LABELS)
            for name, _, text in NET_COUNTERS
        ]
        # Hot loop (25,000 samples for 1,000 domains): cached label sets, rows appended directly.
        block_rows = [f.rows for f in block]
        net_rows = [f.rows for f in net]
        labels_of = self._labels.get
        for record in data.domains:
            stats = record.stats
            labels = labels_of(record.name, record.uuid, record.topology)
            ident = labels.ident
            if "state.state" in stats:
                state.rows.append((ident, float(stats["state.state"])))
            if "cpu.time" in stats:
                cpu_time.rows.append((ident, stats["cpu.time"] / NS))
            if "vcpu.current" in stats:
                vcpus.rows.append((ident, float(stats["vcpu.current"])))
                for index in range(int(stats.get("vcpu.maximum", stats["vcpu.current"]))):
                    value = stats.get(_vcpu_delay_key(index))
                    if value is not None:
                        delay.rows.append((labels.vcpu(index), value / NS))
            if "balloon.maximum" in stats:
                max_memory.rows.append((ident, float(stats["balloon.maximum"] * KIB)))
            if "balloon.current" in stats:
                current = float(stats["balloon.current"] * KIB)
                memory.rows.append((ident, current))
                balloon.rows.append((ident, current))
            if "balloon.rss" in stats:
                rss.rows.append((ident, float(stats["balloon.rss"] * KIB)))
            if record.migrating is not None:
                migrating.rows.append((ident, 1.0 if record.migrating else 0.0))
            if (
                stats.get("dirtyrate.calc_status") == DIRTYRATE_MEASURED
                and "dirtyrate.megabytes_per_second" in stats
            ):
                rate = float(stats["dirtyrate.megabytes_per_second"] * KIB * KIB)
                dirty.rows.append((ident, rate))
            for index in range(int(stats.get("block.count", 0))):
                keys = _device_keys("block", index, BLOCK_FIELDS)
                device = labels.block(stats.get(keys.path, ""), stats.get(keys.name, ""))
                _add_device(block_rows, device, stats, keys)
            for index in range(int(stats.get("net.count", 0))):
                keys = _device_keys("net", index, NET_FIELDS)
                _add_device(net_rows, labels.net(stats.get(keys.name, "")), stats, keys)
        self._labels.retain({record.uuid for record in data.domains})
        families = [number, state, cpu_time, vcpus, max_memory, memory, rss, balloon, delay]
        families += [migrating, dirty, *block, *net]
        families += self._topology_families(data)
        return families

    def _topology_families(self, data: ScrapeData) -> list[Family]:
        interface_info = gauge(
            "libvirt_domain_interface_info",
            "A domain interface: its bridge, libvirt network and whether that is private, value 1.",
            INTERFACE_LABELS,
        )
        chunk_info = gauge(
            "libvirt_domain_chunk_info",
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
                    privacy[pair] = self._is_private(
                        interface, data.networks_private, bridge_private
                    )
        # Same domains with the same topologies and privacy give the same rows and chunks: reuse
        # them (LabelCache hands out the same DomainLabels while name and topology are unchanged).
        key = (tuple(labels for _, labels in known), privacy)
        if key != self._topology_key:
            self._topology_key = key
            self._topology_rows = self._topology_rows_of(known, privacy)
        interface_info.rows = list(self._topology_rows[0])
        chunk_info.rows = list(self._topology_rows[1])
        return [interface_info, chunk_info]

    @staticmethod
    def _topology_rows_of(
        known: list[tuple[DomainTopology, DomainLabels]], privacy: dict[tuple[str, str], bool]
    ) -> tuple[list[Row], list[Row]]:
        """Rows of libvirt_domain_interface_info and libvirt_domain_chunk_info."""
        interface_rows: list[Row] = []
        members = []
        for topology, labels in known:
            private_links = []
            for index, interface in enumerate(topology.interfaces):
                private = privacy[interface.network, interface.bridge]
                interface_rows.append((labels.interface(index, interface, private), 1.0))
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
        chunk_rows: list[Row] = [(labels.chunk(chunks[labels.name]), 1.0) for _, labels in known]
        return interface_rows, chunk_rows

    def _is_private(
        self, interface: Interface, networks_private: dict[str, bool], bridges: dict[str, bool]
    ) -> bool:
        for name in (interface.network, interface.bridge):
            if name in self._private:
                return True
            if name in self._public:
                return False
        if interface.network and interface.network in networks_private:
            return networks_private[interface.network]
        if not interface.bridge:
            return False  # direct (macvtap) and user interfaces reach the outside, never a chunk
        if interface.bridge not in bridges:
            private = self._bridges.is_private(interface.bridge)
            if private is None:
                # Not visible from here: chaining too much is safe, splitting a chunk is not.
                if interface.bridge not in self._unknown_bridges_logged:
                    self._unknown_bridges_logged.add(interface.bridge)
                    log.warning("bridge %s is not visible; counted as private", interface.bridge)
                private = True
            bridges[interface.bridge] = private
        return bridges[interface.bridge]

    def _self_metrics(self, data: ScrapeData) -> list[Family]:
        duration = gauge(
            "libvirt_exporter_scrape_duration_seconds",
            "Time the last scrape spent per stage, in seconds.",
            ("stage",),
        )
        for stage in DURATION_STAGES:
            duration.add((stage,), data.durations.get(stage, 0.0))
        errors = counter(
            "libvirt_exporter_scrape_errors_total",
            "Failures while scraping libvirt, by stage.",
            ("stage",),
        )
        for stage in STAGES:
            errors.add((stage,), float(self._errors[stage]))
        return [duration, errors]
