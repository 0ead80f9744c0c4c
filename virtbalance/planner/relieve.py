"""Mode ``relieve``: bring every overloaded host to the targets, moving as little memory as possible."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from virtbalance.causes import Cause
from virtbalance.planner.deadline import Deadline
from virtbalance.planner.model import EPS, HostLoad, Model, Unit, pct
from virtbalance.planner.outcome import Move, Outcome, ratios
from virtbalance.planner.placement import Delta, Overlay
from virtbalance.planner.rooms import Rooms

# Search nodes per host for the exact subset search; hosts with few chunks never get near it.
NODE_LIMIT = 20_000
# The subset search looks at the deadline every this many nodes (a clock reading costs more than a node).
DEADLINE_EVERY = 64
# Receivers above which the search does without the capacity bound (``rooms``): listing their room for
# each search costs more than it saves where destinations are that many (rarely all short of room).
ROOMS_MAX_RECEIVERS = 1_000


@dataclass(frozen=True)
class Need:
    """How much CPU (cores) and memory (bytes) must leave a host to reach the targets."""

    cpu: float
    memory: int

    @property
    def met(self) -> bool:
        return self.cpu <= EPS and self.memory <= 0


def need_of(model: Model, host: HostLoad, named: bool = False) -> Need | None:
    """What must leave an overloaded host, or None if it is not above cpu_high or memory_high.

    A ``named`` host (in ``relieve_hosts``: an alert judged it over its own window) is relieved once its
    CPU is above cpu_target, to cpu_target: HostChronicallyHot names hosts whose overloads are short,
    often over at the moment of planning, and a sustained overload may dip between the alert and the
    plan.
    """
    policy = model.policy
    cpu_over = host.cpu_ratio > policy.cpu_high + EPS or (
        named and host.cpu_ratio > policy.cpu_target + EPS
    )
    memory_over = host.memory_ratio > policy.memory_high + EPS
    if not (cpu_over or memory_over):
        return None
    cpu = host.cpu_used - policy.cpu_target * host.cpus if cpu_over else 0.0
    # With a forecast an overloaded host stops once its peak is at cpu_high; a named host below
    # cpu_high goes to cpu_target on its sample: its peak was above cpu_high again and again (that is
    # what named it), so stopping there would leave it as hot as it was.
    if cpu_over and model.forecast and host.cpu_ratio > policy.cpu_high + EPS:
        cpu = min(cpu, _forecast_need(model, host))
    memory = host.memory_used - int(policy.memory_target * host.memory) if memory_over else 0
    return Need(max(0.0, cpu), max(0, memory))


def _forecast_need(model: Model, host: HostLoad) -> float:
    """CPU to move so that the host's recent peak ends at cpu_high: with a forecast, cpu_target's
    headroom below the sample is what the peak already shows, and moving more only costs migrations."""
    return host.cpu_peak - model.policy.cpu_high * host.cpus


def relieve(
    outcome: Outcome,
    relieve_hosts: frozenset[str] | None,
    reverse: bool = False,
    first: tuple[str, ...] = (),
    slim_pass: bool = True,
) -> tuple[list[str], bool | None]:
    """Full relief for every host that can have it, improved pairwise; busy-host evacuation; partial relief.

    Hosts are taken most overloaded first (``reverse``: least), those in ``first`` before all others.
    Returns the hosts that did not get the cheapest set of chunks they could have had with destinations
    and budget to themselves (when there are none, no other order can do better), and what the slim
    pass did: None if it did not run (no host was missing a set, or not ``slim_pass``), True if it
    gave every host that has a covering set one, False if it tried in vain.
    """
    # The repair steps build on this module's search (a cycle at import time).
    from virtbalance.planner.repack import AFTER_SLIM_NODES, repack  # noqa: PLC0415
    from virtbalance.planner.slim import slim  # noqa: PLC0415

    needs, busy = prepare(outcome, relieve_hosts, reverse, first)
    for name, need in needs.items():
        _full_relief(outcome, outcome.model.hosts[name], need)
    repack(outcome, needs)
    repaired = _placement(outcome)
    missed = improve(outcome, needs)
    if missed and _placement(outcome) != repaired:
        # The improvement step changed the plan: the repair step may find more on it (on the plan it
        # already repaired it would search the same sets in vain).
        repack(outcome, needs)
        missed = improve(outcome, needs)
    slimmed = slim(outcome, needs) if slim_pass else None
    if slimmed:
        # Every host that can be is relieved now, at a price: make each set cheaper again.
        repack(outcome, needs, AFTER_SLIM_NODES)
        missed = improve(outcome, needs)
    finish(outcome, needs, busy)
    return missed, slimmed


def _placement(outcome: Outcome) -> frozenset[tuple[tuple[str, str], str]]:
    """Which chunk goes where (the order of the moves aside: a re-solve that is undone reorders them)."""
    return frozenset((m.unit.key, m.destination) for m in outcome.moves)


def prepare(
    outcome: Outcome,
    relieve_hosts: frozenset[str] | None,
    reverse: bool = False,
    first: tuple[str, ...] = (),
) -> tuple[dict[str, Need], list[str]]:
    """The hosts to relieve, in order, with what must leave each; the busy ones (see ``_evacuate``).

    Overloaded hosts stop receiving; those settling are reported unresolved here.
    """
    model = outcome.model
    policy = model.policy
    overloaded: list[tuple[float, str, Need]] = []
    for host in model.hosts.values():
        if relieve_hosts is not None and host.name not in relieve_hosts:
            continue
        need = need_of(model, host, named=relieve_hosts is not None)
        if need is None:
            continue
        excess = max(host.cpu_ratio - policy.cpu_high, host.memory_ratio - policy.memory_high)
        overloaded.append((-excess, host.name, need))
    overloaded.sort(key=lambda item: item[:2], reverse=reverse)
    overloaded.sort(key=lambda item: first.index(item[1]) if item[1] in first else len(first))
    # Overloaded hosts never receive: they are what the plan is relieving.
    for _, name, _ in overloaded:
        outcome.placer.exclude(name, "is overloaded itself")

    needs: dict[str, Need] = {}
    busy: list[str] = []
    for _, name, need in overloaded:
        host = model.hosts[name]
        if host.settle:
            _report(
                outcome,
                host,
                need,
                [f"{host.settle}: waiting before touching it again"],
                cause=Cause.SETTLE,
            )
        elif host.immovable_cpu > policy.cpu_high * host.cpus + EPS:
            busy.append(name)
        else:
            needs[name] = need
    return needs, busy


def finish(outcome: Outcome, needs: dict[str, Need], busy: list[str]) -> None:
    """After full relief: evacuate the busy hosts, then partial relief where full relief failed."""
    resolved = {m.unit.host for m in outcome.moves}
    for name in busy:
        _evacuate(outcome, outcome.model.hosts[name])
    for name, need in needs.items():
        if name not in resolved:
            _partial_relief(outcome, outcome.model.hosts[name], need)


def relieve_with(
    outcome: Outcome, host: HostLoad, need: Need, placed: Sequence[tuple[Unit, str]]
) -> bool:
    """Commit a full-relief set found elsewhere (CP-SAT), checking every move against the hard
    constraints as it goes and the host against the targets at the end; False, with nothing of it
    committed, if a check fails."""
    model = outcome.model
    policy = model.policy
    done = 0
    for unit, destination in placed:
        if (
            unit.host != host.name
            or unit.blocked
            or model.cap_reason(host, unit.size)
            or outcome.placer.misfit(unit, model.hosts[destination]) is not None
        ):
            break
        outcome.placer.commit(unit, destination)
        done += 1
    reached = (
        done == len(placed)
        and _target_need(host, need, policy.cpu_target, policy.memory_target).met
    )
    for unit, destination in reversed(placed[:done]):
        outcome.placer.uncommit(unit, destination)
    if reached:
        commit_relief(outcome, host, list(placed))
    return reached


def _ideal(outcome: Outcome, name: str, need: Need) -> tuple[list[Unit], Cost] | None:
    """The cheapest set of chunks covering ``need`` that could be placed with the destinations and the
    plan's budget all to this host (as if nothing else had moved): no plan can give it less."""
    model = outcome.model
    limit = min(model.policy.max_per_host, model.max_migrations)
    solo = model.solo(None)
    free = [u for u in model.units[name] if not u.blocked]
    if cheapest_cover(free, need, limit, lambda _: True, solo) is None:
        return None
    base = outcome.placer.initial_overlay((m.unit, m.destination) for m in outcome.moves)
    # A chunk with no destination by itself has none in any set (the others only add load).
    free = [u for u in free if outcome.placer.find(u, base) is not None]
    cover = cheapest_cover(
        free,
        need,
        limit,
        lambda units: outcome.placer.place_all(units, base=base) is not None,
        solo,
        deadline=outcome.deadline,
        rooms=_rooms(outcome, base),
    )
    if cover is None:
        return None
    return cover, (0, sum(u.memory for u in cover), sum(u.size for u in cover))


