"""Relieve refined by CP-SAT: seeded with the greedy plan, held to what is left of the planning budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from virtbalance.planner import exact
from virtbalance.planner.deadline import Deadline
from virtbalance.planner.model import Inputs, Model, Unit
from virtbalance.planner.outcome import Outcome
from virtbalance.planner.placement import Placer
from virtbalance.planner.relieve import (
    Need,
    finish,
    improve,
    loose_bound,
    prepare,
    relieve_with,
)
from virtbalance.planner.repack import repack
from virtbalance.policy import Policy

# Share of the remaining budget CP-SAT may use: the rest replays its answer into a plan and, unless it
# is proven optimal, re-solves the hosts whose sets cost more than their ideal (``relieve.improve``).
SOLVER_SHARE = 0.8
# CP-SAT work units per second of plan_budget when there is no clock: one unit took 1.8-24 s of wall
# time on tight clusters of 11-27 hosts (a loaded 2-core machine), so a unit is not a second.
DETERMINISTIC_PER_SECOND = 0.25
# Hosts times domains above this many times exact.MAX_PAIRS: no need to count the pairs (about 700 hosts
# with 6 domains each; a tenth of them overloaded would already give 60,000 pairs).
OBVIOUSLY_TOO_BIG = 50


def refine_relieve(
    inputs: Inputs, greedy: Outcome, deadline: Deadline
) -> tuple[Outcome | None, bool]:
    """CP-SAT's plan, if it found one (None: too big a model, out of time, or no valid answer), and
    whether the best plan is proven optimal (greedy's, when it is cheapest by the lower bounds, or
    CP-SAT's). Only called when ``enabled``."""

    policy = inputs.policy

    def fresh() -> tuple[Outcome, dict[str, Need], list[str]]:
        model = inputs.model()
        outcome = Outcome(model, Placer(model), deadline=deadline)
        needs, busy = prepare(outcome, inputs.relieve_hosts)
        return outcome, needs, busy

    outcome, needs, busy = fresh()
    model = outcome.model
    if not needs or _optimal(greedy, model, needs):
        return None, True
    receivers = [model.hosts[name] for _, name in outcome.placer.order]
    if exact.pairs(model, needs, receivers) > exact.MAX_PAIRS or deadline.expired("exact"):
        return None, False
    # Imported here, inside the budget (the budget bounds the whole plan call), and only by plans
    # that need CP-SAT; a long-running caller has imported it already (exact.warm_up).
    if not exact.ready(deadline.remaining()) or deadline.expired("exact"):
        return None, False
    unresolved = {u.host for u in greedy.unresolved}
    hint = [
        (m.unit, m.destination)
        for m in greedy.moves
        if m.unit.host in needs and m.unit.host not in unresolved
    ]

    def seconds() -> tuple[float, bool]:
        remaining = deadline.remaining()
        if remaining is None:
            # No clock: CP-SAT's own work units, so that the same input still gives the same plan.
            return policy.plan_budget * DETERMINISTIC_PER_SECOND, True
        return remaining * SOLVER_SHARE, False

    sets = exact.solve_sets(model, needs, receivers, hint, seconds)
    if sets is None:
        deadline.stop("exact")
        return None, False
    # Prefer the greedy placement of CP-SAT's sets (least loaded destinations); else its own.
    for regreedy in (True, False):
        if regreedy:
            attempt = outcome
        else:
            attempt, needs, busy = fresh()
        if _commit_sets(attempt, needs, sets.moves, regreedy):
            if not sets.optimal:
                repack(attempt, needs)
                improve(attempt, needs, alone=True)
                # After the improvement step: a CP-SAT stop recorded before would have ended it.
                deadline.stop("exact")
            finish(attempt, needs, busy)
            return attempt, sets.optimal
    if not sets.optimal:
        deadline.stop("exact")
    return None, False


def enabled(policy: Policy) -> bool:
    """Whether relieve refines its plan with CP-SAT: OR-Tools installed and not ``plan_solver: greedy``
    (nothing is imported yet: see ``refine_relieve``)."""
    return policy.plan_solver != "greedy" and exact.installed()


def small_enough(inputs: Inputs) -> bool:
    """Whether the CP-SAT model stays within ``exact.MAX_PAIRS``: if not, the greedy search keeps the
    whole budget. Clusters far too big are told apart without building a model (it takes a while)."""
    snapshot = inputs.snapshot
    if len(snapshot.hosts) * len(snapshot.domains) > OBVIOUSLY_TOO_BIG * exact.MAX_PAIRS:
        return False
    model = inputs.model()
    outcome = Outcome(model, Placer(model))
    needs, _ = prepare(outcome, inputs.relieve_hosts)
    return exact.pairs(model, needs, outcome.placer.order) <= exact.MAX_PAIRS


def _optimal(greedy: Outcome, model: Model, needs: Mapping[str, Need]) -> bool:
    """Every host relieved in full by its cheapest covering set, destinations aside: nothing is cheaper."""
    unresolved = {u.host for u in greedy.unresolved}
    for name, need in needs.items():
        moves = greedy.by_source.get(name, [])
        bound = loose_bound(model, name, need)
        if name in unresolved or not moves or bound is None:
            return False
        if (sum(m.unit.memory for m in moves), sum(m.unit.size for m in moves)) != bound:
            return False
    return True


def _commit_sets(
    outcome: Outcome,
    needs: Mapping[str, Need],
    moves: Mapping[str, Sequence[tuple[Unit, str]]],
    regreedy: bool,
) -> bool:
    for name, need in needs.items():
        if name not in moves:
            continue
        placed: Sequence[tuple[Unit, str]] | None = moves[name]
        if regreedy:
            placed = outcome.placer.place_all([u for u, _ in moves[name]])
        if placed is None or not relieve_with(outcome, outcome.model.hosts[name], need, placed):
            return False
    return True
