"""Mode ``balance``: narrow the spread of CPU ratios below ``balance_spread``, one best move at a time."""

from __future__ import annotations

from virtbalance.planner.model import EPS, HostLoad, Model, Unit, pct
from virtbalance.planner.outcome import Outcome
from virtbalance.policy import Policy

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


def _gain_bar(policy: Policy, spread: float, high: HostLoad) -> float:
    """The least share of its source's capacity a balance move must shed, per migration.

    What is left to the nearer of balance's stops (the spread at ``balance_spread``, the busiest host
    at ``cpu_target``), shared out over the ``max_migrations`` of one plan: a move that sheds less
    cannot end the condition within a plan, so the alert is re-sent and the next plan moves again.
    """
    left = min(spread - policy.balance_spread, _ratio(high) - policy.cpu_target)
    return left / max(policy.max_migrations, 1)


def _peaks(model: Model, host: HostLoad, shifted: dict[str, float]) -> float:
    """The host's CPU if each domain it runs now were at its recent peak (``Unit.cpu_peak``) at once.

    An upper bound of what its current domains have shown, unlike ``HostLoad.cpu_peak`` (the peak
    of their sum): steady domains keep it at their average, bursty ones raise it. Below cpu_high no
    coincidence of the bursts seen overloads the host, and any lasting rise is relief's (its alert
    fires): a balance move there buys no headroom. ``shifted``: the peaks this plan moved in or out.
    """
    return (
        host.immovable_cpu
        + sum(u.cpu_peak for u in model.units[host.name])
        + shifted.get(host.name, 0.0)
    )


def _peak(host: HostLoad, shifted: dict[str, float]) -> float:
    """The host's forecast peak (``HostLoad.cpu_peak``, the peak of its domains' sum) after this
    plan's moves, each counted at its own peak (``shifted``): a move lowers the peak of the sum by
    at most that, so the figure errs towards stopping early, never towards another migration."""
    return host.cpu_peak + shifted.get(host.name, 0.0)


def _at_risk(model: Model, host: HostLoad, shifted: dict[str, float]) -> bool:
    """Whether moving load off ``host`` buys headroom where overload threatens.

    Without a forecast the last sample is all there is: every host may be a source. With one, the
    host's domains at their peaks must add up above cpu_high (``_peaks``), and the host itself must
    be at risk: its average above cpu_target or its forecast peak above cpu_high. A host below both
    narrows the spread only by raising its least loaded end, which prevents no overload: moving
    from it costs a migration while the busiest host, which could not shed, stays where it was.
    """
    if not model.forecast:
        return True
    policy = model.policy
    high = policy.cpu_high * host.cpus + EPS
    if _peaks(model, host, shifted) <= high:
        return False
    return _ratio(host) > policy.cpu_target + EPS or _peak(host, shifted) > high


def _peak_bar(policy: Policy, pool: list[HostLoad], shifted: dict[str, float]) -> float:
    """``_gain_bar`` for hosts balanced on their peak: the most any of them is above cpu_high,
    shared out over the ``max_migrations`` of one plan."""
    over = max(_peak(h, shifted) / h.cpus - policy.cpu_high for h in pool)
    return over / max(policy.max_migrations, 1)


def balance(outcome: Outcome) -> None:
    """Greedy: the move that narrows the spread most (ties: least memory) until narrow enough, the
    busiest host at cpu_target (below it no host is near overload), or stuck.

    With a forecast the ratios are the hosts' recent averages (``HostLoad.cpu_average``: what
    HostsImbalanced spreads), else their last samples; a host is a source only while its
    domains, each at its recent peak, would take it above cpu_high, and its average is above
    cpu_target or its forecast peak above cpu_high (``_at_risk``); and once the
    busiest average is at cpu_target the sources are the hosts whose forecast peak is still above
    cpu_high (``_peak``), until none is. Every move must shed at least ``_gain_bar`` (on the
    peaks: ``_peak_bar``) per migration.
    """
    model = outcome.model
    policy = model.policy
    # Emptied hosts are off (or about to be): neither the spread nor a destination.
    hosts = [h for h in model.hosts.values() if not h.maintenance and not h.emptied]
    if len(hosts) < 2:
        return
    moved: set[tuple[str, str]] = set()
    received: set[str] = set()
    shifted: dict[str, float] = {}
    while not outcome.deadline.expired("moves"):
        ranked = sorted(hosts, key=lambda h: (_ratio(h), h.name))
        low, high = ranked[0], ranked[-1]
        spread = _ratio(high) - _ratio(low)
        # Uneven below cpu_target is not worth a migration: no host is near overload, the alert's
        # condition (simulator.alerting.imbalanced) is over, and moving evens out no risk.
        if spread <= policy.balance_spread + EPS:
            return
        if _ratio(high) > policy.cpu_target + EPS:
            pool = list(reversed(ranked[-SOURCES:]))
            bar = _gain_bar(policy, spread, high)
        else:
            # Every average is at cpu_target, but a host whose forecast peak is above cpu_high will
            # cross it again in a burst shorter than the overload alert's `for`, which relief never
            # sees: only placement prevents it, so balance goes on from those hosts, peak first.
            pool = sorted(
                (
                    h
                    for h in hosts
                    if model.forecast and _peak(h, shifted) > policy.cpu_high * h.cpus + EPS
                ),
                key=lambda h: (-_peak(h, shifted) / h.cpus, h.name),
            )[:SOURCES]
            if not pool:
                return
            bar = _peak_bar(policy, pool, shifted)
        sources = [h for h in pool if _at_risk(model, h, shifted)]
        if not sources:
            return
        best: tuple[tuple[float, int, int, str, str, str], Unit, HostLoad] | None = None
        blockers: list[str] = []
        for source in sources:
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
                if unit.cpu_average < bar * unit.size * source.cpus - EPS:
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
                reason += "no move that fits the targets narrows it by enough" + (
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
        shifted[source.name] = shifted.get(source.name, 0.0) - unit.cpu_peak
        shifted[destination.name] = shifted.get(destination.name, 0.0) + unit.cpu_peak
        moved.add(unit.key)
        received.add(destination.name)
