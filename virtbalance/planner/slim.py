"""Relieve's last resort for hosts left without full relief: every host's set chosen to take the least room, packed together."""

from __future__ import annotations

import bisect
from collections.abc import Callable

from virtbalance.planner import exact
from virtbalance.planner.deadline import Deadline
from virtbalance.planner.model import EPS, Unit
from virtbalance.planner.outcome import Outcome
from virtbalance.planner.packing import Allowance
from virtbalance.planner.relieve import Need, commit_relief, loose_bound
from virtbalance.planner.repack import REPACK_SHARE, packed_cover

# Placements the packer may try in one pass, all hosts together (as ``repack.REPACK_NODES``): the
# pass runs where a host is still missing, mostly on clusters where no plan resolves it.
SLIM_NODES = 20_000


def slim(outcome: Outcome, needs: dict[str, Need]) -> bool | None:
    """Full relief for every host in ``needs`` that has a covering set, each taking the set that
    leaves the receivers the most room, each packed together with the sets before it
    (``packing.pack``); the whole placement replaces the plan when every such host gets a set.
    Returns whether it did (None: no host was missing a set it could have, or the cluster is beyond
    the packer's size, so nothing was tried). Room is weighed two ways, attempted in turn (see
    ``ways`` below); in each, a host that finds no set goes first in the next attempt (at most one
    attempt per host and way, all within one allowance of placements and a share of the budget).

    The cheapest set of a host often carries more CPU than it must shed; on a cluster where the
    receivers' room is what is short, that excess is what another host's set no longer fits in, and
    no choice of destinations mends it (``repack`` keeps the other hosts' sets). The repair step then
    makes each set cheaper again, as long as it still packs with the others.
    """
    model = outcome.model
    placer = outcome.placer
    if all(outcome.by_source.get(name) for name in needs):
        return None
    if exact.pairs(model, needs, placer.order) > exact.MAX_PAIRS:
        # As for the repair step: beyond CP-SAT's size the packer's allowance would cost seconds.
        return None
    coverable = [name for name, need in needs.items() if loose_bound(model, name, need) is not None]
    missing = [name for name in coverable if not outcome.by_source.get(name)]
    if not missing:
        return None
    rooms = placer.rooms(placer.initial_overlay((m.unit, m.destination) for m in outcome.moves))
    cpu_total = max(rooms.cpu_from[0], EPS)
    memory_total = max(rooms.memory_from[0], 1.0)

    def taken(unit: Unit) -> float:
        return unit.cpu_peak / cpu_total + unit.memory / memory_total

    # The resource the receivers are shortest of, after what the hosts must shed at least.
    cpu_short = (cpu_total - sum(needs[n].cpu for n in coverable)) / cpu_total <= (
        memory_total - sum(needs[n].memory for n in coverable)
    ) / memory_total

    def ranked(unit: Unit) -> float:
        """The unit's share of the rooms large enough to hold it, in the scarcer resource: a large
        chunk takes a large room, of which there are few, while a small one fills any remnant."""
        if cpu_short:
            index = bisect.bisect_left(rooms.cpu, unit.cpu_peak)
            return unit.cpu_peak / max(rooms.cpu_from[index], EPS)
        index = bisect.bisect_left(rooms.memory, float(unit.memory))
        return unit.memory / max(rooms.memory_from[index], 1.0)

    def shed(name: str) -> float:
        return needs[name].cpu if cpu_short else float(needs[name].memory)

    allowance = Allowance(SLIM_NODES)
    deadline = outcome.deadline.step(REPACK_SHARE)
    # Two ways to choose, attempted in turn: (1) the least room as a share of the total, the hosts
    # still missing first; (2) the least of the rooms that can hold each chunk, the hosts that must
    # shed least first (they take the small chunks, and the hosts that need large ones find the large
    # rooms left). In each, a host that finds no set goes first in its next attempt.
    ways: list[tuple[list[str], Callable[[Unit], float]]] = [
        ([*missing, *(n for n in coverable if n not in missing)], taken),
        (sorted(coverable, key=lambda n: (shed(n), n)), ranked),
    ]
    for _ in coverable:
        for way, (order, weight) in enumerate(ways):
            placed = _together(outcome, needs, order, weight, allowance, deadline)
            if isinstance(placed, str):
                if deadline.expired("improvement") or allowance.left <= 0:
                    return False
                # The host that found no set goes first next time (the others then fit around it).
                ways[way] = ([placed, *(n for n in order if n != placed)], weight)
                continue
            for source in list(outcome.by_source):
                outcome.retract(source)
            for source in coverable:
                own = [(u, d) for u, d in placed if u.host == source]
                commit_relief(outcome, model.hosts[source], own)
            return True
    return False


def _together(  # noqa: PLR0917 - one pass's state, passed through
    outcome: Outcome,
    needs: dict[str, Need],
    order: list[str],
    taken: Callable[[Unit], float],
    allowance: Allowance,
    deadline: Deadline,
) -> list[tuple[Unit, str]] | str:
    """Each host in ``order`` the set taking least room that packs with the sets before it: every
    move, or the first host that found no set."""
    placer = outcome.placer
    base = placer.initial_overlay((m.unit, m.destination) for m in outcome.moves)
    rooms = placer.rooms(base)
    chosen: list[Unit] = []
    placed: list[tuple[Unit, str]] = []
    for name in order:
        if deadline.expired("improvement") or allowance.left <= 0:
            return name
        packed = packed_cover(
            outcome, name, needs[name], chosen, base, rooms, allowance, deadline, taken
        )
        if packed is None:
            return name
        cover, placed = packed
        chosen.extend(cover)
    return placed
