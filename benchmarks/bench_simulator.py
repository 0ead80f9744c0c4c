"""Benchmark ``virtbalance simulate``: the Bitbrains month on 10 hosts, every policy side by side.

Measures replay speed (load, per policy, all) and checks the goals: virtbalance cuts overloaded
host-time by >= 90% against ``none``, with fewer migrations than every baseline that gets within 10
points of its reduction. Prints a Markdown block for docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_simulator.py [--traces DIR] [--cpus 48] [--memory-gib 256]
        [--json out.json] [--plot out.png] [--sweep 40,48,56]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

from checkout import REPO

from virtbalance.simulator.cluster import ClusterSpec
from virtbalance.simulator.config import Simulation, TraceSpec
from virtbalance.simulator.plot import plot_hosts
from virtbalance.simulator.report import RIVAL_POINTS, reduction_pct, rivals, table, to_json
from virtbalance.simulator.run import Comparison, compare
from virtbalance.simulator.traces import GIB

DEFAULT_TRACES = REPO.parent / "shared" / "traces" / "bitbrains-rnd-2013-7"


def goals(comparison: Comparison) -> list[str]:
    ours, cut, others = rivals(comparison.results)
    lines = [
        f"- virtbalance cuts overloaded host-time by {cut:.1f}% (goal >= 90%): {'met' if cut >= 90 else 'MISSED'}"
    ]
    for rival in others:
        name, metrics = rival.name, rival.metrics
        if rival.close:
            verdict = "met" if ours.migrations < metrics.migrations else "MISSED"
            lines.append(
                f"- {name} cuts {rival.cut:.1f}% (within {RIVAL_POINTS:g} points): virtbalance "
                f"{ours.migrations} vs {metrics.migrations} migrations, {ours.migrated_gib:.0f} vs "
                f"{metrics.migrated_gib:.0f} GiB: {verdict}"
            )
        else:
            lines.append(
                f"- {name} cuts {rival.cut:.1f}%: more than {RIVAL_POINTS:g} points short, not compared"
            )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default=str(DEFAULT_TRACES))
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--cpus", type=float, default=48.0)
    parser.add_argument("--memory-gib", type=float, default=256.0)
    parser.add_argument("--json")
    parser.add_argument("--plot")
    parser.add_argument("--sweep", help="also run these CPU sizes (comma-separated), figures only")
    args = parser.parse_args()

    simulation = Simulation(
        traces=TraceSpec(path=args.traces),
        cluster=ClusterSpec(
            hosts=args.hosts, cpus=args.cpus, memory_bytes=int(args.memory_gib * GIB)
        ),
    )
    started = time.perf_counter()
    workload = simulation.traces.load()
    load_seconds = time.perf_counter() - started
    comparison = compare(simulation, workload=workload, record_series=bool(args.plot))
    total = time.perf_counter() - started

    print(
        f"## Simulator\n\n{datetime.date.today().isoformat()}, {platform.node()}, "
        f"`{' '.join(['.venv/bin/python', *sys.argv])}`\n"
    )
    print("```")
    print(table(comparison.results, simulation.policy.cpu_high))
    print("```\n")
    replay = sum(r.metrics.replay_seconds for r in comparison.results)
    print(
        f"- trace load {load_seconds:.1f} s; replay of all {len(comparison.results)} policies "
        f"{replay:.1f} s; load + all {total:.1f} s; slowest policy "
        f"{max(r.metrics.replay_seconds for r in comparison.results):.1f} s"
    )
    print("\n".join(goals(comparison)))
    if args.json:
        Path(args.json).write_text(to_json(comparison.results, comparison.setup(simulation)) + "\n")
    if args.plot:
        plot_hosts(comparison.results, args.plot, workload.step, simulation.policy.cpu_high)
    for cpus in [float(c) for c in args.sweep.split(",")] if args.sweep else []:
        other = compare(
            replace(simulation, cluster=replace(simulation.cluster, cpus=cpus)),
            workload=workload,
            record_series=False,
        )
        base = other.results[0].metrics.overloaded_host_time_pct
        cells = ", ".join(
            f"{r.metrics.policy} {reduction_pct(base, r.metrics.overloaded_host_time_pct):.0f}%/"
            f"{r.metrics.migrations}"
            for r in other.results[1:]
        )
        print(f"- {cpus:g} CPUs per host: none {base:.2f}% overloaded; cut/migrations: {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
