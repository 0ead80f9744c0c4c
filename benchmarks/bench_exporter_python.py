"""Python-side cost of one exporter scrape for 1,000 domains (fake libvirt replaying recorded stats).

Run: .venv/bin/python benchmarks/bench_exporter_python.py [--domains 1000] [--scrapes 30]
    [--baseline GIT-REF [--runs 3]] [--job-sweep S]
Reports the median and p90 of what the HTTP endpoint does per scrape (its WSGI app: read the
fake libvirt, build the families, render the text; no gzip), steady state (XML cached) and with a cold topology cache
(every domain's XML parsed, as after a restart); process CPU seconds, which a busy shared machine
disturbs less than wall time. Before every steady scrape each domain's counters (CPU, vCPU,
block and interface figures) grow, as on a busy host, so no scrape sees the values of the last.
For comparison, the same scrape rendered by prometheus_client's generate_latest.
With --baseline, the exporter of that commit (git archive of exporter/ and virtbalance/, with
this tree's fake libvirt) and this tree run alternately in child processes, --runs times each:
before and after in one run. With --job-sweep S the exporter follows the fake's domain events
(--libvirt.job-sweep-interval S): no event comes, so a steady scrape checks no domain's job.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import itertools
import json
import pkgutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if "--exporter-root" in sys.argv:
    # A child of --baseline: that commit's exporter, this tree's fake libvirt and benchmark.
    EXPORTER_ROOT = Path(sys.argv[sys.argv.index("--exporter-root") + 1])
    sys.path.insert(0, str(EXPORTER_ROOT))
    if not (EXPORTER_ROOT / "virtbalance" / "exporter").exists():
        # A commit from before the exporter installed as virtbalance.exporter: its modules import
        # each other by the bare name, so load them so, once, and give each its new name too.
        _package = importlib.import_module("exporter")
        sys.modules["virtbalance.exporter"] = _package
        for _info in pkgutil.iter_modules(_package.__path__):
            _module = importlib.import_module(f"exporter.{_info.name}")
            sys.modules[f"virtbalance.exporter.{_info.name}"] = _module

from baseline_tree import export_tree  # noqa: E402

from tests.fixtures.exporter.fake_libvirt import (  # noqa: E402
    RECORDED_BRIDGES,
    FakeBridges,
    FakeConnection,
    FakeDomain,
    recorded_host,
)
from virtbalance.exporter.collector import LibvirtCollector  # noqa: E402
from virtbalance.exporter.jobs import JobWatch  # noqa: E402
from virtbalance.exporter.main import build_app  # noqa: E402
from virtbalance.exporter.source import LibvirtSource  # noqa: E402
from virtbalance.exporter.topology import TopologyCache  # noqa: E402


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


# Bulk-stats fields that count up on a busy guest (block.N.rd.bytes, net.N.tx.pkts, ...).
COUNTER_SUFFIXES = (".bytes", ".reqs", ".times", ".pkts", ".time", ".wait", ".delay")


def busy(conn: FakeConnection, step: int) -> None:
    """Every domain's counters grow by a different amount: values no scrape has seen before."""
    for index, domain in enumerate(conn.domains):
        stats = domain.stats
        for key, value in stats.items():
            if type(value) is int and key.endswith(COUNTER_SUFFIXES):
                stats[key] = value + step * (index + 7919)
        domain.info_values[4] += step * 1_000_003  # CPU time from virDomainGetInfo