def improve(outcome: Outcome, needs: dict[str, Need], alone: bool = False) -> list[str]:
    """Hosts compete for destinations and for the plan's budget: re-solve where one missed its best set.

    A host "missed" when its chosen set costs more than its ideal (``_ideal``). With ``alone``, it is
    first re-solved by itself, the other hosts' moves kept (a plan CP-SAT found in a hurry often moves
    more than a host needs, or leaves out a host that still has room; in a greedy plan each host already
    had its cheapest set when it was solved). Its rivals are, per contested destination, the
    hosts that sent there (a chunk of its ideal set fits only without this plan's moves), and, when the
    per-plan budget ran out, each host that moved something. For each rival group: undo the group and the
    missed host, solve the missed host first, then the group; keep the best result that is better off
    (more resolved, then less memory, then fewer migrations). Returns the hosts that still miss.
    """
    loose: dict[str, Cost | None] = {}
    ideal: dict[str, tuple[list[Unit], Cost] | None] = {}

    def missing(name: str) -> tuple[list[Unit], Cost] | None:
        """The host's ideal if it has not got it, else None (both bounds computed once, on demand)."""
        cost = _cost_of(outcome, name)
        if name not in loose:
            loose[name] = _loose_bound(outcome, name, needs[name])
        bound = loose[name]
        if bound is None or cost <= bound:
            return None
        if name not in ideal:
            ideal[name] = _ideal(outcome, name, needs[name])
        found = ideal[name]
        return found if found is not None and cost > found[1] else None

    attempts = 0
    improved = True
    while improved and attempts < IMPROVE_ATTEMPTS:
        improved = False
        for missed in list(needs):
            if outcome.deadline.expired("improvement"):
                return []
            target = missing(missed)
            if target is None:
                continue
            best: tuple[Cost, tuple[str, ...]] | None = None
            groups = _rivals(outcome, missed, target[0], needs)
            for group in [(), *groups] if alone else groups:
                attempts += 1
                if attempts > IMPROVE_ATTEMPTS or outcome.deadline.expired("improvement"):
                    break
                hosts = (missed, *group)
                before = _total(outcome, hosts)
                old = _resolve(outcome, needs, hosts)
                after = _total(outcome, hosts)
                _restore(outcome, hosts, old)
                if after < before:
                    delta = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
                    if best is None or (delta, group) < best:
                        best = (delta, group)
            if best is not None:
                _resolve(outcome, needs, (missed, *best[1]))
                improved = True
    if outcome.deadline.expired("improvement"):
        # No time for other variants either: which hosts missed does not matter any more.
        return []
    return [name for name in needs if missing(name) is not None]


