"""Relieve's repair step: a host left without full relief, or paying more than its cheapest set, gets a
cheaper set by packing it together with every other host's set anew (``packing.pack``)."""

from __future__ import annotations

from collections.abc import Callable

from virtbalance.planner import exact
from virtbalance.planner.deadline import Deadline
from virtbalance.planner.model import Unit
from virtbalance.planner.outcome import Outcome
from virtbalance.planner.packing import Allowance, pack
from virtbalance.planner.placement import Overlay
from virtbalance.planner.relieve import Cost, Need, cheapest_cover, commit_relief, loose_bound
from virtbalance.planner.rooms import Rooms

# Placements the packer may try in one repair step, all hosts together: bounds its time on clusters
# where few sets pack (tens of milliseconds of CPU per thousand), and without a clock.
REPACK_NODES = 20_000
# Share of what is left of the budget one repair step may take (relieve runs up to three per pass, in
# each of the variants): a step that finds nothing does not leave the later steps without time.
REPACK_SHARE = 0.25
# Placements for the repair step after the slim pass (``slim.py``): its sets pack with little room to
# spare, and a cheaper one that still packs shows up early or not at all (seed 88 of the tight
# instances: 163 placements to the optimum; seed 16: none in 20,000, which cost 0.6 s of CPU).
AFTER_SLIM_NODES = 2_000


def repack(outcome: Outcome, needs: dict[str, Need], nodes: int = REPACK_NODES) -> None:
    """Each host (in ``needs`` order) whose full-relief set is missing or costs more than its loose
    bound (``relieve.loose_bound``): the cheapest set of its chunks that packs together with the
    other hosts' sets, all placed anew as if nothing had moved; the whole placement is taken when
    there is one cheaper than the host's own. The greedy search places each host's set on what the
    hosts before it left, least loaded first, and on a tight cluster that strands room no later set
    can use; a joint packing reaches plans it cannot (the same sets, destinations swapped).
    ``nodes``: the placements the packer may try in this step, all hosts together.
    """
    receivers = outcome.placer.order
    if exact.pairs(outcome.model, needs, receivers) > exact.MAX_PAIRS:
        # Each placement tried scans every receiver: beyond the size CP-SAT is tried at, the packer's
        # allowance would cost seconds (and the greedy placement has room to spare on such clusters).
        return
    allowance = Allowance(nodes)
    deadline = outcome.deadline.step(REPACK_SHARE)
    for name, need in needs.items():
        if deadline.expired("improvement") or allowance.left <= 0:
            return
        placed = _cheaper(outcome, name, need, allowance, deadline)
        if placed is None:
            continue
        for source in list(outcome.by_source):
            outcome.retract(source)
        for source in needs:
            own = [(u, d) for u, d in placed if u.host == source]
            if own:
                commit_relief(outcome, outcome.model.hosts[source], own)


def _cheaper(
    outcome: Outcome, name: str, need: Need, allowance: Allowance, deadline: Deadline
) -> list[tuple[Unit, str]] | None:
    """Every move of a plan where ``name`` gets a cheaper full-relief set and the others keep theirs,
    all destinations chosen anew; None if the host is at its bound or nothing cheaper packs."""
    model = outcome.model
    placer = outcome.placer
    mine = outcome.by_source.get(name, [])
    current: Cost = (
        (0, sum(m.unit.memory for m in mine), sum(m.unit.size for m in mine)) if mine else (1, 0, 0)
    )
    bound = loose_bound(model, name, need)
    if bound is None or current[1:] == bound:
        return None
    others = [m.unit for m in outcome.moves if m.unit.host != name]
    base = placer.initial_overlay((m.unit, m.destination) for m in outcome.moves)
    packed = packed_cover(
        outcome, name, need, others, base, placer.rooms(base), allowance, deadline
    )
    if packed is None:
        return None
    cover, placed = packed
    if (0, sum(u.memory for u in cover), sum(u.size for u in cover)) >= current:
        return None
    return placed


def packed_cover(  # noqa: PLR0917 - one search's state, passed through
    outcome: Outcome,
    name: str,
    need: Need,
    fixed: list[Unit],
    base: Overlay,
    rooms: Rooms,
    allowance: Allowance,
    deadline: Deadline,
    room: Callable[[Unit], float] | None = None,
) -> tuple[list[Unit], list[tuple[Unit, str]]] | None:
    """The cheapest set of ``name``'s movable units covering ``need`` that packs beside the ``fixed``
    ones (after ``base``), within the plan's and the host's migration limits, and every move of that
    packing; None if no set packs."""
    model = outcome.model
    limit = min(model.policy.max_per_host, model.max_migrations - sum(u.size for u in fixed))
    # Every placement found for a candidate set, by the set's keys.
    found: dict[frozenset[tuple[str, str]], list[tuple[Unit, str]]] = {}

    def places(units: list[Unit]) -> bool:
        placed = pack(outcome.placer, [*fixed, *units], base, deadline, allowance)
        if placed is not None:
            found[frozenset(u.key for u in units)] = placed
        return placed is not None

    cover = cheapest_cover(
        [u for u in model.units[name] if not u.blocked],
        need,
        limit,
        places,
        deadline=deadline,
        rooms=rooms,
        fixed=fixed,
        room=room,
    )
    return None if cover is None else (cover, found[frozenset(u.key for u in cover)])
