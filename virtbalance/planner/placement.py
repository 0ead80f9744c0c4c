"""Where a chunk may go: hard-constraint checks, least-loaded destination search, committing a move."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from virtbalance.causes import Cause
from virtbalance.planner.model import EPS, HostLoad, Model, Unit, mib, pct
from virtbalance.planner.rooms import Rooms

# How many fitting hosts (in least-loaded order) to compare before choosing: enough to prefer the one that
# stays least loaded after the move, few enough that 5,000 hosts cost nothing.
CANDIDATES = 6


@dataclass
class Delta:
    """Tentative extra load on a host while a set of moves is being tried, before it is committed."""

    cpu: float = 0.0
    memory: int = 0
    moves: int = 0
    anti_affinity: set[str] = field(default_factory=set)


Overlay = dict[str, Delta]
_NO_DELTA = Delta()


class Placer:
    """Finds destinations and commits moves on a model; keeps receivers sorted by load."""

    def __init__(self, model: Model, pack: bool = False) -> None:
        self.model = model
        self.pack = pack
        self.policy = model.policy
        # Hosts that receive nothing in this plan (besides maintenance and settle), and why.
        self.excluded: dict[str, str] = {}
        self.max_cpus = max((h.cpus for h in model.hosts.values()), default=1.0)
        self.max_memory = max((h.memory for h in model.hosts.values()), default=1)
        # A host above a target can take nothing; as receivers only fill up, it never comes back.
        self.full_at = max(model.destination_cpu, self.policy.memory_target) + EPS
        # What each host may hold below the targets (capacities never change during a plan), EPS
        # included; CPU in the terms of no_room (forecast peaks when the plan has them).
        self.cpu_room = {n: model.destination_cpu * h.cpus + EPS for n, h in model.hosts.items()}
        self.memory_room = {
            n: self.policy.memory_target * h.memory + EPS for n, h in model.hosts.items()
        }
        receivers = [h for h in model.hosts.values() if self.receives(h) is None]
        self.order = sorted((h.load, h.name) for h in receivers if h.load <= self.full_at)
        # Free room only shrinks on receivers during a plan (sources never receive), so these stay upper bounds.
        self.max_cpu_room = max(
            (model.destination_cpu * h.cpus - h.cpu_peak for h in receivers), default=-1.0
        )
        self.max_memory_room = max(
            (self.policy.memory_target * h.memory - h.memory_used for h in receivers), default=-1.0
        )

    def receives(self, host: HostLoad) -> str | None:
        """Why a host may receive nothing at all in this plan, or None."""
        found = self.receives_cause(host)
        return None if found is None else found[1]

    def receives_cause(self, host: HostLoad) -> tuple[Cause, str] | None:
        """``receives`` with its cause."""
        if host.maintenance:
            return Cause.OTHER, f"{host.name} is in maintenance"
        if host.emptied:
            return Cause.OTHER, f"{host.name} is emptied (stays off)"
        if host.settle:
            return Cause.SETTLE, host.settle
        if host.name in self.excluded:
            return Cause.OTHER, f"{host.name} {self.excluded[host.name]}"
        if host.is_source:
            return Cause.OTHER, f"{host.name} sends in this plan"
        return None

    def misfit(
        self, unit: Unit, host: HostLoad, delta: Delta | None = None, receiving: bool = False
    ) -> str | None:
        """Why ``unit`` may not go to ``host`` (with tentative ``delta`` already there), or None if it fits.

        ``receiving``: the caller knows ``host`` receives in this plan (it is in ``order``).
        """
        found = self.misfit_cause(unit, host, delta, receiving=receiving)
        return None if found is None else found[1]

    def misfit_cause(
        self,
        unit: Unit,
        host: HostLoad,
        delta: Delta | None = None,
        room: bool = True,
        receiving: bool = False,
    ) -> tuple[Cause, str] | None:
        """``misfit`` with its cause; ``room=False`` skips the capacity checks (what else bars it)."""
        if host.name == unit.host:
            return Cause.OTHER, "its own host"
        found = None if receiving else self.receives_cause(host)
        if found:
            return found
        policy = self.policy
        extra = delta or _NO_DELTA
        # Capacity first: it is what rules out most hosts, and it costs two comparisons.
        short = self.no_room(unit, host, extra) if room else None
        if short:
            return Cause.NO_ROOM, short
        moves = host.moves + extra.moves
        # A chunk larger than the cap may arrive only as the one move touching the host.
        if moves + unit.size > policy.max_per_host and (moves > 0 or policy.max_per_host == 0):
            return Cause.PLAN_CAP, f"max_per_host {policy.max_per_host} reached on {host.name}"
        if unit.barred:
            barred = unit.barred_reason(host.name)
            if barred:
                return unit.barred_cause(host.name) or Cause.OTHER, barred
        if unit.anti_affinity:
            present = {k for k, n in host.anti_affinity.items() if n > 0} | extra.anti_affinity
            clash = unit.anti_affinity & present
            if clash:
                return (
                    Cause.OTHER,
                    f"anti-affinity {', '.join(sorted(clash))} already on {host.name}",
                )
        return None

    def no_room(self, unit: Unit, host: HostLoad, extra: Delta = _NO_DELTA) -> str | None:
        """``cpu`` or ``memory`` when ``unit`` would take ``host`` above that target, else None.

        CPU is judged on the forecast peaks when the plan has them (``Model.destination_cpu``).
        """
        policy = self.policy
        if host.cpu_peak + extra.cpu + unit.cpu_peak > self.model.destination_cpu * host.cpus + EPS:
            return "cpu"
        if host.memory_used + extra.memory + unit.memory > policy.memory_target * host.memory + EPS:
            return "memory"
        return None

    def no_fit_cause(self, unit: Unit) -> Cause:
        """Why ``unit`` fits no host, typed: too large for any host even empty; else what bars the
        hosts that have room for it (the most common such cause); else no host has room."""
        policy = self.policy
        if len(self.model.hosts) < 2:
            return Cause.NO_ROOM
        if (
            unit.cpu_peak > self.model.destination_cpu * self.max_cpus + EPS
            or unit.memory > policy.memory_target * self.max_memory + EPS
        ):
            return Cause.TOO_LARGE
        counts: Counter[Cause] = Counter()
        for name in sorted(self.model.hosts):
            host = self.model.hosts[name]
            if name == unit.host or self.no_room(unit, host) is not None:
                continue
            found = self.misfit_cause(unit, host, room=False)
            if found is not None:
                counts[found[0]] += 1
        if not counts:
            return Cause.NO_ROOM
        order = list(Cause)
        return min(counts, key=lambda c: (-counts[c], order.index(c)))

    def _score(self, unit: Unit, host: HostLoad, delta: Delta | None) -> float:
        cpu = host.cpu_peak + unit.cpu_peak + (delta.cpu if delta else 0.0)
        memory = host.memory_used + unit.memory + (delta.memory if delta else 0)
        return max(cpu / host.cpus, memory / host.memory)

    def find(
        self, unit: Unit, overlay: Overlay | None = None, pack: bool | None = None
    ) -> str | None:
        """The destination for ``unit``: least loaded after the move (``pack``: most loaded that fits).

        ``pack`` defaults to the placer's own ``pack``.
        """
        pack = self.pack if pack is None else pack
        if unit.cpu_peak > self.max_cpu_room + EPS or unit.memory > self.max_memory_room + EPS:
            return None
        hosts = self.model.hosts
        best: tuple[float, str] | None = None
        found = 0
        order = self.order
        sequence: Iterator[tuple[float, str]]
        if pack:
            end = len(order)
            if not overlay or all(d.cpu >= 0 and d.memory >= 0 for d in overlay.values()):
                # Hosts loaded above this cannot take the unit even if they are the biggest there are.
                limit = max(
                    self.model.destination_cpu - unit.cpu_peak / self.max_cpus,
                    self.policy.memory_target - unit.memory / self.max_memory,
                )
                end = bisect.bisect_right(order, (limit + EPS, "\uffff"))
            sequence = (order[i] for i in range(end - 1, -1, -1))
        else:
            sequence = iter(order)
        cpu_room, memory_room = self.cpu_room, self.memory_room
        for _, name in sequence:
            host = hosts[name]
            delta = overlay.get(name) if overlay else None
            # Capacity inline first: on a tight cluster it rules out most hosts, and this loop is the
            # planner's hottest. Hosts in ``order`` all receive (``_reorder`` keeps it so).
            extra_cpu, extra_memory = (delta.cpu, delta.memory) if delta else (0.0, 0)
            if (
                host.cpu_peak + extra_cpu + unit.cpu_peak > cpu_room[name]
                or host.memory_used + extra_memory + unit.memory > memory_room[name]
            ):
                continue
            if self.misfit(unit, host, delta, receiving=True) is not None:
                continue
            score = self._score(unit, host, delta)
            key = (-score, name) if pack else (score, name)
            if best is None or key < best:
                best = key
            found += 1
            if found >= CANDIDATES:
                break
        return best[1] if best else None

    def place_all(
        self, units: Sequence[Unit], pack: bool | None = None, base: Overlay | None = None
    ) -> list[tuple[Unit, str]] | None:
        """Destinations for all ``units`` together, or None if one of them fits nowhere.

        Largest memory first; if that leaves one without a host, hungriest CPU first (on CPU-tight
        clusters the CPU is what has to be packed). ``base``: load changes to assume first
        (``initial_overlay`` tries "as if nothing had moved yet").
        """
        placed = self._place_in_order(
            sorted(units, key=lambda u: (-u.memory, -u.cpu, u.host, u.id)), pack, base
        )
        if placed is None and len(units) > 1:
            placed = self._place_in_order(
                sorted(units, key=lambda u: (-u.cpu, -u.memory, u.host, u.id)), pack, base
            )
        return placed

    def _place_in_order(
        self, units: Sequence[Unit], pack: bool | None, base: Overlay | None
    ) -> list[tuple[Unit, str]] | None:
        overlay: Overlay = {
            name: Delta(d.cpu, d.memory, d.moves, set(d.anti_affinity))
            for name, d in (base or {}).items()
        }
        placed = []
        for unit in units:
            destination = self.find(unit, overlay, pack)
            if destination is None:
                return None
            delta = overlay.setdefault(destination, Delta())
            delta.cpu += unit.cpu_peak
            delta.memory += unit.memory
            delta.moves += unit.size
            delta.anti_affinity |= unit.anti_affinity
            placed.append((unit, destination))
        return placed

    def rooms(self, base: Overlay | None = None) -> Rooms:
        """The receivers' free room now (after ``base``), for ``Rooms.admits``."""
        hosts = self.model.hosts
        cpu, memory = [], []
        for _, name in self.order:
            host = hosts[name]
            delta = base.get(name, _NO_DELTA) if base else _NO_DELTA
            cpu.append(self.cpu_room[name] - host.cpu_peak - delta.cpu)
            memory.append(self.memory_room[name] - host.memory_used - delta.memory)
        return Rooms.of(cpu, memory)

    def initial_overlay(self, moves: Iterable[tuple[Unit, str]]) -> Overlay:
        """Negative deltas that undo ``moves`` on their destinations (anti-affinity keys stay: cautious)."""
        overlay: Overlay = {}
        for unit, destination in moves:
            delta = overlay.setdefault(destination, Delta())
            delta.cpu -= unit.cpu_peak
            delta.memory -= unit.memory
            delta.moves -= unit.size
        return overlay

    def commit(self, unit: Unit, destination: str) -> None:
        """Apply a move to the model: loads, move counts, anti-affinity keys, the receivers' order."""
        source = self.model.hosts[unit.host]
        target = self.model.hosts[destination]
        self._reorder(target, remove=True)
        if not source.is_source:
            # Removed with its load before the move: the key it is sorted by.
            self._reorder(source, remove=True)
        source.sent += 1
        source.cpu_used -= unit.cpu
        source.cpu_peak -= unit.cpu_peak
        source.cpu_average -= unit.cpu_average
        source.memory_used -= unit.memory
        source.moves += unit.size
        if unit.anti_affinity:
            keys = Counter(m.anti_affinity for m in unit.members if m.anti_affinity)
            source.anti_affinity.subtract(keys)
            target.anti_affinity.update(keys)
        target.cpu_used += unit.cpu
        target.cpu_peak += unit.cpu_peak
        target.cpu_average += unit.cpu_average
        target.memory_used += unit.memory
        target.moves += unit.size
        self._reorder(target, remove=False)
        self.model.migrations += unit.size

    def uncommit(self, unit: Unit, destination: str) -> None:
        """Undo ``commit`` of the same move (moves are undone newest first)."""
        source = self.model.hosts[unit.host]
        target = self.model.hosts[destination]
        self._reorder(target, remove=True)
        source.sent -= 1
        source.cpu_used += unit.cpu
        source.cpu_peak += unit.cpu_peak
        source.cpu_average += unit.cpu_average
        source.memory_used += unit.memory
        source.moves -= unit.size
        if unit.anti_affinity:
            keys = Counter(m.anti_affinity for m in unit.members if m.anti_affinity)
            source.anti_affinity.update(keys)
            target.anti_affinity.subtract(keys)
        if not source.is_source:
            self._reorder(source, remove=False)
        target.cpu_used -= unit.cpu
        target.cpu_peak -= unit.cpu_peak
        target.cpu_average -= unit.cpu_average
        target.memory_used -= unit.memory
        target.moves -= unit.size
        self._reorder(target, remove=False)
        self.model.migrations -= unit.size

    def exclude(self, host: str, why: str) -> None:
        """Stop ``host`` from receiving for the rest of the plan; ``why`` completes "HOST ..."."""
        self._reorder(self.model.hosts[host], remove=True)
        self.excluded[host] = why

    def readmit(self, host: str) -> None:
        """Undo ``exclude``: ``host`` may receive again."""
        self.excluded.pop(host, None)
        self._reorder(self.model.hosts[host], remove=False)

    def _reorder(self, host: HostLoad, remove: bool) -> None:
        key = (host.load, host.name)
        if remove:
            index = bisect.bisect_left(self.order, key)
            if index < len(self.order) and self.order[index] == key:
                del self.order[index]
        elif self.receives(host) is None and host.load <= self.full_at:
            bisect.insort(self.order, key)

    def why_not(self, unit: Unit) -> str:
        """Why ``unit`` fits no host, naming the closest candidates and what excluded the others."""
        excluded: Counter[str] = Counter()
        examples: dict[str, str] = {}
        best_memory: tuple[float, str] | None = None
        best_cpu: tuple[float, str] | None = None
        for name in sorted(self.model.hosts):
            host = self.model.hosts[name]
            reason = self.misfit(unit, host)
            if reason is None or reason == "its own host":
                continue
            if reason in ("cpu", "memory"):
                memory_room = self.policy.memory_target * host.memory - host.memory_used
                cpu_room = self.model.destination_cpu * host.cpus - host.cpu_peak
                if best_memory is None or memory_room > best_memory[0]:
                    best_memory = (memory_room, name)
                if best_cpu is None or cpu_room > best_cpu[0]:
                    best_cpu = (cpu_room, name)
                continue
            kind = reason.split(":")[0].split(" ")[0] if ":" in reason else _kind(reason)
            excluded[kind] += 1
            examples.setdefault(kind, reason)
        parts = []
        if best_memory is not None and unit.memory > best_memory[0] + EPS:
            parts.append(
                f"{best_memory[1]} has {mib(max(0.0, best_memory[0]))} free below memory_target "
                f"{pct(self.policy.memory_target)}"
            )
        if best_cpu is not None and unit.cpu_peak > best_cpu[0] + EPS:
            limit = "cpu_high (on its recent peak)" if self.model.forecast else "cpu_target"
            parts.append(
                f"{best_cpu[1]} has {max(0.0, best_cpu[0]):.2f} cores spare below {limit} "
                f"{pct(self.model.destination_cpu)}"
            )
        if best_memory is not None and not parts:
            parts.append("no single host has room for both its CPU and memory")
        for kind in sorted(excluded):
            count = excluded[kind]
            parts.append(
                f"{count} host(s) excluded: {examples[kind]}" + (" ..." if count > 1 else "")
            )
        if not parts:
            parts.append("there is no other host")
        return f"{unit.describe()} fits no host: " + "; ".join(parts)


def _kind(reason: str) -> str:
    for kind in (
        "maintenance",
        "anti-affinity",
        "max_per_host",
        "frozen",
        "being emptied",
        "is overloaded",
        "is empty",
        "is being drained",
        "sends",
    ):
        if kind in reason:
            return kind
    return reason