Cost = tuple[int, int, int]


def _loose_bound(outcome: Outcome, name: str, need: Need) -> Cost | None:
    """The cost of the cheapest covering set, destinations aside: a quick lower bound."""
    bound = loose_bound(outcome.model, name, need)
    return None if bound is None else (0, *bound)


def loose_bound(model: Model, name: str, need: Need) -> tuple[int, int] | None:
    """(memory, domains) of the cheapest set of chunks covering ``need`` within the caps, wherever it
    goes: no plan relieves the host for less. None: no set covers it."""
    free = [u for u in model.units[name] if not u.blocked]
    limit = min(model.policy.max_per_host, model.max_migrations)
    cover = cheapest_cover(free, need, limit, lambda _: True, model.solo(None))
    if cover is None:
        return None
    return (sum(u.memory for u in cover), sum(u.size for u in cover))


def _rivals(
    outcome: Outcome, missed: str, cover: list[Unit], needs: dict[str, Need]
) -> list[tuple[str, ...]]:
    """Groups of sources (each in ``needs`` order) whose moves took what ``cover`` needed."""
    incoming: dict[str, Delta] = {}
    senders: dict[str, set[str]] = {}
    for move in outcome.moves:
        delta = incoming.setdefault(move.destination, Delta())
        delta.cpu -= move.unit.cpu_peak
        delta.memory -= move.unit.memory
        delta.moves -= move.unit.size
        senders.setdefault(move.destination, set()).add(move.unit.host)
    order = {name: i for i, name in enumerate(needs)}
    groups: list[tuple[str, ...]] = []
    for destination in sorted(incoming):
        host = outcome.model.hosts[destination]
        if any(
            outcome.placer.misfit(u, host) is not None
            and outcome.placer.misfit(u, host, incoming[destination]) is None
            for u in cover
        ):
            group = tuple(sorted(senders[destination] - {missed}, key=order.__getitem__))
            if group and group not in groups:
                groups.append(group)
    if outcome.model.budget_left() < sum(u.size for u in cover):
        for name in needs:
            if name != missed and outcome.by_source.get(name) and (name,) not in groups:
                groups.append((name,))
    groups.sort(key=lambda g: (len(g), [order[n] for n in g]))
    return groups[:MAX_RIVALS]


