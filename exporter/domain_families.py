"""Per-domain metric families (both Go exporters' names and virtbalance's) from one scrape's records."""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable
from typing import Any

import libvirt

from exporter.exposition import Family, LabelSet, counter, gauge
from exporter.labels import (
    BLOCK_INFO_LABELS,
    BLOCK_LABELS,
    DOMAIN_LABELS,
    NET_INFO_LABELS,
    NET_LABELS,
    OPENSTACK_LABELS,
    OS_LABELS,
    STATE_LABELS,
    VCPU_LABELS,
    DomainLabels,
)
from exporter.source import DomainRecord
from exporter.topology import DomainTopology
from virtbalance import contract as c

KIB = 1024
# Values are divided by these to reach base units (division keeps 870000000 ns at 0.87 s exactly).
NS = 1e9  # nanoseconds per second
MS = 1e3  # milliseconds per second
FROM_KIB = 1 / KIB  # a power of two: dividing by it multiplies by 1024 exactly
DIRTYRATE_MEASURED = 2  # virDomainDirtyRateStatus: the last calculation has finished

# (metric suffix, bulk-stats field, help, divisor to base units) per device; *_total are counters.
BLOCK_SERIES = (
    ("read_bytes_total", "rd.bytes", "Number of bytes read from a block device, in bytes.", 1),
    ("read_requests_total", "rd.reqs", "Number of read requests from a block device.", 1),
    ("write_bytes_total", "wr.bytes", "Number of bytes written to a block device, in bytes.", 1),
    ("write_requests_total", "wr.reqs", "Number of write requests to a block device.", 1),
    (
        "read_time_seconds_total",
        "rd.times",
        "Time spent on reads from a block device, in seconds.",
        NS,
    ),
    (
        "write_time_seconds_total",
        "wr.times",
        "Time spent on writes to a block device, in seconds.",
        NS,
    ),
    ("flush_requests_total", "fl.reqs", "Number of flush requests to a block device.", 1),
    ("flush_time_seconds_total", "fl.times", "Time spent flushing a block device, in seconds.", NS),
    (
        "capacity_bytes",
        "capacity",
        "Logical size of the block device's backing image, in bytes.",
        1,
    ),
)
NET_SERIES = (
    (
        "receive_bytes_total",
        "rx.bytes",
        "Number of bytes received on a network interface, in bytes.",
        1,
    ),
    ("receive_packets_total", "rx.pkts", "Number of packets received on a network interface.", 1),
    (
        "receive_errors_total",
        "rx.errs",
        "Number of packet receive errors on a network interface.",
        1,
    ),
    ("receive_drops_total", "rx.drop", "Number of packet receive drops on a network interface.", 1),
    (
        "transmit_bytes_total",
        "tx.bytes",
        "Number of bytes transmitted on a network interface, in bytes.",
        1,
    ),
    (
        "transmit_packets_total",
        "tx.pkts",
        "Number of packets transmitted on a network interface.",
        1,
    ),
    (
        "transmit_errors_total",
        "tx.errs",
        "Number of packet transmit errors on a network interface.",
        1,
    ),
    (
        "transmit_drops_total",
        "tx.drop",
        "Number of packet transmit drops on a network interface.",
        1,
    ),
)
VCPU_SERIES = (
    ("state", "state", "State of the vCPU (virVcpuState: 0 offline, 1 running, 2 blocked).", 1),
    ("time_seconds_total", "time", "Time spent by the virtual CPU, in seconds.", NS),
    (
        "wait_seconds_total",
        "wait",
        "Time the vCPU wanted to run while the host scheduler ran something else, in seconds.",
        NS,
    ),
    (
        "delay_seconds_total",
        "delay",
        "Time a vCPU was runnable but waited for a host CPU (steal), in seconds.",
        NS,
    ),
)
# The guest's balloon driver reports most of these; without one only current, maximum, rss.
MEMORY_SERIES = (
    ("current_balloon_bytes", "balloon.current", "Current balloon size, in bytes.", FROM_KIB),
    ("maximum_bytes", "balloon.maximum", "Maximum memory the domain may use, in bytes.", FROM_KIB),
    (
        "swap_in_bytes",
        "balloon.swap_in",
        "Data the guest read from swap space, in bytes.",
        FROM_KIB,
    ),
    (
        "swap_out_bytes",
        "balloon.swap_out",
        "Data the guest wrote to swap space, in bytes.",
        FROM_KIB,
    ),
    (
        "major_fault_total",
        "balloon.major_fault",
        "Page faults of the guest that needed disk I/O.",
        1,
    ),
    ("minor_fault_total", "balloon.minor_fault", "Page faults of the guest without disk I/O.", 1),
    ("unused_bytes", "balloon.unused", "Memory the guest leaves unused, in bytes.", FROM_KIB),
    ("available_bytes", "balloon.available", "Memory the guest sees, in bytes.", FROM_KIB),
    (
        "usable_bytes",
        "balloon.usable",
        "Memory usable by the guest without swapping (MemAvailable), in bytes.",
        FROM_KIB,
    ),
    (
        "last_update_timestamp_seconds",
        "balloon.last-update",
        "When the guest last updated its memory statistics, in seconds since the epoch.",
        1,
    ),
    (
        "disk_caches_bytes",
        "balloon.disk_caches",
        "Guest memory reclaimable without I/O, in bytes.",
        FROM_KIB,
    ),
    ("hugetlb_pgalloc_total", "balloon.hugetlb_pgalloc", "Huge page allocations in the guest.", 1),
    (
        "hugetlb_pgfail_total",
        "balloon.hugetlb_pgfail",
        "Failed huge page allocations in the guest.",
        1,
    ),
    (
        "rss_bytes",
        "balloon.rss",
        "Resident memory of the domain's process on the host, in bytes.",
        FROM_KIB,
    ),
)
# virDomainGetJobStats fields; inovex names them after virDomainGetJobInfo (file = disk).
JOB_SERIES = (
    ("type", "type", "Code of the domain job type (virDomainJobType: 0 none).", 1),
    ("time_elapsed_seconds", "time_elapsed", "Time since the domain job started, in seconds.", MS),
    ("time_remaining_seconds", "time_remaining", "Time the domain job expects to need.", MS),
    ("data_total_bytes", "data_total", "Data the domain job has to process, in bytes.", 1),
    ("data_processed_bytes", "data_processed", "Data the domain job has processed, in bytes.", 1),
    (
        "data_remaining_bytes",
        "data_remaining",
        "Data the domain job still has to process, in bytes.",
        1,
    ),
    ("memory_total_bytes", "memory_total", "Memory the domain job has to process, in bytes.", 1),
    (
        "memory_processed_bytes",
        "memory_processed",
        "Memory the domain job has processed, in bytes.",
        1,
    ),
    (
        "memory_remaining_bytes",
        "memory_remaining",
        "Memory the domain job still has to process, in bytes.",
        1,
    ),
    ("file_total_bytes", "disk_total", "Disk data the domain job has to process, in bytes.", 1),
    (
        "file_processed_bytes",
        "disk_processed",
        "Disk data the domain job has processed, in bytes.",
        1,
    ),
    (
        "file_remaining_bytes",
        "disk_remaining",
        "Disk data the domain job still has to process, in bytes.",
        1,
    ),
)
JOB_KEYS = tuple(key for _, key, _, _ in JOB_SERIES)
JOB_FACTORS = tuple(factor for _, _, _, factor in JOB_SERIES)


