"""Per-domain metric families (both Go exporters' names and virtbalance's) from one scrape's records."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import libvirt

from virtbalance import contract as c
from virtbalance.exporter.domain_shapes import CONSTANT, Shape, ShapeBuilder, getter
from virtbalance.exporter.exposition import Family, LabelSet, gauge
from virtbalance.exporter.labels import (
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
from virtbalance.exporter.source import DomainRecord
from virtbalance.exporter.topology import DomainTopology

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


class _Spec(NamedTuple):
    """A per-domain family: name, help, type, label names, and the divisor to base units."""

    name: str
    help: str
    kind: str
    labels: tuple[str, ...]
    factor: float  # 1 keeps libvirt's value; below 1 multiplies (KiB to bytes, exactly)


# Every per-domain family, in the order they are served.
SPECS: list[_Spec] = []


def _add(kind: str, name: str, help_text: str, labels: tuple[str, ...], factor: float = 1) -> int:
    SPECS.append(_Spec(name, help_text, kind, labels, factor))
    return len(SPECS) - 1


def _series(
    prefix: str,
    series: tuple[tuple[str, str, str, float], ...],
    labels: tuple[str, ...],
    *,
    factors: bool = True,
) -> tuple[int, ...]:
    return tuple(
        _add(
            "counter" if name.endswith("_total") else "gauge",
            f"{prefix}_{name}",
            text,
            labels,
            factor if factors else 1,
        )
        for name, _, text, factor in series
    )


def _keyed(
    prefix: str, series: tuple[tuple[str, str, str, float], ...], labels: tuple[str, ...]
) -> tuple[tuple[int, str], ...]:
    """Each of ``series``' families with the bulk-stats key it reads."""
    families = _series(prefix, series, labels)
    return tuple(zip(families, (key for _, key, _, _ in series), strict=True))


def _domain_gauges(*families: tuple[str, str]) -> tuple[int, ...]:
    """Gauges of one sample per domain, from (name, help) pairs."""
    return tuple(_add("gauge", name, text, DOMAIN_LABELS) for name, text in families)


def _domain_keys(*families: tuple[str, str, str, float, str]) -> tuple[tuple[int, str], ...]:
    """Families of one sample per domain straight from a bulk-stats key: (kind, name, help, divisor, key)."""
    return tuple(
        (_add(kind, name, text, DOMAIN_LABELS, factor), key)
        for kind, name, text, factor, key in families
    )


