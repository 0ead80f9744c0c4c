"""Collects a plan while a mode builds it: chunk moves (retractable until the end), unresolved hosts, reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

from virtbalance.causes import Cause
from virtbalance.plan import HostAfter, Migration, Mode, Plan, Unresolved
from virtbalance.planner.deadline import Deadline, unbounded
from virtbalance.planner.model import HostLoad, Model, Unit, pct
from virtbalance.planner.placement import Placer


def ratios(host: HostLoad) -> str:
    return f"cpu {pct(host.cpu_ratio)}, memory {pct(host.memory_ratio)}"


@dataclass(frozen=True)
class Move:
    """One chunk to one destination; ``why`` says what it is for (the destination's change is added later)."""

    unit: Unit
    destination: str
    why: str


@dataclass
class Outcome:
    """The moves and unresolved entries of a plan under construction."""

    model: Model
    placer: Placer
    moves: list[Move] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    moved_memory: int = 0
    # relieve: choose each host's set by fewest domains first (a variant for when the budget is short)
    frugal: bool = False
    by_source: dict[str, list[Move]] = field(default_factory=dict)
    deadline: Deadline = field(default_factory=unbounded)

    def move(self, unit: Unit, destination: str, why: str) -> None:
        """Commit a chunk move to the model."""
        self.placer.commit(unit, destination)
        self.moved_memory += unit.memory
        move = Move(unit, destination, why)
        self.moves.append(move)
        self.by_source.setdefault(unit.host, []).append(move)

    def retract(self, source: str) -> list[Move]:
        """Undo every move out of ``source`` (newest first) and return them in their original order."""
        mine = self.by_source.pop(source, [])
        if not mine:
            return []
        for move in reversed(mine):
            self.placer.uncommit(move.unit, move.destination)
            self.moved_memory -= move.unit.memory
        self.moves = [m for m in self.moves if m.unit.host != source]
        return mine

    def unresolved_host(
        self, host: str, resource: str, reason: str, cause: Cause = Cause.OTHER
    ) -> None:
        self.unresolved.append(Unresolved(host, resource, reason, cause))

    def cost(self) -> tuple[int, int, int]:
        """How good the plan is, smaller better: hosts left unresolved, migrated memory, migrations."""
        return (
            len({u.host for u in self.unresolved}),
            self.moved_memory,
            sum(m.unit.size for m in self.moves),
        )

    def migrations(self) -> list[Migration]:
        """The moves as migrations, each reason ending with its destination's ratios before -> after.

        Replayed from the loads before the plan (final loads minus the moves), so the figures follow
        the order in which the moves run even if the search committed them in another order.
        """
        loads: dict[str, list[float]] = {}

        def load(name: str) -> list[float]:
            if name not in loads:
                host = self.model.hosts[name]
                loads[name] = [host.cpu_used, float(host.memory_used)]
            return loads[name]

        for move in self.moves:
            for name, sign in ((move.destination, -1.0), (move.unit.host, 1.0)):
                state = load(name)
                state[0] += sign * move.unit.cpu
                state[1] += sign * move.unit.memory
        out: list[Migration] = []
        for move in self.moves:
            host = self.model.hosts[move.destination]
            state = load(move.destination)
            before = f"cpu {pct(state[0] / host.cpus)}, memory {pct(state[1] / host.memory)}"
            state[0] += move.unit.cpu
            state[1] += move.unit.memory
            after = f"cpu {pct(state[0] / host.cpus)}, memory {pct(state[1] / host.memory)}"
            source = load(move.unit.host)
            source[0] -= move.unit.cpu
            source[1] -= move.unit.memory
            reason = f"{move.why}; {move.destination} {before} -> {after}"
            out.extend(
                Migration(member.name, move.unit.host, move.destination, move.unit.id, reason)
                for member in move.unit.members
            )
        return out

    def plan(self, mode: Mode) -> Plan:
        hosts_after = tuple(
            HostAfter(h.name, round(h.cpu_ratio, 4), round(h.memory_ratio, 4))
            for h in sorted(self.model.hosts.values(), key=lambda h: h.name)
        )
        return Plan(
            mode=mode,
            migrations=tuple(self.migrations()),
            unresolved=tuple(self.unresolved),
            hosts_after=hosts_after,
            cut_short=self.deadline.cut,
        )
