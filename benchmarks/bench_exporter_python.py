"""Python-side cost of one exporter scrape for 1,000 domains (fake libvirt replaying recorded stats).

Run: .venv/bin/python benchmarks/bench_exporter_python.py [--domains 1000] [--scrapes 30]
Reports the median and p90 of what the HTTP endpoint does per scrape (build the families, render
the text), steady state (XML cached) and with a cold topology cache (every domain's XML parsed, as
after a restart); process CPU seconds, which a busy shared machine disturbs less than wall time.
For comparison, the same scrape rendered by prometheus_client's generate_latest.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import uuid
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.collector import LibvirtCollector  # noqa: E402
from exporter.exposition import render  # noqa: E402
from exporter.source import LibvirtSource  # noqa: E402
from exporter.topology import TopologyCache  # noqa: E402
from tests.fixtures.exporter.fake_libvirt import (  # noqa: E402
    RECORDED_BRIDGES,
    FakeBridges,
    FakeConnection,
    FakeDomain,
    recorded_host,
)


def big_host(count: int) -> FakeConnection:
    """``count`` domains cloned from the six recorded ones, each with its own name, uuid and taps."""
    conn = FakeConnection(recorded_host())
    templates = conn.domains
    domains = []
    for index in range(count):
        template = templates[index % len(templates)]
        name = f"vm{index:04d}"
        new_uuid = str(uuid.uuid5(uuid.NAMESPACE_DNS, name))
        stats = copy.deepcopy(template.stats)
        xml = str(template.xml)
        for tap in range(int(stats.get("net.count", 0))):
            old = stats[f"net.{tap}.name"]
            new = f"vnet{index * 4 + tap}"
            stats[f"net.{tap}.name"] = new
            xml = xml.replace(f"dev='{old}'", f"dev='{new}'")
        # Chunks of ten: each group of ten domains shares its own private bridge.
        xml = xml.replace("bridge='lan11'", f"bridge='lan{index // 10}'")
        xml = xml.replace(template.name(), name).replace(template.UUIDString(), new_uuid)
        domains.append(FakeDomain(name, new_uuid, index + 1, stats, xml))
    conn.domains = domains
    return conn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    conn = big_host(args.domains)
    bridges = dict(RECORDED_BRIDGES)
    bridges.update({f"lan{i}": True for i in range(args.domains // 10 + 1)})

    def build(max_age: float) -> LibvirtCollector:
        source = LibvirtSource(
            connect=lambda: conn,
            clock=time.monotonic,
            timeout=30.0,
            topology_cache=TopologyCache(max_age),
        )
        return LibvirtCollector(source, bridges=FakeBridges(bridges), clock=time.monotonic)

    def served(collector: LibvirtCollector) -> tuple[float, int]:
        began = time.process_time()
        text = render(collector.families())
        return time.process_time() - began, text.count(b"\n")

    def via_prometheus_client(collector: LibvirtCollector) -> tuple[float, int]:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        began = time.process_time()
        text = generate_latest(registry)
        return time.process_time() - began, text.count(b"\n")

    steady = build(max_age=3600.0)
    served(steady)  # warm the topology cache
    results = {
        "served, steady (XML cached)": [served(steady) for _ in range(args.scrapes)],
        "served, cold (all XML parsed)": [
            served(build(max_age=3600.0)) for _ in range(max(3, args.scrapes // 5))
        ],
        "prometheus_client generate_latest, steady": [
            via_prometheus_client(steady) for _ in range(max(3, args.scrapes // 5))
        ],
    }
    for label, runs in results.items():
        seconds = sorted(t for t, _ in runs)
        p90 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.9))]
        print(
            f"{label}: {args.domains} domains, {runs[0][1]} lines, CPU median "
            f"{statistics.median(seconds) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms "
            f"over {len(seconds)} scrapes"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
