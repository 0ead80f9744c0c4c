"""Planner on tight clusters with the caps lifted: greedy alone and greedy + CP-SAT, side by side, against the optimum.

Usage: .venv/bin/python benchmarks/bench_planner_tight.py [--instances 40] [--first-seed 0] [--seeds 4,11]
       [--solvers greedy,auto] [--clock monotonic|process|none] [--json FILE]
Instances: ``virtbalance.planner.instances.tight`` (4-30 hosts, 8-24 domains each, a third of the hosts at
80-105% CPU, the others at 35-60%, half the domains in chunks of 2-4, a few pinned and anti-affine),
max_migrations and max_per_host 100000, the other keys at their defaults (plan_budget 2 s). Each plan runs
on time.monotonic, as the CLI and the actioner run it, or with ``--clock process`` on the process's CPU
time (a budget of work, less dependent on the machine's load); rows give wall and CPU seconds. The optimum is CP-SAT on the same model without a
budget (``--reference-limit`` seconds, 2 workers); ratios count only the instances where it is proven.
``--references FILE`` keeps the optimum per seed in FILE (computed once, read back on later runs), so
that runs comparing planner versions spend their time on the plans; ``--references-only`` only fills it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import checkout  # noqa: F401 (puts this tree first on sys.path)
import seeded

from virtbalance.planner import exact, plan
from virtbalance.planner.deadline import Clock
from virtbalance.planner.exact import solve_relieve
from virtbalance.planner.instances import generate, tight
from virtbalance.policy import Policy
from virtbalance.snapshot import Snapshot

SOLVERS = ("greedy", "auto")


# Clocks the budget may run on: the wall clock, as the CLI and the actioner run it; or the process's
# CPU time (CP-SAT's threads included), so that on a loaded machine each plan still gets its budget of
# work (CP-SAT's own limit stays on the wall clock: it then gets less than its share, never more).
# ``none``: no clock, so no budget: the plan is bounded by the searches' own limits (node counts, the
# packer's allowance, CP-SAT's deterministic time) and is the same on any machine at any load.
CLOCKS: dict[str, Clock | None] = {
    "monotonic": time.monotonic,
    "process": time.process_time,
    "none": None,
}


def run(snapshot: Snapshot, policy: Policy, clock: str = "monotonic") -> dict[str, Any]:
    start = time.perf_counter()
    cpu = time.process_time()
    result = plan(snapshot, policy, clock=CLOCKS[clock])
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    memory = {d.name: d.memory_bytes for d in snapshot.domains}
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "resolved": not result.unresolved,
        "unresolved_hosts": len({u.host for u in result.unresolved}),
        "memory": sum(memory[m.domain] for m in result.migrations),
        "migrations": len(result.migrations),
        "cut": result.cut_short.stage if result.cut_short else None,
    }


def summarise(rows: list[dict[str, Any]], solver: str) -> dict[str, Any]:
    feasible = [r for r in rows if r["exact_feasible"]]
    proven = [r for r in feasible if r["exact_optimal"]]
    missed = [r["seed"] for r in feasible if not r[solver]["resolved"]]
    ratios = [
        r[solver]["memory"] / r["exact_memory"]
        for r in proven
        if r[solver]["resolved"] and r["exact_memory"]
    ]
    times = [r[solver]["seconds"] for r in rows]
    cpu = [r[solver]["cpu_seconds"] for r in rows]
    return {
        "resolves_where_feasible": f"{len(feasible) - len(missed)}/{len(feasible)}",
        "missed_seeds": missed,
        "ratio_mean": round(statistics.fmean(ratios), 4) if ratios else None,
        "ratio_max": round(max(ratios), 4) if ratios else None,
        "ratios_counted": len(ratios),
        "above_optimum": sum(1 for x in ratios if x > 1 + 1e-9),
        "cut_short": sum(1 for r in rows if r[solver]["cut"]),
        "seconds_median": round(statistics.median(times), 3),
        "seconds_max": round(max(times), 3),
        "cpu_seconds_median": round(statistics.median(cpu), 3),
        "cpu_seconds_max": round(max(cpu), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    seeded.add_arguments(parser, instances=40, first_seed=0)
    parser.add_argument("--reference-limit", type=float, default=60.0)
    parser.add_argument("--references", type=Path)
    parser.add_argument("--references-only", action="store_true")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="monotonic")
    parser.add_argument(
        "--solvers", default=",".join(SOLVERS), help="comma-separated, of greedy,auto"
    )
    args = parser.parse_args()
    cache: dict[str, dict[str, Any]] = {}
    if args.references and args.references.exists():
        cache = json.loads(args.references.read_text())
    lifted = {"max_migrations": 100_000, "max_per_host": 100_000}
    solvers = [s for s in args.solvers.split(",") if s in SOLVERS]
    policies = {s: Policy().replace(**lifted, plan_solver=s) for s in SOLVERS}
    exact.available()  # import OR-Tools once, before any plan is timed
    rows = []
    for seed in seeded.seeds(args):
        shape = tight(seed)
        snapshot = generate(seed, shape)
        row: dict[str, Any] = {"seed": seed, "hosts": shape.hosts, "domains": shape.domains}
        if not args.references_only:
            for solver in solvers:
                row[solver] = run(snapshot, policies[solver], args.clock)
        if str(seed) not in cache:
            start = time.perf_counter()
            reference = solve_relieve(
                snapshot, policies["greedy"], time_limit=args.reference_limit, workers=2
            )
            cache[str(seed)] = {
                "exact_s": time.perf_counter() - start,
                "exact_feasible": reference.feasible,
                "exact_optimal": reference.optimal,
                "exact_memory": reference.memory_bytes,
            }
            if args.references:
                args.references.write_text(json.dumps(cache, indent=1))
        row.update(cache[str(seed)])
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.references_only:
        return 0
    summary = {
        "instances": len(rows),
        "exact_feasible": sum(1 for r in rows if r["exact_feasible"]),
        "exact_proven": sum(1 for r in rows if r["exact_feasible"] and r["exact_optimal"]),
        **{solver: summarise(rows, solver) for solver in solvers},
    }
    print(json.dumps(summary, indent=2))
    seeded.write_report(args.json, summary, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
