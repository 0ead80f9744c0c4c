"""What the alerts could have seen before each overload virtbalance left on one holdout scenario.

    PYTHONPATH=. .venv/bin/python benchmarks/overload_onsets.py planetlab-20110322 [--traces DIR] [--seed N]

Replays virtbalance alone on the scenario as ``bench_simulator_holdout.py`` builds it (same cluster,
policy and migration cost) and, for every stretch of a host's CPU above ``cpu_high``, reads the
evaluation before it began: whether the host had been above ``cpu_high`` within ``hot_window`` (the
window HostChronicallyHot's share counts), whether its forecast peak (the peak of its current domains'
sum over ``forecast_window``, what balance's peak phase reads) was above ``cpu_high``, its average over
``balance_window``, and HostsImbalanced's two legs (the spread of the averages above ``balance_spread``,
the busiest average above ``cpu_target``). A stretch none of these saw coming is one no trigger built
on them can prevent.
"""

from __future__ import annotations

import statistics
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench_simulator_holdout import scenario_replay_setup

from virtbalance.forecast import window_points
from virtbalance.policy import Policy
from virtbalance.simulator.alerting import window_mean
from virtbalance.simulator.config import Simulation
from virtbalance.simulator.engine import replay
from virtbalance.simulator.policies.virtbalance import VirtbalanceParams, VirtbalancePolicy


@dataclass(frozen=True)
class Before:
    """One stretch of a host above cpu_high, and what the rules read at the evaluation before it."""

    host: str
    step: int
    steps: int  # how long the stretch lasted, in evaluations
    recurred: bool  # above cpu_high within hot_window before
    peak: float  # the host's own peak over forecast_window before
    average: float  # its CPU averaged over balance_window
    spread: float  # max - min of the awake hosts' averages
    busiest: float  # the highest awake host's average


def stretches(series: Mapping[str, Sequence[float]], policy: Policy, step: float) -> list[Before]:
    """Every stretch of a host's CPU ratio above ``cpu_high`` in ``series`` (host -> ratio per step).

    A host at 0 is off (no domain), out of the spread as HostsImbalanced leaves emptied hosts out.
    """
    hot_points = window_points(policy.hot_window, step)
    balance_points = window_points(policy.balance_window, step)
    forecast_points = window_points(policy.forecast_window, step)
    steps = min((len(values) for values in series.values()), default=0)
    windows: dict[str, deque[float]] = {host: deque() for host in series}
    averages: dict[int, dict[str, float]] = {}
    for i in range(steps):
        awake = {}
        for host, values in series.items():
            if values[i] > 0:
                awake[host] = window_mean(windows[host], values[i], balance_points)
            else:
                windows[host].clear()
        averages[i] = awake
    # From the second evaluation on: the first has no evaluation before it.
    found: list[Before] = []
    high = policy.cpu_high
    for host, values in series.items():
        i = 1
        while i < steps:
            if values[i] <= high:
                i += 1
                continue
            end = i
            while end < steps and values[end] > high:
                end += 1
            eve = averages[i - 1]
            means = list(eve.values()) or [0.0]
            found.append(
                Before(
                    host=host,
                    step=i,
                    steps=end - i,
                    recurred=any(v > high for v in values[max(0, i - hot_points) : i]),
                    peak=max(values[max(0, i - forecast_points) : i]),
                    average=eve.get(host, 0.0),
                    spread=max(means) - min(means),
                    busiest=max(means),
                )
            )
            i = end
    return found


def report(stretches: list[Before], policy: Policy, step: float) -> list[str]:
    """The stretches' counts and host-hours by what saw them coming."""
    hours = step / 3600.0

    def line(label: str, chosen: list[Before]) -> str:
        steps = sum(s.steps for s in chosen)
        return f"{label}: {len(chosen)} stretches, {steps * hours:.2f} host-hours"

    peaky = [s for s in stretches if s.peak > policy.cpu_high]
    recurred = [s for s in stretches if s.recurred]
    legs = [
        s for s in stretches if s.spread > policy.balance_spread and s.busiest > policy.cpu_target
    ]
    source = [s for s in legs if s.average > policy.cpu_target or s.peak > policy.cpu_high]
    unseen = [s for s in stretches if not (s.recurred or s.peak > policy.cpu_high or s in legs)]
    lines = [
        line("overload stretches", stretches),
        line("  above cpu_high within hot_window before (recurred)", recurred),
        line("  forecast peak above cpu_high before", peaky),
        line("  both HostsImbalanced legs true before", legs),
        line(
            "    the host a balance source (average above cpu_target or peak above cpu_high)",
            source,
        ),
        line("  none of these", unseen),
    ]
    if stretches:
        averages = statistics.quantiles([s.average for s in stretches], n=4)
        spreads = statistics.quantiles([s.spread for s in stretches], n=4)
        lines.append("host average before, quartiles: " + ", ".join(f"{a:.1%}" for a in averages))
        lines.append("spread before, quartiles: " + ", ".join(f"{a:.1%}" for a in spreads))
        lines.append(f"longest: {max(s.steps for s in stretches)} evaluations")
    return lines


def main() -> int:
    args, policy, workload, cluster = scenario_replay_setup(__doc__.splitlines()[0])
    plugin = VirtbalancePolicy(VirtbalanceParams(), policy)
    result = replay(workload, cluster, plugin, policy, cost=Simulation().migration)
    found = stretches(result.host_series, policy, workload.step)
    print(f"{args.scenario}, seed {args.seed}, virtbalance, {result.metrics.migrations} migrations")
    print("\n".join(report(found, policy, workload.step)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