STATE_CODE = _add("gauge", "libvirt_domain_state_code", "State of the domain.", DOMAIN_LABELS)
INFO_STATE = _add(
    "gauge",
    "libvirt_domain_info_state",
    "Code of the domain state, with its description.",
    STATE_LABELS,
)
TIMED_OUT = _add(
    "gauge",
    "libvirt_domain_timed_out",
    "1 when the scrape deadline passed before the domain was fully read.",
    DOMAIN_LABELS,
)
GUEST_INFO = _add(
    "gauge", "libvirt_domain_info", "The domain's OS type and machine, value 1.", OS_LABELS
)
OPENSTACK = _add(
    "gauge",
    "libvirt_domain_openstack_info",
    "OpenStack Nova's metadata of the domain (empty outside OpenStack), value 1.",
    OPENSTACK_LABELS,
)
# Every family with one sample per domain straight from a bulk-stats key.
DOMAIN_KEYS = (
    *_domain_keys(
        (
            "counter",
            c.DOMAIN_CPU_SECONDS,
            "Amount of CPU time used by the domain, in seconds.",
            NS,
            "cpu.time",
        ),
        (
            "gauge",
            c.DOMAIN_VIRTUAL_CPUS,
            "Number of virtual CPUs for the domain.",
            1,
            "vcpu.current",
        ),
        (
            "gauge",
            c.DOMAIN_MAXIMUM_MEMORY,
            "Maximum allowed memory of the domain, in bytes.",
            FROM_KIB,
            "balloon.maximum",
        ),
        (
            "gauge",
            "libvirt_domain_info_memory_usage_bytes",
            "Memory usage of the domain, in bytes.",
            FROM_KIB,
            "balloon.current",
        ),
        (
            "gauge",
            c.DOMAIN_MEMORY_RSS,
            "Resident memory of the domain's process on the host, in bytes.",
            FROM_KIB,
            "balloon.rss",
        ),
        (
            "gauge",
            "libvirt_domain_memory_balloon_current_bytes",
            "Memory the balloon currently gives the guest, in bytes.",
            FROM_KIB,
            "balloon.current",
        ),
    ),
    *_keyed("libvirt_domain_memory_stats", MEMORY_SERIES, DOMAIN_LABELS),
)
USED_PERCENT = _add(
    "gauge",
    "libvirt_domain_memory_stats_used_percent",
    "Memory the guest uses, in percent of the memory it sees (available - usable).",
    DOMAIN_LABELS,
)
DOMAIN_KEYS += _domain_keys(
    ("gauge", "libvirt_domain_vcpu_current", "Number of current online vCPUs.", 1, "vcpu.current"),
    ("gauge", "libvirt_domain_vcpu_maximum", "Number of maximum online vCPUs.", 1, "vcpu.maximum"),
)
VCPU = _keyed("libvirt_domain_vcpu", VCPU_SERIES, VCPU_LABELS)
(
    MIGRATING,
    MIGRATION_DIRTY,
    MIGRATION_BANDWIDTH,
    MIGRATION_ITERATION,
    MIGRATION_REMAINING,
    MIGRATION_DOWNTIME,
) = _domain_gauges(
    (
        "libvirt_domain_migration_in_progress",
        "1 while a migration job of the domain runs on this host.",
    ),
    (
        "libvirt_domain_migration_memory_dirty_rate_bytes_per_second",
        "Rate at which the guest dirties memory during its outgoing migration, in bytes per second.",
    ),
    (
        "libvirt_domain_migration_memory_bandwidth_bytes_per_second",
        "Memory transfer rate of the outgoing migration, in bytes per second.",
    ),
    (
        "libvirt_domain_migration_memory_iteration",
        "Pass over the guest memory the outgoing migration is in (1 = the first full copy).",
    ),
    (
        "libvirt_domain_migration_remaining_bytes",
        "Data the outgoing migration still has to transfer, in bytes.",
    ),
    (
        "libvirt_domain_migration_expected_downtime_seconds",
        "Downtime the outgoing migration expects at switch-over, in seconds.",
    ),
)
# Job values are derived (divided) per scrape, so their families keep what they are given.
JOB = _series("libvirt_domain_job_info", JOB_SERIES, DOMAIN_LABELS, factors=False)
DIRTY = _add(
    "gauge",
    "libvirt_domain_dirty_rate_bytes_per_second",
    "Memory dirty rate of the last libvirt dirty-rate calculation, in bytes per second.",
    DOMAIN_LABELS,
)
BLOCK = _keyed("libvirt_domain_block_stats", BLOCK_SERIES, BLOCK_LABELS)
BLOCK_INFO = _add(
    "gauge",
    "libvirt_domain_block_stats_info",
    "A block device of the domain and its driver settings, value 1.",
    BLOCK_INFO_LABELS,
)
NET = _keyed("libvirt_domain_interface_stats", NET_SERIES, NET_LABELS)
NET_INFO = _add(
    "gauge",
    "libvirt_domain_interface_stats_info",
    "A network interface of the domain: type, bridge, MAC, model and MTU, value 1.",
    NET_INFO_LABELS,
)
BALLOON_AVAILABLE, BALLOON_USABLE = "balloon.available", "balloon.usable"
DIRTY_STATUS, DIRTY_RATE = "dirtyrate.calc_status", "dirtyrate.megabytes_per_second"


def _flags(record: DomainRecord) -> tuple[Any, ...]:
    """What decides a domain's series besides its labels and stats keys (see Shape)."""
    stats = record.stats
    job = record.job
    return (
        record.active,
        record.timed_out,
        record.migrating,
        None if job is None else (frozenset(job), bool(job.get("memory_page_size"))),
        bool(stats.get(BALLOON_AVAILABLE)) and BALLOON_USABLE in stats,
        stats.get(DIRTY_STATUS) == DIRTYRATE_MEASURED and DIRTY_RATE in stats,
    )


def _used_percent(record: DomainRecord) -> list[float]:
    available = record.stats[BALLOON_AVAILABLE]
    return [(available - record.stats[BALLOON_USABLE]) * 100.0 / available]


def _dirty_rate(record: DomainRecord) -> list[float]:
    return [float(record.stats[DIRTY_RATE] * KIB * KIB)]


def _job_values(record: DomainRecord) -> list[float]:
    job = record.job
    assert job is not None  # a shape with job samples is made for a record with a job
    return [job.get(key, 0) / factor for key, factor in zip(JOB_KEYS, JOB_FACTORS, strict=True)]


