"""Barriers against migration storms: VM cooldown, host settle, anti-flap and the hourly rate cap, as pure functions.

The VM cooldown grows with repeated moves, as the KubeVirt-aware descheduler's does: a domain's
cooldown is ``max(vm_cooldown, its last migration's duration) x 2^(n-1)``, at most ``vm_cooldown_max``,
where n counts its moves within ``vm_cooldown_window``. A domain moved once waits little; one the
planner keeps moving waits longer each time, whatever load pattern makes it move.

The planner, the actioner and the simulator all decide barriers here, from the same two inputs: the domains'
``last_migrated``/``last_host`` fields and a migration history. There is no other copy of this logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from virtbalance.contract import HistoryItem, MigrationRecord
from virtbalance.durations import format_duration
from virtbalance.policy import Policy
from virtbalance.snapshot import DomainState, Snapshot

HOUR = 3600.0


def horizon(policy: Policy) -> float:
    """How far back a barrier can see: history older than this changes nothing."""
    return max(
        HOUR,
        policy.vm_cooldown,
        policy.vm_cooldown_max,
        policy.vm_cooldown_window,
        policy.host_settle,
        policy.anti_flap,
    )


def cooldown(policy: Policy, moves: int, duration: float = 0.0) -> float:
    """The cooldown after a domain's ``moves``-th move within ``vm_cooldown_window`` (1: the first).

    ``max(vm_cooldown, duration) x 2^(moves-1)``, capped at ``vm_cooldown_max``; a cap at or below
    ``vm_cooldown`` keeps the cooldown fixed.
    """
    base = max(policy.vm_cooldown, duration)
    if policy.vm_cooldown_max <= policy.vm_cooldown:
        return base
    return max(base, min(policy.vm_cooldown_max, base * 2.0 ** max(0, moves - 1)))


@dataclass(frozen=True)
class Barriers:
    """What may not move or be touched at ``now``, each with the reason an operator reads."""

    now: float
    # domain -> why it may not move at all (vm_cooldown)
    domains: Mapping[str, str]
    # host -> why it may neither send nor receive (host_settle)
    hosts: Mapping[str, str]
    # domain -> {host it may not return to: why} (anti_flap)
    returns: Mapping[str, Mapping[str, str]]
    # migrations still allowed in the current hour (max_migrations_per_hour minus the last hour's)
    remaining_hourly: int
    recent_migrations: int

    def domain_blocked(self, domain: str) -> str | None:
        return self.domains.get(domain)

    def host_blocked(self, host: str) -> str | None:
        return self.hosts.get(host)

    def return_blocked(self, domain: str, host: str) -> str | None:
        return self.returns.get(domain, {}).get(host)

    @property
    def hourly_reason(self) -> str | None:
        """Why nothing more may move this hour, or None while budget remains."""
        if self.remaining_hourly > 0:
            return None
        return f"max_migrations_per_hour: {self.recent_migrations} migrations in the last hour"

    def counts(self) -> dict[str, int]:
        """Active barriers by kind (vm, host, anti_flap, rate), as the actioner's gauge reports them."""
        return {
            "vm": len(self.domains),
            "host": len(self.hosts),
            "anti_flap": sum(len(h) for h in self.returns.values()),
            "rate": 1 if self.remaining_hourly <= 0 else 0,
        }


def ago(seconds: float) -> str:
    """A short human age: ``40 s``, ``12 min``, ``3 h 5 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _records(
    history: Iterable[HistoryItem], domains: Iterable[DomainState]
) -> list[MigrationRecord]:
    """History plus what the domains remember of their last move, without counting a move twice."""
    records = [MigrationRecord(*r) for r in history]
    seen = {(r.domain, r.time) for r in records}
    for domain in domains:
        if domain.last_migrated is not None and (domain.name, domain.last_migrated) not in seen:
            records.append(
                MigrationRecord(
                    domain.name, domain.last_host or "", domain.host, domain.last_migrated
                )
            )
    # Sorted so that the newest record of a kind wins and reasons never depend on input order.
    records.sort(key=lambda r: (r.time, r.domain, r.source, r.destination))
    return records


def evaluate(
    policy: Policy,
    now: float,
    history: Iterable[HistoryItem] = (),
    domains: Iterable[DomainState] = (),
) -> Barriers:
    """Every barrier active at ``now`` from a migration history and/or the domains' own last-move fields."""
    records = _records(history, domains)
    blocked_domains: dict[str, str] = {}
    blocked_hosts: dict[str, str] = {}
    returns: dict[str, dict[str, str]] = {}
    recent = 0
    # Moves per domain within vm_cooldown_window so far (records are oldest first).
    moves: dict[str, int] = {}
    for record in records:
        age = now - record.time
        if age < HOUR:
            recent += 1
        if age < policy.vm_cooldown_window:
            moves[record.domain] = moves.get(record.domain, 0) + 1
        count = moves.get(record.domain, 1)
        window = cooldown(policy, count, record.duration)
        if age < window:
            nth = (
                f": move {count} in {format_duration(policy.vm_cooldown_window)}"
                if count > 1
                else ""
            )
            blocked_domains[record.domain] = (
                f"vm_cooldown: {record.domain} moved {ago(age)} ago "
                f"(window {format_duration(window)}{nth})"
            )
        else:
            blocked_domains.pop(record.domain, None)
        if age < policy.host_settle:
            for host, role in ((record.source, "sent"), (record.destination, "received")):
                if host:
                    blocked_hosts[host] = (
                        f"host_settle: {host} {role} {record.domain} {ago(age)} ago "
                        f"(window {format_duration(policy.host_settle)})"
                    )
        if age < policy.anti_flap and record.source:
            returns.setdefault(record.domain, {})[record.source] = (
                f"anti_flap: {record.domain} left {record.source} {ago(age)} ago "
                f"(window {format_duration(policy.anti_flap)})"
            )
    return Barriers(
        now=now,
        domains=MappingProxyType(blocked_domains),
        hosts=MappingProxyType(blocked_hosts),
        returns=MappingProxyType({d: MappingProxyType(h) for d, h in returns.items()}),
        remaining_hourly=max(0, policy.max_migrations_per_hour - recent),
        recent_migrations=recent,
    )


def annotate(snapshot: Snapshot, history: Iterable[HistoryItem]) -> Snapshot:
    """The snapshot with each domain's ``last_migrated``/``last_host`` taken from history where it is newer."""
    latest: dict[str, MigrationRecord] = {}
    for record in sorted(
        (MigrationRecord(*r) for r in history), key=lambda r: (r.time, r.source, r.destination)
    ):
        latest[record.domain] = record
    domains = []
    for domain in snapshot.domains:
        last = latest.get(domain.name)
        if last is not None and (domain.last_migrated is None or last.time > domain.last_migrated):
            domains.append(replace(domain, last_migrated=last.time, last_host=last.source))
        else:
            domains.append(domain)
    return snapshot.with_domains(tuple(domains))
