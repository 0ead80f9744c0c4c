"""Benchmark the Prometheus queries of one plan, with and without the forecast, on a real Prometheus.

A synthetic cluster (``--hosts`` times ``--domains-per-host`` domains, 70 minutes of CPU time and vCPU
delay counters every 15 s) is imported with ``promtool``; then, alternating, the snapshot's demand
query alone (``prometheus_cpu``: two instant queries) and the same plus the forecast's
(``prometheus_history`` read by ``read_forecast``: one range query over the hour, a point a rate window).
Prints the median, min and max wall time of each in ms, and the forecast's points.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import checkout  # noqa: F401 (puts this tree first on sys.path)
from backfilled_prometheus import backfilled_prometheus

from virtbalance.actioner.forecast_reader import read_forecast
from virtbalance.actioner.prometheus_demand import prometheus_cpu, prometheus_history
from virtbalance.contract import DOMAIN_CPU_SECONDS, DOMAIN_VCPU_DELAY
from virtbalance.policy import Policy

SCRAPE = 15
HISTORY = 70 * 60


def openmetrics(hosts: int, per_host: int, end: int) -> Iterator[str]:
    """Each domain's run time (0.2 to 0.6 cores) and its vCPU's wait (a tenth of it) up to ``end``."""
    for name, share in ((DOMAIN_CPU_SECONDS, 1.0), (DOMAIN_VCPU_DELAY, 0.1)):
        yield f"# TYPE {name.removesuffix('_total')} counter\n"
        for h in range(hosts):
            for d in range(per_host):
                labels = f'host="h{h:04d}",domain="h{h:04d}-d{d:03d}"'
                if name == DOMAIN_VCPU_DELAY:
                    labels += ',vcpu="0"'
                rate = share * (0.2 + 0.1 * ((h + d) % 5))
                for at in range(end - HISTORY, end + 1, SCRAPE):
                    yield f"{name}{{{labels}}} {rate * (at - end + HISTORY):.1f} {at}\n"
    yield "# EOF\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--domains-per-host", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            print(f"bench: {tool} not found (the bootstrap installs prometheus)", file=sys.stderr)
            return 2
    policy = Policy()
    end = int(time.time())
    placement = {
        f"h{h:04d}-d{d:03d}": f"h{h:04d}"
        for h in range(args.hosts)
        for d in range(args.domains_per_host)
    }
    vcpus = dict.fromkeys(placement, 2)
    with tempfile.TemporaryDirectory(prefix="bench-forecast-") as tmp:
        samples = openmetrics(args.hosts, args.domains_per_host, end)
        with backfilled_prometheus(Path(tmp), samples, ready_within=120) as url:
            cpu = prometheus_cpu(url, 30.0)
            history = prometheus_history(url, 30.0, time.time)
            without, with_forecast = [], []
            reading = None
            for _ in range(args.repeats):
                began = time.perf_counter()
                demand = cpu(policy.rate_window)
                without.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                demand = cpu(policy.rate_window)
                reading = read_forecast(history, policy, placement, vcpus)
                with_forecast.append((time.perf_counter() - began) * 1000)
            assert len(demand) == len(placement), "the demand query missed domains"
            assert reading is not None and reading.forecast is not None, reading
    print(
        f"domains {len(placement)}, hosts {args.hosts}, repeats {args.repeats}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for label, times in (("demand only", without), ("demand + forecast", with_forecast)):
        print(
            f"{label:18} median {statistics.median(times):8.1f} ms  "
            f"min {min(times):8.1f}  max {max(times):8.1f}"
        )
    print(
        f"forecast: {len(reading.forecast.domains)} domain peaks, {len(reading.forecast.hosts)} host peaks"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