# Re-solves allowed per plan and rival groups tried per host: bound the time on big clusters.
IMPROVE_ATTEMPTS = 200
MAX_RIVALS = 12


def _cost_of(outcome: Outcome, host: str) -> Cost:
    """(1 if nothing moved else 0, memory moved, domains moved) for one source host."""
    moves = outcome.by_source.get(host, [])
    return (0 if moves else 1, sum(m.unit.memory for m in moves), sum(m.unit.size for m in moves))


def _total(outcome: Outcome, hosts: tuple[str, ...]) -> Cost:
    costs = [_cost_of(outcome, h) for h in hosts]
    return (sum(c[0] for c in costs), sum(c[1] for c in costs), sum(c[2] for c in costs))


def _resolve(outcome: Outcome, needs: dict[str, Need], hosts: tuple[str, ...]) -> list[Move]:
    """Undo the hosts' moves and solve them again in this order; return the undone moves."""
    old = [move for name in reversed(hosts) for move in outcome.retract(name)]
    for name in hosts:
        _full_relief(outcome, outcome.model.hosts[name], needs[name])
    return old


def _restore(outcome: Outcome, hosts: tuple[str, ...], old: list[Move]) -> None:
    for name in reversed(hosts):
        outcome.retract(name)
    for move in old:
        outcome.move(move.unit, move.destination, move.why)


def _movable(outcome: Outcome, host: HostLoad) -> tuple[list[Unit], list[Unit]]:
    """The chunks of ``host`` that may move and fit somewhere now; and the others."""
    movable, stuck = [], []
    for unit in outcome.model.units[host.name]:
        if unit.blocked is None and outcome.placer.find(unit) is not None:
            movable.append(unit)
        else:
            stuck.append(unit)
    return movable, stuck


def _why_stuck(outcome: Outcome, stuck: list[Unit]) -> list[str]:
    """What keeps each unit in place, for an operator (only computed when reported: it scans hosts)."""
    return [f"{u.describe()}: {u.blocked}" if u.blocked else _why_not(outcome, u) for u in stuck]


