"""Benchmark the actioner's planning path at scale: alert accepted -> plan ready (snapshot + plan).

Placement comes from libvirt's test driver (one XML file per host, ``test:///path/host.xml``), usage from a
real Prometheus holding a synthetic cluster imported with ``promtool tsdb create-blocks-from openmetrics``.
One host is overloaded; the figures are the wall time of SnapshotBuilder.build() plus plan(), and the
process's peak RSS (the actioner's code in this process, nothing else loaded but the benchmark). The CPU
time of the process (the actioner's code and the in-process test driver, not Prometheus) is printed too:
on a loaded machine it says more than the wall time.

As in the actioner, libvirt's event loop runs before the first connection opens (the test driver raises
lifecycle and metadata events) and the builder warms up when the actioner starts, before the first
alert; ``--no-events`` and ``--no-warm-up`` leave either out. ``--changes N`` sets the placement metadata
of N domains before each later alert (an empty placement: the plan stays the same) and waits for their
events, so those are read again while the rest comes from the cache.

As in the actioner, the builder reads the forecast from the same Prometheus (``prometheus_history``),
which needs ``forecast_window`` and ``balance_window`` of history (an hour each by default, plus a rate
window): ``--history 70m`` backfills that much, so the forecast is really read; the default's few
minutes make it fall back to none (its note is printed). ``--no-forecast`` builds without it.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import checkout  # noqa: F401 (puts this tree first on sys.path)
import libvirt
from backfilled_prometheus import backfilled_prometheus

from virtbalance import domain_metadata
from virtbalance.actioner import event_loop
from virtbalance.actioner.config import parse_config
from virtbalance.actioner.domain_events import DomainWatch
from virtbalance.actioner.domain_reader import DomainReader
from virtbalance.actioner.libvirt_hosts import HostPool
from virtbalance.actioner.prometheus_demand import prometheus_cpu, prometheus_history
from virtbalance.actioner.snapshot_builder import SnapshotBuilder
from virtbalance.contract import DOMAIN_CPU_SECONDS
from virtbalance.domain_metadata import Placement
from virtbalance.durations import format_duration, parse_duration
from virtbalance.plan import Mode
from virtbalance.planner import plan

if TYPE_CHECKING:  # the history's type only: the benchmark also runs on trees before it
    from virtbalance.actioner.prometheus_demand import DemandHistory

CPUS = 32
MEMORY_BYTES = 256 * 1024**3
VCPUS = 2
MEMORY_KIB = 4 * 1024 * 1024
CHUNK = 4  # domains per private bridge: every host carries chunks of four
SCRAPE = 30  # seconds between imported samples


def host_name(index: int) -> str:
    return f"h{index:04d}"


def domain_name(host: int, index: int) -> str:
    return f"{host_name(host)}-d{index:02d}"


def host_xml(host: int, domains: int) -> str:
    """A test-driver node: ``domains`` running domains, chunked by private bridges."""
    parts = ["<node>"]
    for d in range(domains):
        bridge = f"vbpriv-{host:04d}-{d // CHUNK}"
        parts.append(
            f'<domain type="test"><name>{domain_name(host, d)}</name><uuid>{uuid.uuid4()}</uuid>'
            f"<memory>{MEMORY_KIB}</memory><vcpu>{VCPUS}</vcpu><os><type>hvm</type></os>"
            f'<devices><interface type="bridge"><source bridge="{bridge}"/></interface>'
            "</devices></domain>"
        )
    parts.append("</node>\n")
    return "".join(parts)


def cores(host: int, domain: int, overloaded: int) -> float:
    """CPU demand per domain: the overloaded host's guests near their vCPUs, the others light."""
    if host == overloaded:
        return 1.6
    return 0.2 + 0.1 * ((host + domain) % 5)


