"""Planner speed: relieve on seeded clusters from 50 to 5,000 hosts (6 domains per host, 20% in chunks, 5% overloaded).

Usage: .venv/bin/python benchmarks/bench_planner_scale.py [--sizes 50,500,1000,2000,5000] [--repeat 3]
       [--overloaded 0.05] [--lifted] [--tight] [--solver auto|greedy]
Times plan() only (the snapshot is built beforehand; parsing is reported separately for the largest size),
with the per-plan caps lifted and with the default policy, each on time.monotonic with the default
plan_budget (2 s), as the CLI and the actioner run it; ``cut`` says where the budget cut a plan.
``--lifted``: max_per_host lifted too (100000, like max_migrations; else 8). ``--tight``: hosts not
overloaded at 35-60% CPU, overloaded ones at 80-105%, half the domains in chunks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace

import checkout  # noqa: F401 (puts this tree first on sys.path)

from virtbalance.planner import exact, plan
from virtbalance.planner.instances import Shape, generate
from virtbalance.policy import PLAN_SOLVERS, Policy
from virtbalance.snapshot import parse_snapshot


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,500,1000,2000,5000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--overloaded", type=float, default=0.05)
    parser.add_argument("--lifted", action="store_true", help="max_per_host 100000 too")
    parser.add_argument("--tight", action="store_true", help="busy hosts, half the domains chunked")
    parser.add_argument("--solver", choices=PLAN_SOLVERS, default="auto")
    args = parser.parse_args()
    exact.available()  # import OR-Tools (if installed) before any plan is timed
    # Per-plan caps lifted so that every overloaded host is planned for: the cost of the whole search.
    policy = Policy().replace(
        max_migrations=100_000, max_per_host=100_000 if args.lifted else 8, plan_solver=args.solver
    )
    # And the default policy (8 migrations per plan): most overloaded hosts then wait for the next plan.
    default = Policy().replace(plan_solver=args.solver)
    rows = []
    for hosts in (int(x) for x in args.sizes.split(",")):
        shape = Shape(hosts=hosts, domains=6 * hosts, overloaded=args.overloaded)
        if args.tight:
            shape = replace(shape, chunked=0.5, calm_cpu=(0.35, 0.6), hot_cpu=(0.8, 1.05))
        snapshot = generate(args.seed, shape)
        chunked = sum(1 for d in snapshot.domains if d.private_networks) / len(snapshot.domains)
        times, cpu = [], []
        for _ in range(args.repeat):
            start, used = time.perf_counter(), time.process_time()
            result = plan(snapshot, policy, clock=time.monotonic)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - used)
        capped = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            plan(snapshot, default, clock=time.monotonic)
            capped.append(time.perf_counter() - start)
        rows.append(
            {
                "hosts": hosts,
                "domains": len(snapshot.domains),
                "chunked_share": round(chunked, 3),
                "overloaded": sum(
                    1 for h in snapshot.hosts if h.cpu_used / h.cpus > policy.cpu_high
                ),
                "migrations": len(result.migrations),
                "unresolved_hosts": len({u.host for u in result.unresolved}),
                "seconds_median": round(statistics.median(times), 3),
                "seconds_max": round(max(times), 3),
                # CPU the process spent in plan(): on a loaded machine, what the plan itself costs.
                "cpu_seconds_median": round(statistics.median(cpu), 3),
                "cut": result.cut_short.stage if result.cut_short else None,
                "default_policy_seconds_median": round(statistics.median(capped), 3),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    data = snapshot.to_dict()
    start = time.perf_counter()
    parse_snapshot(data)
    print(json.dumps({"parse_seconds_largest": round(time.perf_counter() - start, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