def _why_not(outcome: Outcome, unit: Unit) -> str:
    """``Placer.why_not``, unless the budget has run out: it scans every host, for each chunk."""
    if outcome.deadline.cut is not None:
        return f"{unit.describe()} fits no host (not examined further: plan_budget ran out)"
    return outcome.placer.why_not(unit)


def _rooms(outcome: Outcome, base: Overlay | None = None) -> Rooms | None:
    """The receivers' room for the cover search's bound, unless they are too many to list each time."""
    if len(outcome.placer.order) > ROOMS_MAX_RECEIVERS:
        return None
    return outcome.placer.rooms(base)


def _limit(outcome: Outcome, host: HostLoad) -> int:
    return min(outcome.model.policy.max_per_host - host.moves, outcome.model.budget_left())


def _full_relief(outcome: Outcome, host: HostLoad, need: Need) -> bool:
    """Move the cheapest set of chunks (memory, then count) that reaches the targets; False if none exists."""
    movable, _ = _movable(outcome, host)
    limit = _limit(outcome, host)
    solo = outcome.model.solo(host)

    def places(units: list[Unit]) -> bool:
        return outcome.placer.place_all(units) is not None

    # frugal: fewest domains first (then least memory), which leaves the plan's budget to the others.
    chosen = cheapest_cover(
        movable,
        need,
        limit,
        places,
        solo,
        fewest=outcome.frugal,
        deadline=outcome.deadline,
        rooms=_rooms(outcome),
    )
    if chosen is None:
        return False
    placed = outcome.placer.place_all(chosen)
    assert placed is not None  # the search only accepts sets that place
    commit_relief(outcome, host, placed)
    return True