@functools.cache
def _device_keys(group: str, count: int, fields: tuple[str, ...]) -> tuple[str, ...]:
    """Bulk-stats keys of ``count`` devices of ``group``, device by device (block.0.rd.bytes, ...)."""
    return tuple(f"{group}.{index}.{field}" for index in range(count) for field in fields)


class _Table:
    """Families that share their label sets, filled a row (device) at a time, split at the end.

    Each domain adds its rows with one C-level gather (``map(stats.get, keys)``) instead of one
    Python step per sample; ``finish`` cuts the gathered values into one column per family.
    """

    def __init__(
        self, families: list[Family], fields: tuple[str, ...], factors: tuple[float, ...]
    ) -> None:
        self.families = families
        self.fields = fields  # the bulk-stats field (key, or key suffix per device) of each family
        self.factors = factors  # divisors to base units
        self.label_sets: list[LabelSet] = []
        self.values: list[Any] = []  # row after row, len(families) values per row

    def add(self, label_sets: list[LabelSet], stats: dict[str, Any], keys: tuple[str, ...]) -> None:
        """Rows for ``label_sets``: ``keys`` holds each row's fields, in family order, row by row."""
        self.label_sets.extend(label_sets)
        self.values.extend(map(stats.get, keys))

    def finish(self) -> None:
        width = len(self.families)
        for index, (family, factor) in enumerate(zip(self.families, self.factors, strict=True)):
            column = self.values[index::width]
            label_sets = self.label_sets
            if None in column:  # fields libvirt left out (NOWAIT, no balloon driver): no sample
                present = [i for i, value in enumerate(column) if value is not None]
                label_sets = [label_sets[i] for i in present]
                column = [column[i] for i in present]
            family.label_sets = list(label_sets)
            if factor == 1:
                family.values = column  # libvirt's ints stay ints: exact, and cheaper to render
            elif factor == FROM_KIB:
                family.values = list(map(operator.mul, column, itertools.repeat(KIB)))
            else:
                family.values = list(map(operator.truediv, column, itertools.repeat(factor)))


