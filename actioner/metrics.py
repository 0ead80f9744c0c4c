"""The actioner's own metrics (names fixed in docs/architecture.md), every label value pre-created."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from virtbalance import contract as c
from virtbalance.actioner.journal import PLAN_OUTCOMES
from virtbalance.plan import Migration

MIGRATION_RESULTS = ("done", "failed", "rolled_back", "skipped", "timeout")
COOLDOWN_KINDS = ("vm", "host", "anti_flap", "rate")
# The forecast's parts (virtbalance.forecast.Forecast): recent peaks, and the averages balance judges.
FORECAST_PARTS = ("peaks", "averages")
_NO_FORECAST_HELP = (
    "Plans made without a part of the forecast: Prometheus down or too little history."
)
WEBHOOK_CODES = ("200", "400", "401", "405", "413", "415", "500")
RECENT_LIMIT = 50
# Live migrations of small guests take seconds, large ones minutes.
_MIGRATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)
_SPLIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_PLAN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


_Labelled = TypeVar("_Labelled", Counter, Gauge)


def _precreated(metric: _Labelled, values: Iterable[str]) -> _Labelled:
    """``metric`` with a series at 0 for each of its one label's ``values``: a rule's increase() or
    absent() then sees the first event, not a series that appears with it."""
    for value in values:
        metric.labels(value)
    return metric


class _RecentMigrations(Collector):
    """The last migrations with their labels, bounded so label cardinality stays small."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[tuple[tuple[str, str, str, str, str], float]] = deque(
            maxlen=RECENT_LIMIT
        )

    def add(
        self, *, domain: str, chunk: str, source: str, destination: str, result: str, seconds: float
    ) -> None:
        with self._lock:
            self._items.append(((domain, chunk, source, destination, result), seconds))

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            c.MIGRATION_RECENT_DURATION,
            f"Duration of the last {RECENT_LIMIT} migrations.",
            labels=[c.LABEL_DOMAIN, c.LABEL_CHUNK, c.LABEL_SOURCE, c.LABEL_DESTINATION, "result"],
        )
        with self._lock:
            latest: dict[tuple[str, str, str, str, str], float] = {}
            for labels, seconds in self._items:
                latest[labels] = seconds
        for labels, seconds in latest.items():
            family.add_metric(list(labels), seconds)
        yield family

    def describe(self) -> Iterable[Metric]:
        return []


class _AmbiguousDomains(Collector):
    """Domains whose state the actioner cannot prove: one series each (few, and each one an incident)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}

    def set(self, reasons: dict[str, str]) -> None:
        with self._lock:
            self._reasons = dict(reasons)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            domains = sorted(self._reasons)
        total = GaugeMetricFamily(
            c.DOMAINS_AMBIGUOUS,
            "Domains left untouched because their state cannot be proven (held from planning).",
        )
        total.add_metric([], len(domains))
        yield total
        each = GaugeMetricFamily(
            c.DOMAIN_AMBIGUOUS,
            "1 for each domain whose state cannot be proven; the journal has what each host showed.",
            labels=[c.LABEL_DOMAIN],
        )
        for domain in domains:
            each.add_metric([domain], 1)
        yield each

    def describe(self) -> Iterable[Metric]:
        return []


class _StuckJobs(Collector):
    """Migration jobs libvirt holds and cannot end: one series per domain and host (each an incident)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, tuple[str, ...]] = {}

    def set(self, hosts: dict[str, tuple[str, ...]]) -> None:
        with self._lock:
            self._hosts = dict(hosts)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            stuck = sorted((d, h) for d, hosts in self._hosts.items() for h in hosts)
        family = GaugeMetricFamily(
            c.MIGRATION_JOB_STUCK,
            "1 while libvirt on the host holds a migration job of the domain that outlived its abort "
            "or the migration timeout: only a restart of that host's libvirtd ends it.",
            labels=[c.LABEL_DOMAIN, c.LABEL_HOST],
        )
        for domain, host in stuck:
            family.add_metric([domain, host], 1)
        yield family

    def describe(self) -> Iterable[Metric]:
        return []


class Metrics:
    """All actioner metrics in their own registry (one per app, so tests do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry

        def counter(name: str, doc: str, label: str, values: Iterable[str]) -> Counter:
            return _precreated(Counter(name, doc, [label], registry=r), values)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, buckets=buckets, registry=r)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        self.migrations = counter(
            c.MIGRATIONS, "Migrations by result.", "result", MIGRATION_RESULTS
        )
        self.migration_duration = histogram(
            c.MIGRATION_DURATION, "Duration of one live migration.", _MIGRATION_BUCKETS
        )
        self.plans = counter(c.PLANS, "Plans by outcome.", "outcome", PLAN_OUTCOMES)
        self.plan_duration = histogram(
            c.PLAN_DURATION, "Time from a plan's start to its outcome.", _PLAN_BUCKETS
        )
        self.chunk_split = histogram(
            c.CHUNK_SPLIT,
            "How long a chunk ran split over two hosts while its members moved.",
            _SPLIT_BUCKETS,
        )
        self.cooldowns = _precreated(
            gauge(c.COOLDOWNS_ACTIVE, "Active cooldown barriers by kind.", ("kind",)),
            COOLDOWN_KINDS,
        )
        self.unplaceable = gauge(
            c.UNPLACEABLE_CHUNKS,
            "What the last plan left unresolved: hosts no placeable chunk could relieve.",
        )
        self.plans_without_forecast = counter(
            c.PLANS_WITHOUT_FORECAST, _NO_FORECAST_HELP, "part", FORECAST_PARTS
        )
        self.webhook_requests = counter(
            c.WEBHOOK_REQUESTS, "Webhook requests by HTTP code.", "code", WEBHOOK_CODES
        )
        self.last_success = gauge(
            c.LAST_SUCCESSFUL_PLAN, "When the last plan finished without failure."
        )
        self.host_emptied = gauge(
            c.HOST_EMPTIED,
            "1 while a consolidation left the host empty (it may be powered off), else 0.",
            (c.LABEL_HOST,),
        )
        self.recent = _RecentMigrations()
        r.register(self.recent)
        self.ambiguous = _AmbiguousDomains()
        r.register(self.ambiguous)
        self.stuck_jobs = _StuckJobs()
        r.register(self.stuck_jobs)

    def set_ambiguous(self, reasons: dict[str, str]) -> None:
        """The domains in doubt now (domain -> reason), as the journal has them."""
        self.ambiguous.set(reasons)

    def set_stuck_jobs(self, hosts: dict[str, tuple[str, ...]]) -> None:
        """The migration jobs libvirt cannot end now: domain -> the hosts holding one."""
        self.stuck_jobs.set(hosts)

    def migration(self, move: Migration, result: str, seconds: float | None) -> None:
        """Count one migration's result; its duration when it ran."""
        self.migrations.labels(result=result).inc()
        if seconds is not None:
            if result == "done":
                self.migration_duration.observe(seconds)
            self.recent.add(
                domain=move.domain,
                chunk=move.chunk,
                source=move.source,
                destination=move.destination,
                result=result,
                seconds=seconds,
            )
