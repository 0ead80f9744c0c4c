"""Mode ``relieve``: bring every overloaded host to the targets, moving as little memory as possible."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from virtbalance.planner.model import EPS, HostLoad, Model, Unit, pct
from virtbalance.planner.outcome import Outcome, ratios

# Search nodes per host for the exact subset search; hosts with few chunks never get near it.
NODE_LIMIT = 20_000


@dataclass(frozen=True)
class Need:
    """How much CPU (cores) and memory (bytes) must leave a host to reach the targets."""

    cpu: float
    memory: int

    @property
    def met(self) -> bool:
        return self.cpu <= EPS and self.memory <= 0


def need_of(model: Model, host: HostLoad) -> Need | None:
    """What must leave an overloaded host, or None if it is not above cpu_high or memory_high."""
    policy = model.policy
    cpu_over = host.cpu_ratio > policy.cpu_high + EPS
    memory_over = host.memory_ratio > policy.memory_high + EPS
    if not (cpu_over or memory_over):
        return None
    cpu = host.cpu_used - policy.cpu_target * host.cpus if cpu_over else 0.0
    memory = host.memory_used - int(policy.memory_target * host.memory) if memory_over else 0
    return Need(max(0.0, cpu), max(0, memory))


def relieve(outcome: Outcome, relieve_hosts: frozenset[str] | None) -> None:
    """Three passes: full relief for every host that can have it, then busy-host evacuation, then partial relief."""
    model = outcome.model
    policy = model.policy
    overloaded: list[tuple[float, str, Need]] = []
    for host in model.hosts.values():
        if relieve_hosts is not None and host.name not in relieve_hosts:
            continue
        need = need_of(model, host)
        if need is None:
            continue
        excess = max(host.cpu_ratio - policy.cpu_high, host.memory_ratio - policy.memory_high)
        overloaded.append((-excess, host.name, need))
    overloaded.sort(key=lambda item: (item[0], item[1]))
    # Overloaded hosts never receive: they are what the plan is relieving.
    for _, name, _ in overloaded:
        outcome.placer.exclude(name)

    pending: list[tuple[str, Need]] = []
    busy: list[str] = []
    for _, name, need in overloaded:
        host = model.hosts[name]
        if host.settle:
            _report(outcome, host, need, [f"{host.settle}: waiting before touching it again"])
            continue
        if host.immovable_cpu > policy.cpu_high * host.cpus + EPS:
            busy.append(name)
            continue
        if not _full_relief(outcome, host, need):
            pending.append((name, need))

    for name in busy:
        _evacuate(outcome, model.hosts[name])
    for name, need in pending:
        _partial_relief(outcome, model.hosts[name], need)


def _movable(outcome: Outcome, host: HostLoad) -> tuple[list[Unit], list[str]]:
    """The chunks of ``host`` that may move and fit somewhere now; and why the others cannot."""
    movable, blockers = [], []
    for unit in outcome.model.units[host.name]:
        if unit.blocked:
            blockers.append(f"{unit.describe()}: {unit.blocked}")
        elif outcome.placer.find(unit) is None:
            blockers.append(outcome.placer.why_not(unit))
        else:
            movable.append(unit)
    return movable, blockers


def _limit(outcome: Outcome, host: HostLoad) -> int:
    return min(outcome.model.policy.max_per_host - host.moves, outcome.model.budget_left())


def _full_relief(outcome: Outcome, host: HostLoad, need: Need) -> bool:
    """Move the cheapest set of chunks (memory, then count) that reaches the targets; False if none exists."""
    movable, _ = _movable(outcome, host)
    limit = _limit(outcome, host)
    chosen = cheapest_cover(
        movable, need, limit, lambda units: outcome.placer.place_all(units) is not None
    )
    if chosen is None:
        return False
    placed = outcome.placer.place_all(chosen)
    assert placed is not None  # the search only accepts sets that place
    _commit(outcome, host, placed)
    return True


def cheapest_cover(
    units: Sequence[Unit], need: Need, limit: int, places: Callable[[list[Unit]], bool]
) -> list[Unit] | None:
    """The set of units covering ``need`` with least memory, then fewest domains, within ``limit`` domains.

    Depth-first branch and bound over units sorted by memory; a covering set is only accepted when
    ``places`` finds destinations for all of it together.
    """
    order = sorted(units, key=lambda u: (u.memory, u.size, u.id))
    count = len(order)
    suffix_cpu = [0.0] * (count + 1)
    suffix_memory = [0] * (count + 1)
    for i in range(count - 1, -1, -1):
        suffix_cpu[i] = suffix_cpu[i + 1] + order[i].cpu
        suffix_memory[i] = suffix_memory[i + 1] + order[i].memory
    if suffix_cpu[0] < need.cpu - EPS or suffix_memory[0] < need.memory:
        return None

    best: list[Unit] | None = None
    best_cost = (float("inf"), float("inf"))
    nodes = 0

    # A greedy start (most CPU per byte first) gives the search a bound to prune with.
    greedy: list[Unit] = []
    cpu, memory, size = 0.0, 0, 0
    for unit in sorted(order, key=lambda u: (-(u.cpu / max(u.memory, 1)), u.memory, u.id)):
        if cpu >= need.cpu - EPS and memory >= need.memory:
            break
        if size + unit.size <= limit:
            greedy.append(unit)
            cpu, memory, size = cpu + unit.cpu, memory + unit.memory, size + unit.size
    if cpu >= need.cpu - EPS and memory >= need.memory and places(greedy):
        best, best_cost = greedy, (memory, size)

    chosen: list[Unit] = []

    def search(i: int, cpu: float, memory: int, size: int) -> None:
        nonlocal best, best_cost, nodes
        nodes += 1
        if nodes > NODE_LIMIT:
            return
        if cpu >= need.cpu - EPS and memory >= need.memory:
            if (memory, size) < best_cost and places(chosen):
                best, best_cost = list(chosen), (memory, size)
            return
        if i == count:
            return
        if cpu + suffix_cpu[i] < need.cpu - EPS or memory + suffix_memory[i] < need.memory:
            return
        unit = order[i]
        if (memory + unit.memory, size + unit.size) >= best_cost:
            # Later units are no smaller (sorted by memory, then size): nothing through here is cheaper.
            return
        if size + unit.size <= limit:
            chosen.append(unit)
            search(i + 1, cpu + unit.cpu, memory + unit.memory, size + unit.size)
            chosen.pop()
        search(i + 1, cpu, memory, size)

    search(0, 0.0, 0, 0)
    return best


def _commit(outcome: Outcome, host: HostLoad, placed: list[tuple[Unit, str]]) -> None:
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
        if _limit(outcome, host) < unit.size:
            blockers.append(f"{unit.describe()}: {_limit_reason(outcome, host)}")
            continue
        destination = outcome.placer.find(unit)
        if destination is None:
            blockers.append(outcome.placer.why_not(unit))
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
    outcome.unresolved_host(host.name, "cpu", reason)
    need = need_of(outcome.model, host)
    if need is not None and need.memory > 0:
        _report(outcome, host, Need(0.0, need.memory), blockers, only_memory=True)


def _partial_relief(outcome: Outcome, host: HostLoad, need: Need) -> None:
    """No set of chunks reaches the targets: move what helps most per byte, then report what blocked."""
    movable, blockers = _movable(outcome, host)
    policy = outcome.model.policy
    before = ratios(host)
    left = need
    placed: list[tuple[Unit, str]] = []

    def gain(unit: Unit) -> float:
        cpu_share = min(unit.cpu, left.cpu) / host.cpus if left.cpu > EPS else 0.0
        memory_share = min(unit.memory, left.memory) / host.memory if left.memory > 0 else 0.0
        return (cpu_share + memory_share) / max(unit.memory, 1)

    candidates = list(movable)
    while candidates and not left.met:
        candidates.sort(key=lambda u: (-gain(u), u.memory, u.id))
        unit = candidates.pop(0)
        if gain(unit) <= 0:
            break
        if _limit(outcome, host) < unit.size:
            blockers.append(f"{unit.describe()}: {_limit_reason(outcome, host)}")
            continue
        destination = outcome.placer.find(unit)
        if destination is None:
            blockers.append(outcome.placer.why_not(unit))
            continue
        why = (
            f"relieve {host.name} partly: {before}, targets cpu {pct(policy.cpu_target)}, "
            f"memory {pct(policy.memory_target)} not reachable"
        )
        outcome.move(unit, destination, why)
        placed.append((unit, destination))
        left = Need(max(0.0, left.cpu - unit.cpu), max(0, left.memory - unit.memory))
    if not left.met:
        if host.immovable_cpu > policy.cpu_target * host.cpus + EPS and left.cpu > EPS:
            blockers.insert(
                0,
                f"load outside its domains is {host.immovable_cpu:.2f} cores "
                f"({pct(host.immovable_cpu / host.cpus)}), above cpu_target by itself",
            )
        elif not blockers:
            blockers.append("its movable chunks do not carry enough load")
        _report(outcome, host, left, blockers, before=before)


def _limit_reason(outcome: Outcome, host: HostLoad) -> str:
    policy = outcome.model.policy
    if outcome.model.budget_left() <= policy.max_per_host - host.moves:
        return f"max_migrations {outcome.model.max_migrations} per plan reached"
    return f"max_per_host {policy.max_per_host} reached on {host.name}"


def _report(  # noqa: PLR0917
    outcome: Outcome,
    host: HostLoad,
    need: Need,
    blockers: list[str],
    before: str | None = None,
    only_memory: bool = False,
) -> None:
    policy = outcome.model.policy
    start = f"{before} -> {ratios(host)}" if before else ratios(host)
    if need.cpu > EPS and not only_memory:
        outcome.unresolved_host(
            host.name,
            "cpu",
            f"{start}, cpu_target {pct(policy.cpu_target)} not reached "
            f"({need.cpu:.2f} cores too many): " + _join(blockers),
        )
    if need.memory > 0:
        outcome.unresolved_host(
            host.name,
            "memory",
            f"{start}, memory_target {pct(policy.memory_target)} not reached "
            f"({need.memory / 2**20:.0f} MiB too many): " + _join(blockers),
        )


def _join(blockers: list[str], limit: int = 4) -> str:
    shown = blockers[:limit]
    more = len(blockers) - len(shown)
    return (
        "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        if blockers
        else "nothing blocked"
    )
