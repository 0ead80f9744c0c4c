"""Mode ``balance``: narrow the spread of CPU ratios below ``balance_spread``, one best move at a time."""

from __future__ import annotations

from virtbalance.planner.model import EPS, HostLoad, Unit, pct
from virtbalance.planner.outcome import Outcome

# Compare moves from the few most loaded hosts to the few least loaded: the spread is decided at the ends.
SOURCES = 3
DESTINATIONS = 5


def _ratio(host: HostLoad) -> float:
    return host.cpu_average / host.cpus


def _spread_after(
    ranked: list[HostLoad], source: HostLoad, destination: HostLoad, unit: Unit
) -> float:
    """Max minus min CPU ratio if ``unit`` moved from ``source`` to ``destination``."""
    moved = {source.name, destination.name}
    others = [_ratio(h) for h in ranked[:3] + ranked[-3:] if h.name not in moved]
    values = [
        *others,
        (source.cpu_average - unit.cpu_average) / source.cpus,
        (destination.cpu_average + unit.cpu_average) / destination.cpus,
    ]
    return max(values) - min(values)


def balance(outcome: Outcome) -> None:
    """Greedy: the move that narrows the spread most (ties: least memory) until narrow enough, the
    busiest host at cpu_target (below it no host is near overload), or stuck.

    With a forecast the ratios are the hosts' recent averages (``HostLoad.cpu_average``: what
    HostsImbalanced spreads), else their last samples.
    """
    model = outcome.model
    policy = model.policy
    # Emptied hosts are off (or about to be): neither the spread nor a destination.
    hosts = [h for h in model.hosts.values() if not h.maintenance and not h.emptied]
    if len(hosts) < 2:
        return
    moved: set[tuple[str, str]] = set()
    received: set[str] = set()
    while not outcome.deadline.expired("moves"):
        ranked = sorted(hosts, key=lambda h: (_ratio(h), h.name))
        low, high = ranked[0], ranked[-1]
        spread = _ratio(high) - _ratio(low)
        # Uneven below cpu_target is not worth a migration: no host is near overload, the alert's
        # condition (simulator.alerting.imbalanced) is over, and moving evens out no risk.
        if spread <= policy.balance_spread + EPS or _ratio(high) <= policy.cpu_target + EPS:
            return
        best: tuple[tuple[float, int, int, str, str, str], Unit, HostLoad] | None = None
        blockers: list[str] = []
        for source in reversed(ranked[-SOURCES:]):
            if source.settle or source.name in received:
                continue
            for unit in model.units[source.name]:
                if unit.key in moved:
                    continue
                if unit.blocked:
                    if source is high:
                        blockers.append(f"{unit.describe()}: {unit.blocked}")
                    continue
                if model.cap_reason(source, unit.size):
                    continue
                for destination in ranked[:DESTINATIONS]:
                    if outcome.placer.misfit(unit, destination) is not None:
                        continue
                    after = _spread_after(ranked, source, destination, unit)
                    if after >= spread - EPS:
                        continue
                    key = (
                        round(after, 9),
                        unit.memory,
                        unit.size,
                        source.name,
                        unit.id,
                        destination.name,
                    )
                    if best is None or key < best[0]:
                        best = (key, unit, destination)
        if best is None:
            reason = (
                f"cpu spread {pct(spread)} ({high.name} {pct(_ratio(high))} .. {low.name} "
                f"{pct(_ratio(low))}) above balance_spread {pct(policy.balance_spread)}: "
            )
            if model.budget_left() <= 0:
                reason += f"max_migrations {model.max_migrations} per plan reached"
            elif high.settle:
                reason += high.settle
            else:
                reason += "no move that fits the targets narrows it" + (
                    "; " + "; ".join(blockers[:4]) if blockers else ""
                )
            outcome.unresolved_host(high.name, "balance", reason)
            return
        _, unit, destination = best
        source = model.hosts[unit.host]
        why = (
            f"balance: cpu spread {pct(spread)} -> {pct(best[0][0])} (balance_spread "
            f"{pct(policy.balance_spread)}); {source.name} cpu {pct(_ratio(source))} -> "
            f"{pct((source.cpu_average - unit.cpu_average) / source.cpus)}"
        )
        outcome.move(unit, destination.name, why)
        moved.add(unit.key)
        received.add(destination.name)
