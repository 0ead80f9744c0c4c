"""How far rebalancing by mean load can go on a scenario: bounds no migration budget applies to.

    .venv/bin/python benchmarks/bound_rebalance_oracle.py [--traces DIR] [--scenarios NAME,...]

Same cluster as bench_simulator_holdout.py (its sizing rule), identical hosts only. Every VM is
re-placed from scratch by longest-processing-time first (each VM, largest first, onto the host with the
least load so far), on three inputs: each VM's mean over the whole trace, placed once (an oracle: it knows
the day); every hour, on the mean of the hour before (the best a causal balancer of means could do,
moving every VM it wants; the first hour is placed on its own means); every hour, on the mean of the hour to come (clairvoyant). Memory is ignored.
Prints overloaded host-time (CPU above 75%) and the cut against the replay's `none`, placed by first fit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import checkout  # noqa: F401 (puts this tree first on sys.path)
import numpy as np
from bench_simulator_holdout import HOSTS, SCENARIOS, TRACES, sized

from virtbalance.simulator.config import TraceSpec

HOUR_STEPS = 12
CPU_HIGH = 0.75


def lpt(weights: np.ndarray, hosts: int) -> np.ndarray:
    """The host of each VM: largest first onto the least loaded host."""
    loads = np.zeros(hosts)
    where = np.zeros(len(weights), dtype=int)
    for vm in np.argsort(-weights, kind="stable"):
        host = int(np.argmin(loads))
        where[vm] = host
        loads[host] += weights[vm]
    return where


def overloaded_pct(cpu: np.ndarray, placements: list[np.ndarray], cpus: float) -> float:
    """Host-steps above CPU_HIGH, in %, with ``placements[step]`` the host of each VM at that step."""
    steps = cpu.shape[1]
    count = 0
    for step in range(steps):
        loads = np.bincount(placements[step], weights=cpu[:, step], minlength=HOSTS) / cpus
        count += int((loads > CPU_HIGH).sum())
    return 100.0 * count / (HOSTS * steps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", default=str(TRACES))
    parser.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    args = parser.parse_args()
    wanted = set(args.scenarios.split(",")) if args.scenarios else None
    for scenario in SCENARIOS:
        if scenario.groups or (wanted is not None and scenario.name not in wanted):
            continue
        workload = TraceSpec(str(Path(args.traces) / scenario.traces), scenario.format).load()
        cpus = sized(workload).cpus
        cpu = np.array([list(vm.cpu) for vm in workload.vms])
        steps = cpu.shape[1]
        static = lpt(cpu.mean(axis=1), HOSTS)
        causal, ahead = [], []
        where_causal = lpt(cpu[:, :HOUR_STEPS].mean(axis=1), HOSTS)
        for step in range(steps):
            if step % HOUR_STEPS == 0:
                if step >= HOUR_STEPS:
                    where_causal = lpt(cpu[:, step - HOUR_STEPS : step].mean(axis=1), HOSTS)
                where_ahead = lpt(cpu[:, step : step + HOUR_STEPS].mean(axis=1), HOSTS)
            causal.append(where_causal)
            ahead.append(where_ahead)
        rows = [
            ("placed once on the day's means", [static] * steps),
            ("every hour on the last hour's means", causal),
            ("every hour on the next hour's means", ahead),
        ]
        print(f"{scenario.name}: {len(workload.vms)} VMs, {HOSTS} x {cpus:g} CPUs")
        for label, placements in rows:
            print(f"  {label:38s} {overloaded_pct(cpu, placements, cpus):6.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
