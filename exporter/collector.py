"""The prometheus_client custom collector: one libvirt scrape -> fresh metric families."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from exporter.bridges import BridgeInspector
from exporter.exposition import Family, counter, gauge
from exporter.source import (
    DURATION_STAGES,
    STAGES,
    Clock,
    DomainRecord,
    LibvirtSource,
    NodeFacts,
    ScrapeData,
)
from exporter.topology import Interface
from virtbalance.chunks import ChunkMember, chunk_of

log = logging.getLogger(__name__)

KIB = 1024
NS = 1e9
DOMAIN_LABELS = ("domain", "uuid")
BLOCK_LABELS = ("domain", "uuid", "source_file", "target_device")
NET_LABELS = ("domain", "uuid", "source_bridge", "target_device")
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
def _device_keys(
    group: str, index: int, fields: tuple[str, ...]
) -> tuple[str, str, tuple[str, ...]]:
    """Bulk-stats keys of device ``index`` (path, name, the fields), built once per process."""
    prefix = f"{group}.{index}."
    return prefix + "path", prefix + "name", tuple(prefix + field for field in fields)


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
            (*DOMAIN_LABELS, "vcpu"),
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
        block_rows = [f.rows for f in block]
        net_rows = [f.rows for f in net]
        for record in data.domains:
            stats = record.stats
            ident = (record.name, record.uuid)
            if "state.state" in stats:
                state.add(ident, float(stats["state.state"]))
            if "cpu.time" in stats:
                cpu_time.add(ident, stats["cpu.time"] / NS)
            if "vcpu.current" in stats:
                vcpus.add(ident, float(stats["vcpu.current"]))
                for index in range(int(stats.get("vcpu.maximum", stats["vcpu.current"]))):
                    value = stats.get(f"vcpu.{index}.delay")
                    if value is not None:
                        delay.add((*ident, str(index)), value / NS)
            if "balloon.maximum" in stats:
                max_memory.add(ident, float(stats["balloon.maximum"] * KIB))
            if "balloon.current" in stats:
                memory.add(ident, float(stats["balloon.current"] * KIB))
                balloon.add(ident, float(stats["balloon.current"] * KIB))
            if "balloon.rss" in stats:
                rss.add(ident, float(stats["balloon.rss"] * KIB))
            if record.migrating is not None:
                migrating.add(ident, 1.0 if record.migrating else 0.0)
            if (
                stats.get("dirtyrate.calc_status") == DIRTYRATE_MEASURED
                and "dirtyrate.megabytes_per_second" in stats
            ):
                dirty.add(ident, float(stats["dirtyrate.megabytes_per_second"] * KIB * KIB))
            for index in range(int(stats.get("block.count", 0))):
                path_key, name_key, keys = _device_keys("block", index, BLOCK_FIELDS)
                labels = (*ident, stats.get(path_key, ""), stats.get(name_key, ""))
                for rows, key in zip(block_rows, keys, strict=True):
                    value = stats.get(key)
                    if value is not None:
                        rows.append((labels, float(value)))
            for index in range(int(stats.get("net.count", 0))):
                _, name_key, keys = _device_keys("net", index, NET_FIELDS)
                target = stats.get(name_key, "")
                bridge = record.topology.bridge_of(target) if record.topology else ""
                labels = (*ident, bridge, target)
                for rows, key in zip(net_rows, keys, strict=True):
                    value = stats.get(key)
                    if value is not None:
                        rows.append((labels, float(value)))
        families = [number, state, cpu_time, vcpus, max_memory, memory, rss, balloon, delay]
        families += [migrating, dirty, *block, *net]
        families += self._topology_families(data)
        return families

    def _topology_families(self, data: ScrapeData) -> list[Family]:
        interface_info = gauge(
            "libvirt_domain_interface_info",
            "A domain interface: its bridge, libvirt network and whether that is private, value 1.",
            (*DOMAIN_LABELS, "interface", "bridge", "network", "private"),
        )
        chunk_info = gauge(
            "libvirt_domain_chunk_info",
            "The chunk (domains chained by private networks or a group) of a domain, value 1.",
            (*DOMAIN_LABELS, "chunk"),
        )
        bridge_private: dict[str, bool] = {}
        members = []
        known = [d for d in data.domains if d.topology is not None]
        for record in known:
            assert record.topology is not None  # narrowed by the filter above
            private_links = []
            for interface in record.topology.interfaces:
                private = self._is_private(interface, data.networks_private, bridge_private)
                interface_info.add(
                    (
                        record.name,
                        record.uuid,
                        interface.target,
                        interface.bridge,
                        interface.network,
                        "true" if private else "false",
                    ),
                    1.0,
                )
                if private:
                    private_links.append(interface.network or interface.bridge)
            members.append(
                ChunkMember(
                    name=record.name,
                    private_networks=tuple(private_links),
                    group=record.topology.placement.group,
                )
            )
        chunks = chunk_of(members)
        for record in known:
            chunk_info.add((record.name, record.uuid, chunks[record.name]), 1.0)
        return [interface_info, chunk_info]

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
