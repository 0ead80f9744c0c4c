"""The exporter's test helpers: the collector over a fake libvirt, and prometheus_client's text as the reference."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from tests.fixtures.exporter.fake_libvirt import (
    FIXTURES,
    RECORDED_BRIDGES,
    FakeBridges,
    FakeClock,
    FakeConnection,
)
from virtbalance.exporter.collector import LibvirtCollector
from virtbalance.exporter.exposition import Family
from virtbalance.exporter.source import LibvirtSource
from virtbalance.exporter.topology import TopologyCache

# Every series the established Go exporter (inovex v2.5.0) serves, with its label names.
INOVEX_SERIES = FIXTURES / "inovex-v2.5.0-series.txt"


def inovex_series() -> dict[str, set[str]]:
    """Each series the established exporter serves, with its label names (from INOVEX_SERIES)."""
    series = {}
    for line in INOVEX_SERIES.read_text().splitlines():
        if line and not line.startswith("#"):
            name, *labels = line.split()
            series[name] = set(labels)
    return series


def fake_collector(
    connect: Callable[[], FakeConnection],
    *,
    clock: Callable[[], float] | None = None,
    timeout: float = 5.0,
    max_age: float = 60.0,
    bridges: FakeBridges | None = None,
    collector: Mapping[str, Any] | None = None,
    **source: Any,
) -> LibvirtCollector:
    """The real collector and source over ``connect``: the recorded bridges and a frozen clock unless given.

    ``source`` and ``collector`` pass further options to LibvirtSource and LibvirtCollector.
    """
    clock = clock or FakeClock()  # frozen: stage durations are 0, so scrapes are deterministic
    libvirt_source = LibvirtSource(
        connect=connect,
        clock=clock,
        timeout=timeout,
        topology_cache=TopologyCache(max_age),
        **source,
    )
    return LibvirtCollector(
        libvirt_source,
        bridges=bridges or FakeBridges(RECORDED_BRIDGES),
        clock=clock,
        **(collector or {}),
    )


def registry_of(*collectors: Collector) -> CollectorRegistry:
    """A registry of ``collectors`` alone (no process or platform collectors)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    return registry


class _Families(Collector):
    def __init__(self, families: Iterable[Family]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.to_metric()


def reference_text(families: Iterable[Family]) -> bytes:
    """What prometheus_client's generate_latest writes for ``families``: the exporter's renderers must match it."""
    return generate_latest(registry_of(_Families(families)))


def label_names(text: str) -> dict[str, set[str]]:
    """Each sample name of an exposition text with the union of its label names."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names
