"""Collects a plan while a mode builds it: migrations chunk by chunk with their reasons, and unresolved hosts."""

from __future__ import annotations

from dataclasses import dataclass, field

from virtbalance.plan import HostAfter, Migration, Mode, Plan, Unresolved
from virtbalance.planner.model import HostLoad, Model, Unit, pct
from virtbalance.planner.placement import Placer


def ratios(host: HostLoad) -> str:
    return f"cpu {pct(host.cpu_ratio)}, memory {pct(host.memory_ratio)}"


@dataclass
class Outcome:
    """The migrations and unresolved entries of a plan under construction."""

    model: Model
    placer: Placer
    migrations: list[Migration] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)

    def move(self, unit: Unit, destination: str, why: str) -> None:
        """Commit a chunk move; ``why`` says what it is for, the destination's change is added here."""
        target = self.model.hosts[destination]
        before = ratios(target)
        self.placer.commit(unit, destination)
        reason = f"{why}; {destination} {before} -> {ratios(target)}"
        for member in unit.members:
            self.migrations.append(Migration(member.name, unit.host, destination, unit.id, reason))

    def unresolved_host(self, host: str, resource: str, reason: str) -> None:
        self.unresolved.append(Unresolved(host, resource, reason))

    def plan(self, mode: Mode) -> Plan:
        hosts_after = tuple(
            HostAfter(h.name, round(h.cpu_ratio, 4), round(h.memory_ratio, 4))
            for h in sorted(self.model.hosts.values(), key=lambda h: h.name)
        )
        return Plan(
            mode=mode,
            migrations=tuple(self.migrations),
            unresolved=tuple(self.unresolved),
            hosts_after=hosts_after,
        )