def openmetrics(hosts: int, domains: int, start: int, end: int, overloaded: int) -> Iterator[str]:
    """The CPU counters the actioner's query reads, one series per domain, every SCRAPE seconds."""
    name = DOMAIN_CPU_SECONDS
    yield f"# TYPE {name[: -len('_total')]} counter\n"
    for h in range(hosts):
        for d in range(domains):
            labels = (
                f'{{host="{host_name(h)}",domain="{domain_name(h, d)}",job="virtbalance-exporter"}}'
            )
            rate = cores(h, d, overloaded)
            for at in range(start, end + 1, SCRAPE):
                yield f"{name}{labels} {rate * (at - start):.1f} {at}\n"
    yield "# EOF\n"


def change(
    pool: HostPool,
    watch: DomainWatch | None,
    rng: random.Random,
    *,
    hosts: int,
    per_host: int,
    count: int,
) -> None:
    """Set an empty placement on ``count`` domains, then wait (at most 30 s) for their events."""
    picked = rng.sample([(h, d) for h in range(hosts) for d in range(per_host)], count)
    doms = [pool.connection(host_name(h)).lookupByName(domain_name(h, d)) for h, d in picked]
    tokens = []
    for (h, _d), dom in zip(picked, doms, strict=True):
        if watch is not None:
            tokens.append(watch.token(host_name(h), dom.UUIDString(), dom.ID()))
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            Placement().to_xml(),
            domain_metadata.PREFIX,
            domain_metadata.NAMESPACE,
            libvirt.VIR_DOMAIN_AFFECT_LIVE,
        )
    if watch is None:
        return
    deadline = time.monotonic() + 30
    for (h, _d), dom, token in zip(picked, doms, tokens, strict=True):
        while watch.token(host_name(h), dom.UUIDString(), dom.ID()) == token:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: no event for {dom.name()} within 30 s")
            time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--domains-per-host", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-events", action="store_true", help="no libvirt event loop")
    parser.add_argument("--no-warm-up", action="store_true", help="no warm-up at start")
    parser.add_argument("--changes", type=int, default=0, help="domains changed before each alert")
    parser.add_argument(
        "--history", type=parse_duration, default=6 * 60.0, help="history backfilled before now"
    )
    parser.add_argument("--no-forecast", action="store_true", help="build without the forecast")
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            print(f"bench: {tool} not found (the bootstrap installs prometheus)", file=sys.stderr)
            return 2
    overloaded = 0
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        hosts: dict[str, dict[str, object]] = {}
        for h in range(args.hosts):
            path = work / "hosts" / f"{host_name(h)}.xml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(host_xml(h, args.domains_per_host))
            hosts[host_name(h)] = {
                "uri": f"test://{path}",
                "cpus": CPUS,
                "memory": MEMORY_BYTES,
            }
        # The default policy's 5 min rate window must be full at query time, minutes after the import:
        # the samples run from ``--history`` ago to 15 minutes ahead (Prometheus reads those up to "now").
        now = int(time.time())
        start, end = now - round(args.history), now + 15 * 60
        samples = openmetrics(args.hosts, args.domains_per_host, start, end, overloaded)
        with backfilled_prometheus(work, samples, ready_within=120) as url:
            config = parse_config(
                {
                    "hosts": hosts,
                    "journal": {"path": str(work / "journal.sqlite")},
                    "prometheus": {"url": url, "timeout": "30s", "fallback_to_libvirt": False},
                },
                base=work,
            )
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows = []
            # One pool and one builder for every run, as in the running actioner: the warm-up at start
            # (or, without it, the first alert) opens every connection and reads every definition,
            # later alerts find them open and read.
            watch = None
            if not args.no_events:
                event_loop.DEFAULT.start()  # before the first connection, as the actioner does
                watch = DomainWatch(event_loop.DEFAULT)
            pool = HostPool(config, watch)
            query = prometheus_cpu(url, config.prometheus.timeout)
            history = prometheus_history(url, config.prometheus.timeout, time.time)
            queried: list[float] = []
            history_queried: list[float] = []

            def timed_query(window: float) -> dict[str, float]:
                began = time.perf_counter()
                try:
                    return query(window)
                finally:
                    queried.append(time.perf_counter() - began)

            def timed_history(window: float, span: float, step: float) -> DemandHistory:
                began = time.perf_counter()
                try:
                    return history(window, span, step)
                finally:
                    history_queried.append(time.perf_counter() - began)

            reader = DomainReader(pool)
            builder = SnapshotBuilder(
                config,
                pool,
                cpu_query=timed_query,
                history_query=None if args.no_forecast else timed_history,
                reader=reader,
            )
            warm_up: tuple[float, float] | None = None
            if not args.no_warm_up:
                began, cpu_began = time.perf_counter(), time.process_time()
                builder.warm()
                warm_up = (time.perf_counter() - began, time.process_time() - cpu_began)
            rng = random.Random(1)
            unread: list[int] = []
            notes: set[str] = set()
            for run in range(args.repeats):
                if run and args.changes:
                    change(
                        pool,
                        watch,
                        rng,
                        hosts=args.hosts,
                        per_host=args.domains_per_host,
                        count=args.changes,
                    )
                before = reader.cache.unread
                began, cpu_began = time.perf_counter(), time.process_time()
                view = builder.build()
                snapshot_done = time.perf_counter()
                result = plan(view.snapshot, config.policy, Mode("relieve"))
                done = time.perf_counter()
                cpu = time.process_time() - cpu_began
                rows.append((snapshot_done - began, done - snapshot_done, done - began, cpu))
                unread.append(reader.cache.unread - before)
                assert view.cpu_source == "prometheus", view.cpu_source
                notes.update(view.forecast_notes)
                if not args.no_forecast and not view.forecast_notes:
                    assert view.forecast is not None
                    assert len(view.forecast.domains) == len(view.snapshot.domains)
                assert len(view.snapshot.domains) == args.hosts * args.domains_per_host
                moved_from = {m.source for m in result.migrations}
                assert moved_from == {host_name(overloaded)}, (moved_from, result.hosts_after[:3])
            pool.close()
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    domains = args.hosts * args.domains_per_host
    print(
        f"{args.hosts} hosts, {domains} domains, {args.repeats} runs, "
        f"snapshot_connections {config.execution.snapshot_connections}, "
        f"events {'off' if args.no_events else 'on'}, changes per alert {args.changes}, "
        f"history {format_duration(args.history)}, forecast {'off' if args.no_forecast else 'on'}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for note in sorted(notes):
        print(f"  {note}")
    if warm_up is not None:
        print(
            f"  warm-up at start (every connection opened, every definition read): "
            f"{warm_up[0]:.2f} s, CPU {warm_up[1]:.2f} s"
        )
    for i, (snap, planned, total, cpu) in enumerate(rows, 1):
        if i == 1:
            kind = "first alert, " + ("cold" if warm_up is None else "after the warm-up")
        else:
            kind = "later alert, connections open"
        asked = f"demand {queried[i - 1]:.2f} s"
        if len(history_queried) == len(rows):
            asked += f", history {history_queried[i - 1]:.2f} s"
        print(
            f"  run {i} ({kind}): snapshot {snap:.2f} s (Prometheus answered in {asked}) "
            f"+ plan {planned:.2f} s = {total:.2f} s; "
            f"CPU of this process {cpu:.2f} s; definitions from the cache without XML "
            f"{unread[i - 1]}"
        )
    print(f"  migrations planned: {len(result.migrations)} from {host_name(overloaded)}")
    if not args.no_events:
        print(
            f"  event loop: healthy {event_loop.DEFAULT.healthy()}, stalls {event_loop.DEFAULT.gaps}"
        )
    print(f"  peak RSS: {rss:.0f} MiB (before the first snapshot: {rss_before:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