def _migration(job: dict[str, Any]) -> tuple[list[int], Callable[[DomainRecord], list[float]]]:
    """The migration families the source's job stats fill, and how to read them."""
    readers: list[tuple[int, Callable[[dict[str, Any]], float]]] = []
    if job.get("memory_page_size") and "memory_dirty_rate" in job:
        readers.append(
            (MIGRATION_DIRTY, lambda j: float(j["memory_dirty_rate"] * j["memory_page_size"]))
        )
    if "memory_bps" in job:
        readers.append((MIGRATION_BANDWIDTH, lambda j: float(j["memory_bps"])))
    readers.append((MIGRATION_ITERATION, lambda j: float(j["memory_iteration"])))
    if "data_remaining" in job:
        readers.append((MIGRATION_REMAINING, lambda j: float(j["data_remaining"])))
    if "downtime" in job:
        readers.append((MIGRATION_DOWNTIME, lambda j: j["downtime"] / MS))

    def read(record: DomainRecord) -> list[float]:
        assert record.job is not None
        return [reader(record.job) for _, reader in readers]

    return [family for family, _ in readers], read


def _active_shape(record: DomainRecord, labels: DomainLabels, flags: tuple[Any, ...]) -> Shape:
    """Every sample of a running domain: the slow path, once per change of its structure."""
    stats = record.stats
    b = ShapeBuilder(labels, flags, stats)
    ident = labels.ident
    state = b.probe("state.state")
    b.gathered(STATE_CODE, ident, "state.state")
    if state is not None:
        b.constant(INFO_STATE, labels.state(int(state)), float(state))
    b.constant(TIMED_OUT, ident, 1.0 if record.timed_out else 0.0)
    if record.topology is not None:
        _add_guest(b, labels)
        for label_set in labels.block_infos():
            b.constant(BLOCK_INFO, label_set, 1.0)
        for label_set in labels.net_infos():
            b.constant(NET_INFO, label_set, 1.0)
    for family, key in DOMAIN_KEYS:
        b.gathered(family, ident, key)
    if flags[4]:  # available and usable: the percentage
        b.derived(_used_percent, [(USED_PERCENT, ident)])
    current = b.probe("vcpu.current")
    if current is not None:
        maximum = b.probe("vcpu.maximum")
        count = int(maximum if maximum is not None else current)
        for index, label_set in enumerate(labels.vcpus(count)):
            for family, field in VCPU:
                b.gathered(family, label_set, f"vcpu.{index}.{field}")
    _add_job(b, record, ident)
    if flags[5]:
        b.derived(_dirty_rate, [(DIRTY, ident)])
    count = int(b.probe("block.count") or 0)
    if count:
        devices = tuple(b.probe(f"block.{i}.{f}") for i in range(count) for f in ("path", "name"))
        for index, label_set in enumerate(labels.blocks(devices)):
            for family, field in BLOCK:
                b.gathered(family, label_set, f"block.{index}.{field}")
    count = int(b.probe("net.count") or 0)
    if count:
        names = tuple(b.probe(f"net.{i}.name") for i in range(count))
        for index, label_set in enumerate(labels.nets(names)):
            for family, field in NET:
                b.gathered(family, label_set, f"net.{index}.{field}")
    return b.finish()


def _add_guest(b: ShapeBuilder, labels: DomainLabels) -> None:
    os_labels, openstack_labels = labels.guest()
    b.constant(GUEST_INFO, os_labels, 1.0)
    b.constant(OPENSTACK, openstack_labels, 1.0)


def _add_job(b: ShapeBuilder, record: DomainRecord, ident: LabelSet) -> None:
    if record.migrating is not None:
        b.constant(MIGRATING, ident, 1.0 if record.migrating else 0.0)
    job = record.job
    if job is None:
        if record.migrating is False:  # checked, or no event said otherwise: no job
            # Only the type: eleven more zeros per idle domain would be 11,000 series on a
            # 1,000-domain host (inovex serves them; a job brings them all, see docs).
            b.constant(JOB[0], ident, 0.0)
        return
    b.derived(_job_values, [(family, ident) for family in JOB])
    if record.migrating and "memory_iteration" in job:
        # Only the source of a migration has its memory figures.
        families, read = _migration(job)
        b.derived(read, [(family, ident) for family in families])