def cheapest_cover(
    units: Sequence[Unit],
    need: Need,
    limit: int,
    places: Callable[[list[Unit]], bool],
    solo: int = 0,
    *,
    fewest: bool = False,
    deadline: Deadline | None = None,
    rooms: Rooms | None = None,
    fixed: Sequence[Unit] = (),
    room: Callable[[Unit], float] | None = None,
) -> list[Unit] | None:
    """The set of units covering ``need`` with least memory, then fewest domains (``fewest``: fewest
    domains, then least memory; ``room``: least of the receivers' room taken, by that weight of each
    unit, then least memory), within ``limit`` domains (a set of one unit: within ``solo``, the
    caps' allowance for a chunk moving alone).

    Depth-first branch and bound over units sorted by that cost; a covering set is only accepted when
    ``places`` finds destinations for all of it together. ``rooms``: the receivers' free room, which
    prunes every set whose chunks cannot fit it whatever the placement (on a tight cluster most
    covering sets are such, and placing each to find out was most of the search), ``fixed`` units
    going there too (other hosts' sets packed with this one). When ``deadline`` expires the search stops and the best set found so far is returned (at worst the greedy start).
    """

    def weight(unit: Unit) -> float:
        return 0.0 if room is None else room(unit)

    def cost(memory: int, size: int, taken: float) -> tuple[float, int, int]:
        if room is not None:
            return (taken, memory, size)
        return (0.0, size, memory) if fewest else (0.0, memory, size)

    order = sorted(units, key=lambda u: (cost(u.memory, u.size, weight(u)), u.id))
    count = len(order)
    suffix_cpu = [0.0] * (count + 1)
    suffix_memory = [0] * (count + 1)
    for i in range(count - 1, -1, -1):
        suffix_cpu[i] = suffix_cpu[i + 1] + order[i].cpu
        suffix_memory[i] = suffix_memory[i + 1] + order[i].memory
    if suffix_cpu[0] < need.cpu - EPS or suffix_memory[0] < need.memory:
        return None

    best: list[Unit] | None = None
    inf = 1 << 62
    best_cost: tuple[float, int, int] = (inf, inf, inf)
    nodes = 0
    stopped = deadline is not None and deadline.expired("search")

    # A greedy start (most CPU per byte first) gives the search a bound to prune with.
    greedy: list[Unit] = []
    cpu, memory, size, taken = 0.0, 0, 0, 0.0
    for unit in sorted(order, key=lambda u: (-(u.cpu / max(u.memory, 1)), u.memory, u.id)):
        if cpu >= need.cpu - EPS and memory >= need.memory:
            break
        if size + unit.size <= limit:
            greedy.append(unit)
            cpu, memory, size = cpu + unit.cpu, memory + unit.memory, size + unit.size
            taken += weight(unit)
    if cpu >= need.cpu - EPS and memory >= need.memory and places(greedy):
        best, best_cost = greedy, cost(memory, size, taken)
    # Chunks larger than the caps may only move alone: each is a candidate set by itself.
    for unit in order:
        if (
            limit < unit.size <= solo
            and cost(unit.memory, unit.size, weight(unit)) < best_cost
            and unit.cpu >= need.cpu - EPS
            and unit.memory >= need.memory
            and places([unit])
        ):
            best, best_cost = [unit], cost(unit.memory, unit.size, weight(unit))

    chosen: list[Unit] = []
    # What the chosen units bring to destinations, each ascending, for ``rooms``.
    chosen_cpu = sorted(u.cpu_peak for u in fixed)
    chosen_memory = sorted(float(u.memory) for u in fixed)

    def fits(unit: Unit) -> bool:
        """Whether the chosen units with ``unit`` may still fit the rooms (if not, no superset does)."""
        if rooms is None:
            return True
        bisect.insort(chosen_cpu, unit.cpu_peak)
        bisect.insort(chosen_memory, float(unit.memory))
        if rooms.admits(chosen_cpu, chosen_memory):
            return True
        unfit(unit)
        return False

    def unfit(unit: Unit) -> None:
        if rooms is not None:
            chosen_cpu.pop(bisect.bisect_left(chosen_cpu, unit.cpu_peak))
            chosen_memory.pop(bisect.bisect_left(chosen_memory, float(unit.memory)))

    def search(i: int, cpu: float, memory: int, size: int, taken: float) -> None:
        nonlocal best, best_cost, nodes, stopped
        if stopped:
            return
        nodes += 1
        if nodes > NODE_LIMIT:
            return
        if nodes % DEADLINE_EVERY == 0 and deadline is not None and deadline.expired("search"):
            stopped = True
            return
        if cpu >= need.cpu - EPS and memory >= need.memory:
            if cost(memory, size, taken) < best_cost and places(chosen):
                best, best_cost = list(chosen), cost(memory, size, taken)
            return
        if i == count:
            return
        if cpu + suffix_cpu[i] < need.cpu - EPS or memory + suffix_memory[i] < need.memory:
            return
        unit = order[i]
        with_unit = taken + weight(unit)
        if cost(memory + unit.memory, size + unit.size, with_unit) >= best_cost:
            # Later units cost no less (sorted by cost): nothing through here is cheaper.
            return
        if size + unit.size <= limit and fits(unit):
            chosen.append(unit)
            search(i + 1, cpu + unit.cpu, memory + unit.memory, size + unit.size, with_unit)
            chosen.pop()
            unfit(unit)
        search(i + 1, cpu, memory, size, taken)

    search(0, 0.0, 0, 0, 0.0)
    return best


def commit_relief(outcome: Outcome, host: HostLoad, placed: list[tuple[Unit, str]]) -> None:
    """Commit the moves relieving ``host`` in full, each saying so."""
    policy = outcome.model.policy
    before = ratios(host)
    cpu_after = (host.cpu_used - sum(u.cpu for u, _ in placed)) / host.cpus
    memory_after = (host.memory_used - sum(u.memory for u, _ in placed)) / host.memory
    why = (
        f"relieve {host.name}: {before} -> cpu {pct(cpu_after)}, memory {pct(memory_after)} "
        f"(targets {pct(policy.cpu_target)}, {pct(policy.memory_target)})"
    )
    for unit, destination in sorted(placed, key=lambda p: (p[0].id, p[1])):
        outcome.move(unit, destination, why)