def _table(
    prefix: str, series: tuple[tuple[str, str, str, float], ...], labels: tuple[str, ...]
) -> _Table:
    families = [
        (counter if name.endswith("_total") else gauge)(f"{prefix}_{name}", text, labels)
        for name, _, text, _ in series
    ]
    return _Table(families, tuple(key for _, key, _, _ in series), tuple(f for *_, f in series))


class DomainFamilies:
    """Builds the per-domain families of one scrape; label sets come from the shared cache."""

    def __init__(
        self, labels_of: Callable[[str, str, DomainTopology | None], DomainLabels]
    ) -> None:
        self._labels_of = labels_of

    def build(self, domains: list[DomainRecord], inactive: list[DomainRecord]) -> list[Family]:
        """Families of the active ``domains`` plus the inactive ones' state and info series."""
        f = _Families()
        labels_of = self._labels_of
        for record in domains:
            labels = labels_of(record.name, record.uuid, record.topology)
            f.add_active(record, labels)
        for record in inactive:
            f.add_inactive(record, labels_of(record.name, record.uuid, record.topology))
        f.domains.add((), float(len(domains) + len(inactive)))
        f.domains_number.add((), float(len(domains)))
        return f.all()


class _Families:
    """The families of one scrape, filled domain by domain (the hot loop: cached label sets)."""

    def __init__(self) -> None:
        self.domains_number = gauge(c.DOMAINS_NUMBER, "Number of domains.")
        self.domains = gauge("libvirt_domains", "Number of domains, running or not.")
        self.timed_out = gauge(
            "libvirt_domain_timed_out",
            "1 when the scrape deadline passed before the domain was fully read.",
            DOMAIN_LABELS,
        )
        self.state_code = gauge("libvirt_domain_state_code", "State of the domain.", DOMAIN_LABELS)
        self.info_state = gauge(
            "libvirt_domain_info_state",
            "Code of the domain state, with its description.",
            STATE_LABELS,
        )
        self.guest_info = gauge(
            "libvirt_domain_info", "The domain's OS type and machine, value 1.", OS_LABELS
        )
        self.openstack = gauge(
            "libvirt_domain_openstack_info",
            "OpenStack Nova's metadata of the domain (empty outside OpenStack), value 1.",
            OPENSTACK_LABELS,
        )
        self.cpu_time = counter(
            c.DOMAIN_CPU_SECONDS,
            "Amount of CPU time used by the domain, in seconds.",
            DOMAIN_LABELS,
        )
        self.vcpus = gauge(
            c.DOMAIN_VIRTUAL_CPUS,
            "Number of virtual CPUs for the domain.",
            DOMAIN_LABELS,
        )
        self.max_memory = gauge(
            c.DOMAIN_MAXIMUM_MEMORY,
            "Maximum allowed memory of the domain, in bytes.",
            DOMAIN_LABELS,
        )
        self.memory = gauge(
            "libvirt_domain_info_memory_usage_bytes",
            "Memory usage of the domain, in bytes.",
            DOMAIN_LABELS,
        )
        self.rss = gauge(
            c.DOMAIN_MEMORY_RSS,
            "Resident memory of the domain's process on the host, in bytes.",
            DOMAIN_LABELS,
        )
        self.balloon = gauge(
            "libvirt_domain_memory_balloon_current_bytes",
            "Memory the balloon currently gives the guest, in bytes.",
            DOMAIN_LABELS,
        )
        self.memory_stats = _table("libvirt_domain_memory_stats", MEMORY_SERIES, DOMAIN_LABELS)
        self.used_percent = gauge(
            "libvirt_domain_memory_stats_used_percent",
            "Memory the guest uses, in percent of the memory it sees (available - usable).",
            DOMAIN_LABELS,
        )
        self.vcpu_current = gauge(
            "libvirt_domain_vcpu_current", "Number of current online vCPUs.", DOMAIN_LABELS
        )
        self.vcpu_maximum = gauge(
            "libvirt_domain_vcpu_maximum", "Number of maximum online vCPUs.", DOMAIN_LABELS
        )
        # Every family with one sample per domain straight from a bulk-stats key: one table.
        per_domain = (
            (self.state_code, "state.state", 1),
            (self.cpu_time, "cpu.time", NS),
            (self.vcpus, "vcpu.current", 1),
            (self.max_memory, "balloon.maximum", FROM_KIB),
            (self.memory, "balloon.current", FROM_KIB),
            (self.rss, "balloon.rss", FROM_KIB),
            (self.balloon, "balloon.current", FROM_KIB),
            *zip(
                self.memory_stats.families,
                self.memory_stats.fields,
                self.memory_stats.factors,
                strict=True,
            ),
            (self.vcpu_current, "vcpu.current", 1),
            (self.vcpu_maximum, "vcpu.maximum", 1),
        )
        self.domain_table = _Table(
            [family for family, _, _ in per_domain],
            tuple(key for _, key, _ in per_domain),
            tuple(float(factor) for _, _, factor in per_domain),
        )
        self.vcpu = _table("libvirt_domain_vcpu", VCPU_SERIES, VCPU_LABELS)
        self.block = _table("libvirt_domain_block_stats", BLOCK_SERIES, BLOCK_LABELS)
        self.block_info = gauge(
            "libvirt_domain_block_stats_info",
            "A block device of the domain and its driver settings, value 1.",
            BLOCK_INFO_LABELS,
        )
        self.net = _table("libvirt_domain_interface_stats", NET_SERIES, NET_LABELS)
        self.net_info = gauge(
            "libvirt_domain_interface_stats_info",
            "A network interface of the domain: type, bridge, MAC, model and MTU, value 1.",
            NET_INFO_LABELS,
        )
        self.job = _table("libvirt_domain_job_info", JOB_SERIES, DOMAIN_LABELS).families
        self.migrating = gauge(
            "libvirt_domain_migration_in_progress",
            "1 while a migration job of the domain runs on this host.",
            DOMAIN_LABELS,
        )
        self.migration = [
            gauge(
                "libvirt_domain_migration_memory_dirty_rate_bytes_per_second",
                "Rate at which the guest dirties memory during its outgoing migration, in bytes per second.",
                DOMAIN_LABELS,
            ),
            gauge(
                "libvirt_domain_migration_memory_bandwidth_bytes_per_second",
                "Memory transfer rate of the outgoing migration, in bytes per second.",
                DOMAIN_LABELS,
            ),
            gauge(
                "libvirt_domain_migration_memory_iteration",
                "Pass over the guest memory the outgoing migration is in (1 = the first full copy).",
                DOMAIN_LABELS,
            ),
            gauge(
                "libvirt_domain_migration_remaining_bytes",
                "Data the outgoing migration still has to transfer, in bytes.",
                DOMAIN_LABELS,
            ),
            gauge(
                "libvirt_domain_migration_expected_downtime_seconds",
                "Downtime the outgoing migration expects at switch-over, in seconds.",
                DOMAIN_LABELS,
            ),
        ]
        self.dirty = gauge(
            "libvirt_domain_dirty_rate_bytes_per_second",
            "Memory dirty rate of the last libvirt dirty-rate calculation, in bytes per second.",
            DOMAIN_LABELS,
        )
        # Families whose every sample is 1 (info series): only label sets are gathered.
        self.infos = (self.guest_info, self.openstack, self.block_info, self.net_info)

    def add_active(self, record: DomainRecord, labels: DomainLabels) -> None:
        stats = record.stats
        ident = labels.ident
        self.domain_table.add([ident], stats, self.domain_table.fields)
        state = stats.get("state.state")
        if state is not None:
            self.info_state.label_sets.append(labels.state(int(state)))
            self.info_state.values.append(float(state))
        self.timed_out.label_sets.append(ident)
        self.timed_out.values.append(1.0 if record.timed_out else 0.0)
        if record.topology is not None:
            self._add_guest(labels)
            self.block_info.label_sets.extend(labels.block_infos())
            self.net_info.label_sets.extend(labels.net_infos())
        available, usable = stats.get("balloon.available"), stats.get("balloon.usable")
        if available and usable is not None:
            self.used_percent.label_sets.append(ident)
            self.used_percent.values.append((available - usable) * 100.0 / available)
        current = stats.get("vcpu.current")
        if current is not None:
            maximum = stats.get("vcpu.maximum")
            count = int(maximum if maximum is not None else current)
            keys = _device_keys("vcpu", count, self.vcpu.fields)
            self.vcpu.add(labels.vcpus(count), stats, keys)
        self._add_job(record, ident)
        if (
            stats.get("dirtyrate.calc_status") == DIRTYRATE_MEASURED
            and "dirtyrate.megabytes_per_second" in stats
        ):
            self.dirty.label_sets.append(ident)
            self.dirty.values.append(float(stats["dirtyrate.megabytes_per_second"] * KIB * KIB))
        count = int(stats.get("block.count", 0))
        if count:
            devices = tuple(map(stats.get, _device_keys("block", count, ("path", "name"))))
            keys = _device_keys("block", count, self.block.fields)
            self.block.add(labels.blocks(devices), stats, keys)
        count = int(stats.get("net.count", 0))
        if count:
            names = tuple(map(stats.get, _device_keys("net", count, ("name",))))
            self.net.add(labels.nets(names), stats, _device_keys("net", count, self.net.fields))

    def _add_guest(self, labels: DomainLabels) -> None:
        os_labels, openstack_labels = labels.guest()
        self.guest_info.label_sets.append(os_labels)
        self.openstack.label_sets.append(openstack_labels)

    def _add_job(self, record: DomainRecord, ident: LabelSet) -> None:
        if record.migrating is not None:
            self.migrating.label_sets.append(ident)
            self.migrating.values.append(1.0 if record.migrating else 0.0)
        job = record.job
        if job is None:
            if record.migrating is False:  # checked, or no event said otherwise: no job
                # Only the type: eleven more zeros per idle domain would be 11,000 series on a
                # 1,000-domain host (inovex serves them; a job brings them all, see docs).
                self.job[0].label_sets.append(ident)
                self.job[0].values.append(0.0)
            return
        for family, key, factor in zip(self.job, JOB_KEYS, JOB_FACTORS, strict=True):
            family.label_sets.append(ident)
            family.values.append(job.get(key, 0) / factor)
        if not record.migrating or "memory_iteration" not in job:
            return  # only the source of a migration has its memory figures
        dirty, bandwidth, iteration, remaining, downtime = self.migration
        page = job.get("memory_page_size")
        if page and "memory_dirty_rate" in job:
            dirty.add_sample(ident, float(job["memory_dirty_rate"] * page))
        if "memory_bps" in job:
            bandwidth.add_sample(ident, float(job["memory_bps"]))
        iteration.add_sample(ident, float(job["memory_iteration"]))
        if "data_remaining" in job:
            remaining.add_sample(ident, float(job["data_remaining"]))
        if "downtime" in job:
            downtime.add_sample(ident, job["downtime"] / MS)

    def add_inactive(self, record: DomainRecord, labels: DomainLabels) -> None:
        """A defined domain that is not running: inovex's state and info series only.

        The libvirt_domain_info_* series stay for running domains (Debian's exporter lists only
        those, and virtbalance sums them per host).
        """
        self.info_state.add_sample(
            labels.state(libvirt.VIR_DOMAIN_SHUTOFF), float(libvirt.VIR_DOMAIN_SHUTOFF)
        )
        self.timed_out.add_sample(labels.ident, 1.0 if record.timed_out else 0.0)
        if record.topology is not None:
            self._add_guest(labels)

    def all(self) -> list[Family]:
        for table in (self.domain_table, self.vcpu, self.block, self.net):
            table.finish()
        for family in self.infos:
            family.values = [1.0] * len(family.label_sets)
        return [
            self.domains_number,
            self.domains,
            self.state_code,
            self.info_state,
            self.timed_out,
            self.guest_info,
            self.openstack,
            self.cpu_time,
            self.vcpus,
            self.max_memory,
            self.memory,
            self.rss,
            self.balloon,
            *self.memory_stats.families,
            self.used_percent,
            self.vcpu_current,
            self.vcpu_maximum,
            *self.vcpu.families,
            self.migrating,
            *self.migration,
            *self.job,
            self.dirty,
            *self.block.families,
            self.block_info,
            *self.net.families,
            self.net_info,
        ]