def _inactive_shape(record: DomainRecord, labels: DomainLabels, flags: tuple[Any, ...]) -> Shape:
    """A defined domain that is not running: inovex's state and info series only.

    The libvirt_domain_info_* series stay for running domains (Debian's exporter lists only
    those, and virtbalance sums them per host).
    """
    b = ShapeBuilder(labels, flags, record.stats)
    shutoff = libvirt.VIR_DOMAIN_SHUTOFF
    b.constant(INFO_STATE, labels.state(shutoff), float(shutoff))
    b.constant(TIMED_OUT, labels.ident, 1.0 if record.timed_out else 0.0)
    if record.topology is not None:
        _add_guest(b, labels)
    return b.finish()


class _Plan:
    """Where each per-domain family's samples come from, for one sequence of domain shapes.

    A scrape's values form one list: every domain's row (its stats values, then its derived
    values), then the constants; each family's column is one C-level itemgetter over it.
    """

    def __init__(self, shapes: list[Shape]) -> None:
        self.shapes = shapes
        self.label_sets: list[list[LabelSet]] = [[] for _ in SPECS]
        sources: list[list[int]] = [[] for _ in SPECS]
        self.constants: list[float] = []
        width = sum(shape.width for shape in shapes)
        offset = 0
        for shape in shapes:
            constant_base = width + len(self.constants) + CONSTANT
            for family, (label_sets, shape_sources) in shape.samples.items():
                self.label_sets[family] += label_sets
                sources[family] += [
                    offset + s if s >= 0 else constant_base - s for s in shape_sources
                ]
            self.constants += shape.constants
            offset += shape.width
        self.columns = [getter(indices) for indices in sources]


class DomainFamilies:
    """Builds the per-domain families of each scrape, remembering each domain's shape.

    While no domain's shape changed, a scrape copies each domain's stats values in one C-level
    pass and cuts the families' columns from them with the last scrape's plan: no Python step
    per sample. The families are new each scrape; their label-set lists are copies of the plan's.
    """

    def __init__(
        self, labels_of: Callable[[str, str, DomainTopology | None], DomainLabels]
    ) -> None:
        self._labels_of = labels_of
        self._shapes: dict[str, Shape] = {}  # by UUID, the domains of the last scrape
        self._plan: _Plan | None = None

    def build(self, domains: list[DomainRecord], inactive: list[DomainRecord]) -> list[Family]:
        """Families of the active ``domains`` plus the inactive ones' state and info series."""
        labels_of = self._labels_of
        known = self._shapes
        shapes_by_uuid: dict[str, Shape] = {}
        shapes: list[Shape] = []
        values: list[Any] = []
        for record in (*domains, *inactive):
            labels = labels_of(record.name, record.uuid, record.topology)
            flags = _flags(record)
            stats = record.stats
            shape = known.get(record.uuid)
            # Whether the last shape holds (see Shape): labels, flags, the stats keys in order,
            # the deciding values (a count, a device or the state).
            if (
                shape is None
                or shape.labels is not labels
                or shape.flags != flags
                or list(stats) != shape.order
                or shape.probe_of(stats) != shape.probe
            ):
                build = _active_shape if record.active else _inactive_shape
                shape = build(record, labels, flags)
            shapes_by_uuid[record.uuid] = shape
            shapes.append(shape)
            values += stats.values()  # the row, copied once
            if shape.derive is not None:
                values += shape.derive(record)
        self._shapes = shapes_by_uuid
        plan = self._plan
        if plan is None or plan.shapes != shapes:
            plan = self._plan = _Plan(shapes)
        values += plan.constants
        count = gauge("libvirt_domains", "Number of domains, running or not.")
        count.add((), float(len(domains) + len(inactive)))
        running = gauge(c.DOMAINS_NUMBER, "Number of domains.")
        running.add((), float(len(domains)))
        families = [running, count]
        for spec, label_sets, column in zip(SPECS, plan.label_sets, plan.columns, strict=True):
            family = Family(spec.name, spec.help, spec.kind, spec.labels)
            family.label_sets = list(label_sets)
            factor = spec.factor
            if factor == 1:
                family.values = list(column(values))  # libvirt's ints stay ints: exact, cheaper
            elif factor < 1:
                multiplier = round(1 / factor)  # KiB to bytes: an exact int product
                family.values = list(
                    map(operator.mul, column(values), itertools.repeat(multiplier))
                )
            else:
                family.values = list(
                    map(operator.truediv, column(values), itertools.repeat(factor))
                )
            families.append(family)
        return families
