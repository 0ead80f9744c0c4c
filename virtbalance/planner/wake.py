"""Emptied hosts in relief: asleep unless relief needs their room, then the fewest woken, and said so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from virtbalance.plan import Plan
from virtbalance.planner.model import EPS
from virtbalance.policy import Policy
from virtbalance.snapshot import Snapshot


def asleep(snapshot: Snapshot) -> tuple[str, ...]:
    """The emptied hosts, in the order they are woken: largest first (fewest hosts for the room)."""
    hosts = [h for h in snapshot.hosts if h.emptied and not h.maintenance]
    return tuple(h.name for h in sorted(hosts, key=lambda h: (-h.cpus, -h.memory_bytes, h.name)))


def awake(snapshot: Snapshot, names: Sequence[str]) -> Snapshot:
    """The snapshot with ``names`` no longer emptied (they may receive)."""
    woken = set(names)
    hosts = tuple(replace(h, emptied=False) if h.name in woken else h for h in snapshot.hosts)
    return replace(snapshot, hosts=hosts)


def fewest_woken(
    snapshot: Snapshot,
    policy: Policy,
    relieve: Callable[[Snapshot], Plan],
    expired: Callable[[], bool],
) -> tuple[Plan, tuple[str, ...]]:
    """Relief with no emptied host woken; if that leaves hosts unresolved and waking every emptied host
    relieves more (fewer hosts unresolved, or less load left above the targets), the shortest prefix of
    ``asleep`` that does as well (bisection: the more room, the more relief). Returns the plan and the
    hosts it wakes (each receiving move says so)."""
    first = relieve(snapshot)
    sleeping = asleep(snapshot)
    if not sleeping or not first.unresolved or expired():
        return first, ()
    every = relieve(awake(snapshot, sleeping))
    goal = _left(every, policy)
    if not _better(goal, _left(first, policy)):
        return first, ()
    best, count = every, len(sleeping)
    low, high = 1, len(sleeping) - 1
    while low <= high and not expired():
        middle = (low + high) // 2
        tried = relieve(awake(snapshot, sleeping[:middle]))
        if not _better(goal, _left(tried, policy)):
            best, count, high = tried, middle, middle - 1
        else:
            low = middle + 1
    woken = tuple(sorted({m.destination for m in best.migrations} & set(sleeping[:count])))
    return _say_waking(best, woken), woken


def _left(plan: Plan, policy: Policy) -> tuple[int, float]:
    """What relief leaves undone: hosts unresolved, then their load above the targets (ratios summed)."""
    unresolved = {u.host for u in plan.unresolved}
    excess = sum(
        max(0.0, h.cpu_ratio - policy.cpu_target) + max(0.0, h.memory_ratio - policy.memory_target)
        for h in plan.hosts_after
        if h.name in unresolved
    )
    return len(unresolved), excess


def _better(a: tuple[int, float], b: tuple[int, float]) -> bool:
    """Whether ``a`` leaves strictly less undone than ``b`` (ratios compared with a tolerance)."""
    return a[0] < b[0] or (a[0] == b[0] and a[1] < b[1] - 1e-6 - EPS)


def _say_waking(plan: Plan, woken: tuple[str, ...]) -> Plan:
    if not woken:
        return plan
    migrations = tuple(
        replace(m, reason=f"waking {m.destination} (emptied; relief needs its room): {m.reason}")
        if m.destination in woken
        else m
        for m in plan.migrations
    )
    return replace(plan, migrations=migrations)
