"""What virtbalance's balance plans do on one holdout scenario: moves per plan, the spread, moves that go back.

    PYTHONPATH=. .venv/bin/python benchmarks/balance_moves.py bitbrains-2013-7 [--traces DIR] [--seed N]

Replays virtbalance alone on the scenario as ``bench_simulator_holdout.py`` builds it (same cluster,
policy and migration cost), logging every balance plan: its moves, and the CPU spread (``max - min``
of the hosts that run a domain) when it is made and at the first evaluation after its migrations
ended, on the last sample and on the averages balance judges (each host's domains' averages over
``balance_window``, what HostsImbalanced averages, as the plan sees them).
"""

from __future__ import annotations

import itertools
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from bench_simulator_holdout import scenario_replay_setup

from virtbalance.forecast import window_points
from virtbalance.policy import Policy
from virtbalance.simulator.config import Simulation
from virtbalance.simulator.engine import replay
from virtbalance.simulator.policies.virtbalance import VirtbalanceParams, VirtbalancePolicy
from virtbalance.simulator.state import ClusterView, Move


def spread(view: ClusterView) -> float:
    ratios = [view.cpu_ratio(h) for h in view.host_names if view.domains_by_host[h]]
    return max(ratios) - min(ratios) if ratios else 0.0


def averaged_spread(view: ClusterView, policy: Policy) -> float:
    """The spread of the hosts' current domains' averages over ``balance_window``."""
    averages = view.recent_averages(window_points(policy.balance_window, view.step_seconds))
    ratios = [
        sum(averages[d] for d in view.domains_by_host[h]) / view.host_cpus[h]
        for h in view.host_names
        if view.domains_by_host[h]
    ]
    return max(ratios) - min(ratios) if ratios else 0.0


@dataclass
class BalancePlan:
    time: float
    before: float
    moves: list[tuple[str, str, str]]  # (domain, source, destination)
    averaged_before: float
    after: float | None = None
    averaged_after: float | None = None


class Logged(VirtbalancePolicy):
    """virtbalance, logging each balance plan and the spread it leaves."""

    def __init__(self, params: VirtbalanceParams, policy: Policy) -> None:
        super().__init__(params, policy)
        self.log: list[BalancePlan] = []

    def decide(self, view: ClusterView) -> Sequence[Move]:
        # The engine decides again only once the migrations are over: this is the spread they left.
        if self.log and self.log[-1].after is None:
            self.log[-1].after = spread(view)
            self.log[-1].averaged_after = averaged_spread(view, self.policy)
        return super().decide(view)

    def _balance(self, view: ClusterView) -> Sequence[Move]:
        before, averaged = spread(view), averaged_spread(view, self.policy)
        moves = super()._balance(view)
        sources = [(m.domain, view.placement[m.domain], m.destination) for m in moves]
        self.log.append(BalancePlan(view.time, before, sources, averaged))
        return moves


def quartiles(values: list[float]) -> str:
    if len(values) < 2:  # quantiles needs two points
        return ", ".join(f"{v:.1%}" for v in values)
    return ", ".join(f"{q:.1%}" for q in statistics.quantiles(values, n=4))


def report(log: list[BalancePlan], policy: Policy, migrations: int) -> list[str]:
    moved = [p for p in log if p.moves]
    moves = [m for p in moved for m in p.moves]
    lines = [
        f"balance plans {len(log)}, with moves {len(moved)}; balance migrations {len(moves)} "
        f"of {migrations}",
        f"moves per plan: {sorted(Counter(len(p.moves) for p in log).items())}",
    ]
    if not moved:
        return lines
    gaps = [b.time - a.time for a, b in itertools.pairwise(log)]
    after = [p.before if p.after is None else p.after for p in moved]
    averaged_after = [
        p.averaged_before if p.averaged_after is None else p.averaged_after for p in moved
    ]
    lines += [
        f"minutes between plans: median {statistics.median(gaps) / 60:.0f}, least "
        f"{min(gaps) / 60:.0f}"
        if gaps
        else "one plan",
        f"spread before, quartiles: {quartiles([p.before for p in moved])}",
        f"spread after, quartiles: {quartiles(after)}",
        f"above balance_spread after: {sum(a > policy.balance_spread for a in after)} of {len(moved)}",
        f"averaged spread before, quartiles: {quartiles([p.averaged_before for p in moved])}",
        f"averaged spread after, quartiles: {quartiles(averaged_after)}",
        f"averaged above balance_spread after: "
        f"{sum(a > policy.balance_spread for a in averaged_after)} of {len(moved)}",
    ]
    pairs = Counter((source, destination) for _, source, destination in moves)
    # A move from A to B undone in net by one from B to A (each counted once per direction).
    matched = sum(min(count, pairs.get((d, s), 0)) for (s, d), count in pairs.items())
    lines.append(
        f"moves matched by a move the other way on the same pair: {matched} of {len(moves)}"
    )
    lines.append(f"ordered host pairs used: {len(pairs)}")
    per_domain = Counter(domain for domain, _, _ in moves)
    top = per_domain.most_common(1)[0]
    lines.append(
        f"domains moved: {len(per_domain)}, 3 times or more: "
        f"{sum(c >= 3 for c in per_domain.values())} (most: {top[0]}, {top[1]} times)"
    )
    left: dict[str, set[str]] = defaultdict(set)
    back = 0
    for domain, source, destination in moves:
        back += destination in left[domain]
        left[domain].add(source)
    lines.append(f"moves taking a domain back to a host it left before: {back}")
    reversed_previous = sum(
        (d, s) in {(s2, d2) for _, s2, d2 in a.moves}
        for a, b in itertools.pairwise(moved)
        for _, s, d in b.moves
    )
    lines.append(f"moves reversing a pair of the plan just before: {reversed_previous}")
    return lines


def main() -> int:
    args, policy, workload, cluster = scenario_replay_setup(__doc__.splitlines()[0])
    plugin = Logged(VirtbalanceParams(), policy)
    result = replay(
        workload, cluster, plugin, policy, record_series=False, cost=Simulation().migration
    )
    print(f"{args.scenario}, seed {args.seed}, virtbalance")
    print("\n".join(report(plugin.log, policy, len(result.history))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