def compare(ref: str, args: argparse.Namespace) -> int:
    """This tree and ``ref`` alternately, ``args.runs`` child processes each: steady medians."""
    medians: dict[str, list[float]] = {"now": [], ref: []}
    lines: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        export_tree(ref, Path(scratch))
        for _, (label, root) in itertools.product(
            range(args.runs), (("now", str(ROOT)), (ref, scratch))
        ):
            child = subprocess.run(
                [
                    *(sys.executable, __file__, "--exporter-root", root, "--json"),
                    *("--domains", str(args.domains), "--scrapes", str(args.scrapes)),
                    *("--job-sweep", str(args.job_sweep)),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(child.stdout)
            medians[label].append(result["median_ms"])
            lines[label] = result["lines"]
    for label, values in medians.items():
        print(
            f"{label}: {args.domains} domains, {lines[label]} lines, steady CPU median per run "
            + " / ".join(f"{v:.1f}" for v in values)
            + " ms"
        )
    return 0


def print_stages(
    collector: LibvirtCollector, conn: FakeConnection, steps: Iterator[int], scrapes: int
) -> None:
    """Steady CPU medians of reading libvirt, building the families and rendering, apart.

    This tree's internals (the collector's source and family builder, a renderer of its own):
    the parts of what the endpoint does, without its lock and self-metrics bookkeeping.
    """
    # Imported here: a --baseline child imports this file with an exporter that has no Renderer.
    from virtbalance.exporter.rendering import Renderer  # noqa: PLC0415

    renderer = Renderer()
    parts: dict[str, list[float]] = {"read libvirt": [], "build families": [], "render": []}
    for _ in range(scrapes + 1):
        busy(conn, next(steps))
        began = time.process_time()
        data = collector._source.scrape()
        read = time.process_time()
        families = collector._families(data) + collector._self_metrics(data)
        built = time.process_time()
        renderer.render(families)
        done = time.process_time()
        for part, seconds in zip(
            parts.values(), (read - began, built - read, done - built), strict=True
        ):
            part.append(seconds)
    for label, times in parts.items():
        # The first scrape fills the renderer's memory: left out, as in a served steady state.
        print(f"stage {label}: CPU median {statistics.median(times[1:]) * 1000:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--baseline", help="also run the exporter of this git commit, alternately")
    parser.add_argument("--runs", type=int, default=3, help="child processes per side (--baseline)")
    parser.add_argument(
        "--stages", action="store_true", help="also split this tree's steady scrape by stage"
    )
    parser.add_argument(
        "--job-sweep",
        type=float,
        default=0.0,
        help="the exporter's --libvirt.job-sweep-interval (0, the default: every job every scrape)",
    )
    parser.add_argument("--exporter-root", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        return compare(args.baseline, args)
    conn = big_host(args.domains)
    bridges = dict(RECORDED_BRIDGES)
    bridges.update({f"lan{i}": True for i in range(args.domains // 10 + 1)})

    def build(max_age: float) -> LibvirtCollector:
        source = LibvirtSource(
            connect=lambda: conn,
            clock=time.monotonic,
            timeout=30.0,
            topology_cache=TopologyCache(max_age),
            jobs=JobWatch(time.monotonic, args.job_sweep),
        )
        return LibvirtCollector(source, bridges=FakeBridges(bridges), clock=time.monotonic)

    apps: dict[int, Callable[..., Any]] = {}

    def served(collector: LibvirtCollector) -> tuple[float, int]:
        # What one GET of /metrics costs: the endpoint's own app, kept per collector as a server
        # keeps it (whatever it remembers between scrapes counts as it would in production).
        app = apps.setdefault(id(collector), build_app(collector, "/metrics"))
        began = time.process_time()
        text = b"".join(app({"PATH_INFO": "/metrics"}, lambda status, headers: None))
        return time.process_time() - began, text.count(b"\n")

    def via_prometheus_client(collector: LibvirtCollector) -> tuple[float, int]:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        began = time.process_time()
        text = generate_latest(registry)
        return time.process_time() - began, text.count(b"\n")

    steady = build(max_age=3600.0)
    served(steady)  # warm the topology cache
    steps = itertools.count(1)

    def served_busy(collector: LibvirtCollector) -> tuple[float, int]:
        busy(conn, next(steps))
        return served(collector)

    steady_runs = [served_busy(steady) for _ in range(args.scrapes)]
    if args.json:
        median = statistics.median(t for t, _ in steady_runs) * 1000
        print(json.dumps({"median_ms": median, "lines": steady_runs[0][1]}))
        return 0
    if args.stages:
        print_stages(steady, conn, steps, args.scrapes)
    results = {
        "served, steady (XML cached)": steady_runs,
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
