"""How long each dashboard query takes on a Prometheus holding a synthetic cluster of many hosts."""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from backfilled_prometheus import backfilled_prometheus

from virtbalance import contract as c
from virtbalance.mixin.dashboards import build_all, expressions, substitute

GIB = 2**30


def _counter(name: str) -> str:
    """An OpenMetrics counter family is named without the ``_total`` its samples carry."""
    return name.removesuffix("_total")


def families(hosts: int, per_host: int, start: int, end: int, step: int) -> Iterator[str]:
    """OpenMetrics text of a cluster: exporter series and the recording rules (no actioner series)."""
    rng = random.Random(7)
    times = range(start, end + 1, step)
    host_names = [f"h{i:03d}" for i in range(hosts)]
    domains = [(h, f"{h}-d{j:02d}", f"{h}-u{j:02d}") for h in host_names for j in range(per_host)]
    # Two chunks of ten domains per host (d00-d09, d10-d19).
    chunk = {d: f"lan{d.rsplit('d', 1)[1][0]}" for _, d, _ in domains}
    load = {d: rng.uniform(0.01, 0.5) for _, d, _ in domains}

    def target(h: str) -> str:
        return f'host="{h}",instance="{h}:9177",job="libvirt"'

    def family(name: str, kind: str, rows: list[tuple[str, float]]) -> Iterator[str]:
        """A gauge keeps its value; a counter grows by its value every second."""
        yield f"# TYPE {name} {kind}\n"
        sample = f"{name}_total" if kind == "counter" else name
        for labels, value in rows:
            for t in times:
                v = round(value * (t - start), 3) if kind == "counter" else value
                yield f"{sample}{{{labels}}} {v} {t}\n"

    for name, value in (
        (c.NODE_CPUS, 16),
        (c.NODE_MEMORY_TOTAL, 64 * GIB),
        (c.NODE_MEMORY_AVAILABLE, 20 * GIB),
        (c.NODE_MEMORY_FREE, 10 * GIB),
        (c.DOMAINS_NUMBER, per_host),
        (c.LIBVIRT_UP, 1),
    ):
        yield from family(name, "gauge", [(target(h), value) for h in host_names])
    for name in (c.RECORD_CPU, c.RECORD_MEMORY, c.RECORD_CPU_DEMAND):
        yield from family(
            name, "gauge", [(f'host="{h}"', rng.uniform(0.3, 0.9)) for h in host_names]
        )
    modes = [
        (f'{target(h)},mode="{m}"', 4.0)
        for h in host_names
        for m in ("user", "system", "idle", "iowait")
    ]
    yield from family(_counter(c.NODE_CPU_SECONDS), "counter", modes)

    def dom(h: str, d: str, u: str) -> str:
        return f'{target(h)},domain="{d}",uuid="{u}"'

    chunk_rows = [(f'{dom(*x)},chunk="{chunk[x[1]]}"', 1.0) for x in domains]
    yield from family(c.DOMAIN_CHUNK_INFO, "gauge", chunk_rows)
    yield from family(c.DOMAIN_VIRTUAL_CPUS, "gauge", [(dom(*x), 2) for x in domains])
    yield from family(c.DOMAIN_MAXIMUM_MEMORY, "gauge", [(dom(*x), 2 * GIB) for x in domains])
    yield from family(c.DOMAIN_MEMORY_RSS, "gauge", [(dom(*x), GIB) for x in domains])
    yield from family(
        _counter(c.DOMAIN_CPU_SECONDS), "counter", [(dom(*x), load[x[1]]) for x in domains]
    )
    delay = [(f'{dom(*x)},vcpu="{v}"', 0.01) for x in domains for v in (0, 1)]
    yield from family(_counter(c.DOMAIN_VCPU_DELAY), "counter", delay)
    yield "# EOF\n"


def timed(
    url: str, path: str, params: dict[str, str | int | float], repeats: int
) -> tuple[float, int]:
    """Median wall time in ms of ``repeats`` runs, and the number of series returned."""
    times, count = [], 0
    for _ in range(repeats):
        began = time.perf_counter()
        body = requests.get(f"{url}/api/v1/{path}", params=params, timeout=300).json()
        times.append((time.perf_counter() - began) * 1000)
        if body["status"] != "success":
            raise RuntimeError(f"{params['query']}: {body.get('error')}")
        count = len(body["data"]["result"])
    return statistics.median(times), count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--domains-per-host", type=int, default=20)
    parser.add_argument(
        "--minutes", type=int, default=30, help="history to import, viewed as the range"
    )
    parser.add_argument("--scrape", type=int, default=30, help="seconds between samples")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            print(
                f"bench: {tool} not found (the bootstrap installs the prometheus package)",
                file=sys.stderr,
            )
            return 2
    end = int(time.time()) // 60 * 60 - 120
    start = end - args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        work = Path(tmp)
        samples = families(args.hosts, args.domains_per_host, start, end, args.scrape)
        with backfilled_prometheus(work, samples, ready_within=60) as url:
            values = {
                "__rate_interval": f"{4 * args.scrape}s",
                "__range": f"{args.minutes}m",
                "__interval": f"{args.scrape}s",
                "host": "h000",
                "domain": "h000-d00",
            }
            rows = []
            for name, dashboard in build_all().items():
                # The capacity dashboard opens on all hosts; the detail ones on one host or domain.
                chosen = {**values, "host": ".+"} if name == "virtbalance-capacity.json" else values
                for expression in expressions(dashboard):
                    expr = substitute(expression.expr, chosen)
                    if expression.instant:
                        ms, n = timed(url, "query", {"query": expr, "time": end}, args.repeats)
                    else:
                        params = {"query": expr, "start": start, "end": end, "step": args.scrape}
                        ms, n = timed(url, "query_range", params, args.repeats)
                    rows.append((ms, n, name, expression.where))
    domains = args.hosts * args.domains_per_host
    print(
        f"{args.hosts} hosts, {domains} domains, {args.minutes} min at {args.scrape} s, median of {args.repeats}"
    )
    for name in build_all():
        total = sum(ms for ms, _, n, _ in rows if n == name)
        print(
            f"  {name}: {sum(1 for r in rows if r[2] == name)} queries, {total:.0f} ms in sequence"
        )
    print("slowest queries:")
    for ms, n, _, where in sorted(rows, reverse=True)[:6]:
        print(f"  {ms:7.1f} ms  {n:5d} series  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