def _evacuate(outcome: Outcome, host: HostLoad) -> None:
    """A host whose own load (outside its domains) exceeds cpu_high: move out every chunk that can go."""
    policy = outcome.model.policy
    before = ratios(host)
    moved = 0
    blockers: list[str] = []
    units = sorted(outcome.model.units[host.name], key=lambda u: (-u.cpu, -u.memory, u.id))
    for unit in units:
        if unit.blocked:
            blockers.append(f"{unit.describe()}: {unit.blocked}")
            continue
        limited = outcome.model.cap_reason(host, unit.size)
        if limited:
            blockers.append(f"{unit.describe()}: {limited}")
            continue
        destination = outcome.placer.find(unit)
        if destination is None:
            blockers.append(_why_not(outcome, unit))
            continue
        why = (
            f"evacuate {host.name}: load outside its domains alone is "
            f"{pct(host.immovable_cpu / host.cpus)} of its CPU (cpu_high {pct(policy.cpu_high)}); "
            f"its domains cannot get CPU there ({before})"
        )
        outcome.move(unit, destination, why)
        moved += 1
    reason = (
        f"load outside its domains is {host.immovable_cpu:.2f} of {host.cpus:g} cores "
        f"({pct(host.immovable_cpu / host.cpus)}), above cpu_high {pct(policy.cpu_high)} by itself: "
        f"no migration can relieve it; evacuated {moved} of {len(units)} chunk(s), now {ratios(host)}"
    )
    if blockers:
        reason += "; left: " + _join(blockers)
    outcome.unresolved_host(host.name, "cpu", reason, Cause.HOST_LOAD)
    need = need_of(outcome.model, host)
    if need is not None and need.memory > 0:
        _report(
            outcome, host, Need(0.0, need.memory), blockers, only_memory=True, cause=Cause.HOST_LOAD
        )


def _partial_relief(outcome: Outcome, host: HostLoad, need: Need) -> None:
    """No set of chunks reaches the targets: aim for the alert threshold instead, with worthwhile chunks.

    A chunk is worthwhile when it carries at least ``partial_min_relief`` of the host's capacity in a
    resource the host is over: a smaller one costs a migration (copy, cooldown, a slot of the budget)
    and leaves the host as overloaded as before. Among the worthwhile chunks: the cheapest set (memory,
    then count) that brings the host to ``cpu_high``/``memory_high`` (its alert ends); if none does, the
    hungriest first while they fit and the host is still over. Then the host is reported unresolved.
    """
    movable, stuck = _movable(outcome, host)
    blockers = _why_stuck(outcome, stuck)
    policy = outcome.model.policy
    before = ratios(host)
    floor = policy.partial_min_relief

    def relief(unit: Unit) -> float:
        """The unit's share of the host's capacity, in the resources the host is over."""
        cpu_share = unit.cpu / host.cpus if need.cpu > EPS else 0.0
        memory_share = unit.memory / host.memory if need.memory > 0 else 0.0
        return max(cpu_share, memory_share)

    worthwhile = [u for u in movable if relief(u) > 0 and relief(u) >= floor - EPS]
    small = len(movable) - len(worthwhile)
    # (relief, cause) of every chunk that stays: the cause of the one that would relieve most is the host's.
    kept: list[tuple[float, Cause]] = [
        (relief(u), u.blocked_cause or outcome.placer.no_fit_cause(u)) for u in stuck
    ]
    keys = {u.key for u in worthwhile}
    kept += [(relief(u), Cause.PARTIAL_RULE) for u in movable if u.key not in keys]
    if small:
        blockers.append(
            f"{small} chunk(s) carry less than partial_min_relief {pct(floor)} of its capacity each "
            "(not worth a migration)"
        )
    threshold = _threshold_need(outcome, host, need)
    why = (
        f"relieve {host.name} partly: {before}, targets cpu {pct(policy.cpu_target)}, "
        f"memory {pct(policy.memory_target)} not reachable"
    )
    cover = _cover(outcome, host, worthwhile, threshold)
    if cover is not None:
        placed = outcome.placer.place_all(cover)
        assert placed is not None  # the search only accepts sets that place
        for unit, where in sorted(placed, key=lambda p: (p[0].id, p[1])):
            outcome.move(unit, where, f"{why}: brings it to the alert threshold")
        chosen = {u.key for u in cover}
        for unit in worthwhile:
            if unit.key not in chosen and (limited := outcome.model.cap_cause(host, unit.size)):
                blockers.append(f"{unit.describe()}: {limited[1]}")
                kept.append((relief(unit), limited[0]))
    else:
        left = threshold
        for unit in sorted(worthwhile, key=lambda u: (-relief(u), u.memory, u.id)):
            if left.met:
                break
            limited = outcome.model.cap_cause(host, unit.size)
            if limited:
                blockers.append(f"{unit.describe()}: {limited[1]}")
                kept.append((relief(unit), limited[0]))
                continue
            destination = outcome.placer.find(unit)
            if destination is None:
                blockers.append(_why_not(outcome, unit))
                # typing the cause scans every host too: not once the budget has run out
                cut = outcome.deadline.cut is not None
                kept.append(
                    (relief(unit), Cause.OTHER if cut else outcome.placer.no_fit_cause(unit))
                )
                continue
            outcome.move(unit, destination, f"{why}: hungriest chunks first")
            left = Need(max(0.0, left.cpu - unit.cpu), max(0, left.memory - unit.memory))
    left = _target_need(host, need, policy.cpu_target, policy.memory_target)
    if not left.met:
        cause = max(kept, key=lambda k: k[0])[1] if kept else Cause.OTHER
        if host.immovable_cpu > policy.cpu_target * host.cpus + EPS and left.cpu > EPS:
            blockers.insert(
                0,
                f"load outside its domains is {host.immovable_cpu:.2f} cores "
                f"({pct(host.immovable_cpu / host.cpus)}), above cpu_target by itself",
            )
            cause = Cause.HOST_LOAD
        elif not blockers:
            blockers.append("its movable chunks do not carry enough load")
        _report(outcome, host, left, blockers, before=before, cause=cause)


def _target_need(host: HostLoad, need: Need, cpu: float, memory: float) -> Need:
    """What must still leave ``host`` to reach these ratios, in the resources ``need`` names."""
    return Need(
        max(0.0, host.cpu_used - cpu * host.cpus) if need.cpu > EPS else 0.0,
        max(0, host.memory_used - int(memory * host.memory)) if need.memory > 0 else 0,
    )


def _threshold_need(outcome: Outcome, host: HostLoad, need: Need) -> Need:
    policy = outcome.model.policy
    return _target_need(host, need, policy.cpu_high, policy.memory_high)


def _cover(outcome: Outcome, host: HostLoad, units: list[Unit], need: Need) -> list[Unit] | None:
    """The cheapest set of ``units`` covering ``need`` that fits the caps and places together."""

    def places(chosen: list[Unit]) -> bool:
        return outcome.placer.place_all(chosen) is not None

    return cheapest_cover(
        units,
        need,
        _limit(outcome, host),
        places,
        outcome.model.solo(host),
        deadline=outcome.deadline,
        rooms=_rooms(outcome),
    )


def _report(  # noqa: PLR0917
    outcome: Outcome,
    host: HostLoad,
    need: Need,
    blockers: list[str],
    before: str | None = None,
    only_memory: bool = False,
    cause: Cause = Cause.OTHER,
) -> None:
    policy = outcome.model.policy
    start = f"{before} -> {ratios(host)}" if before else ratios(host)
    if need.cpu > EPS and not only_memory:
        outcome.unresolved_host(
            host.name,
            "cpu",
            f"{start}, cpu_target {pct(policy.cpu_target)} not reached "
            f"({need.cpu:.2f} cores too many): " + _join(blockers),
            cause,
        )
    if need.memory > 0:
        outcome.unresolved_host(
            host.name,
            "memory",
            f"{start}, memory_target {pct(policy.memory_target)} not reached "
            f"({need.memory / 2**20:.0f} MiB too many): " + _join(blockers),
            cause,
        )


def _join(blockers: list[str], limit: int = 4) -> str:
    shown = blockers[:limit]
    more = len(blockers) - len(shown)
    return (
        "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        if blockers
        else "nothing blocked"
    )
