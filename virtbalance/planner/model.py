"""The planner's working model: hosts with their load as moves are committed, and chunks as atomic units."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from virtbalance.barriers import Barriers, evaluate
from virtbalance.causes import Cause
from virtbalance.chunks import ChunkMember, find_chunks
from virtbalance.forecast import Forecast
from virtbalance.policy import Policy
from virtbalance.snapshot import DomainState, Snapshot

# Ratios are compared with a small tolerance so that a move landing exactly on a target counts as fitting.
EPS = 1e-9
MIB = 1024 * 1024
UNBOUNDED = 1 << 30


@dataclass
class HostLoad:
    """One host as the plan changes it: the load after the moves committed so far."""

    name: str
    cpus: float
    memory: int
    cpu_used: float
    memory_used: int
    immovable_cpu: float
    maintenance: bool
    # Why it may not send or receive (host_settle), or None.
    settle: str | None
    anti_affinity: Counter[str] = field(default_factory=Counter)
    # CPU a destination is judged on: the forecast peak when there is one, else cpu_used (see Model).
    cpu_peak: float = 0.0
    # CPU balance spreads: its domains' recent averages plus its load outside them, else cpu_used.
    cpu_average: float = 0.0
    # Emptied by an earlier consolidation (off, or about to be): receives nothing (see virtbalance.planner.wake).
    emptied: bool = False
    moves: int = 0  # migrations into or out of it in this plan
    sent: int = 0  # chunks it sends in this plan: while any, it receives nothing

    @property
    def is_source(self) -> bool:
        return self.sent > 0

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_used / self.cpus

    @property
    def memory_ratio(self) -> float:
        return self.memory_used / self.memory

    @property
    def load(self) -> float:
        """How loaded it looks for "least loaded first": the larger of its two ratios."""
        return max(self.cpu_ratio, self.memory_ratio)


@dataclass(frozen=True)
class Unit:
    """A chunk on its host: moves whole, to one destination, or not at all."""

    host: str
    id: str
    members: tuple[DomainState, ...]
    cpu: float
    memory: int
    anti_affinity: frozenset[str]
    # Why it may not move at all (pinned, cooldown, forbidden), or None.
    blocked: str | None
    # Destinations it may not go to, with the reason (anti-flap, forbidden pairs) and its cause.
    barred: tuple[tuple[str, str, Cause], ...]
    # What ``blocked`` is, typed (the first member's barrier: frozen, pinned, then cooldown).
    blocked_cause: Cause | None = None
    # CPU it brings to a destination: its members' forecast peaks, else ``cpu``.
    cpu_peak: float = 0.0
    # What it adds to a host's average for balance: its members' recent averages, else ``cpu``.
    cpu_average: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.host, self.id)

    @cached_property
    def size(self) -> int:
        return len(self.members)

    def barred_reason(self, host: str) -> str | None:
        for name, reason, _ in self.barred:
            if name == host:
                return reason
        return None

    def barred_cause(self, host: str) -> Cause | None:
        for name, _, cause in self.barred:
            if name == host:
                return cause
        return None

    def describe(self) -> str:
        """``chunk lan11+lan12 (224 MiB, 0.50 cores, 7 domains)`` for reasons."""
        count = f", {self.size} domains" if self.size > 1 else ""
        return f"chunk {self.id} ({mib(self.memory)}, {self.cpu:.2f} cores{count})"


def mib(memory: float) -> str:
    return f"{memory / MIB:.0f} MiB"


def pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


@dataclass
class Model:
    """Hosts by name and the chunks of each host, built deterministically from a snapshot."""

    policy: Policy
    hosts: dict[str, HostLoad]
    units: dict[str, list[Unit]]  # host -> its chunks, sorted by id (see LazyUnits)
    barriers: Barriers
    max_migrations: int
    # The most domains one chunk moving alone in the plan may have (the max_migrations argument: what
    # the hourly rate cap leaves; never exceeded). None: no such limit.
    ceiling: int | None = None
    migrations: int = 0
    # With a forecast, destinations are judged on their recent peak, which must stay at or below
    # cpu_high (their own alert): the peak already holds the headroom cpu_target keeps on a sample.
    forecast: bool = False

    @property
    def destination_cpu(self) -> float:
        """The CPU ratio a destination's judged load may reach."""
        return self.policy.cpu_high if self.forecast else self.policy.cpu_target

    def budget_left(self) -> int:
        return self.max_migrations - self.migrations

    def cap_reason(self, host: HostLoad, size: int) -> str | None:
        """Why a chunk of ``size`` domains may not move into or out of ``host`` under the per-plan caps.

        The caps are storm barriers, not a bound on chunk size: a chunk larger than ``max_per_host``
        may move when it is the only move touching the host, and one larger than ``max_migrations``
        when it is the only move of the plan (within ``ceiling``). Anything else must fit the caps.
        """
        found = self.cap_cause(host, size)
        return None if found is None else found[1]

    def cap_cause(self, host: HostLoad, size: int) -> tuple[Cause, str] | None:
        """``cap_reason`` with its cause: the hourly cap when what it left is below the per-plan cap."""
        policy = self.policy
        if host.moves + size > policy.max_per_host and (host.moves > 0 or policy.max_per_host == 0):
            return Cause.PLAN_CAP, f"max_per_host {policy.max_per_host} reached on {host.name}"
        if size > self.budget_left() and size > self._alone(self.migrations):
            hourly = self.ceiling is not None and self.ceiling < policy.max_migrations
            return (
                Cause.HOURLY_CAP if hourly else Cause.PLAN_CAP,
                f"max_migrations {self.max_migrations} per plan reached",
            )
        return None

    def solo(self, host: HostLoad | None) -> int:
        """The most domains a single chunk may have to leave ``host`` now (see ``cap_reason``);
        ``None``: a host with nothing moved yet, in a plan with nothing moved yet (the ideal case)."""
        moves = 0 if host is None else host.moves
        cap = self.policy.max_per_host
        per_host = cap - moves if moves > 0 or cap == 0 else UNBOUNDED
        migrations = 0 if host is None else self.migrations
        return min(per_host, max(self.max_migrations - migrations, self._alone(migrations)))

    def _alone(self, migrations: int) -> int:
        """How many domains a chunk moving alone in the plan may have (0: it may not)."""
        if migrations > 0 or self.max_migrations == 0:
            return 0
        return UNBOUNDED if self.ceiling is None else self.ceiling


@dataclass(frozen=True)
class Inputs:
    """What one plan call decides from: the snapshot, the policy and what narrows the search.

    ``relieve_hosts``, ``forbidden``, ``max_migrations``, ``barriers`` and ``forecast`` mean what
    ``virtbalance.planner.plan`` says of them."""

    snapshot: Snapshot
    policy: Policy
    relieve_hosts: frozenset[str] | None = None
    forbidden: frozenset[tuple[str, str]] = frozenset()
    max_migrations: int | None = None
    barriers: Barriers | None = None
    forecast: Forecast | None = None

    def model(self) -> Model:
        """A fresh working model of these inputs (each search variant starts from its own)."""
        return build_model(
            self.snapshot,
            self.policy,
            self.forbidden,
            self.max_migrations,
            barriers=self.barriers,
            forecast=self.forecast,
        )


def build_model(
    snapshot: Snapshot,
    policy: Policy,
    forbidden: frozenset[tuple[str, str]],
    max_migrations: int | None,
    *,
    barriers: Barriers | None = None,
    forecast: Forecast | None = None,
) -> Model:
    """Hosts and chunks sorted by name, so the plan does not depend on the order of the input."""
    if barriers is None:
        barriers = evaluate(policy, snapshot.time, domains=snapshot.domains)
    by_host: dict[str, list[DomainState]] = {h.name: [] for h in snapshot.hosts}
    for domain in sorted(snapshot.domains, key=lambda d: d.name):
        by_host[domain.host].append(domain)

    hosts: dict[str, HostLoad] = {}
    forbidden_any = {d for d, dest in forbidden if dest == "*"}
    forbidden_to: dict[str, list[str]] = {}
    for domain_name, destination in sorted(forbidden):
        if destination != "*":
            forbidden_to.setdefault(domain_name, []).append(destination)

    for state in sorted(snapshot.hosts, key=lambda h: h.name):
        domains = by_host[state.name]
        domain_cpu = sum(d.cpu_used for d in domains)
        immovable = max(0.0, state.cpu_used - domain_cpu)
        hosts[state.name] = HostLoad(
            name=state.name,
            cpus=state.cpus,
            memory=state.memory_bytes,
            cpu_used=state.cpu_used,
            memory_used=state.memory_used_bytes,
            immovable_cpu=immovable,
            maintenance=state.maintenance,
            emptied=state.emptied,
            settle=barriers.host_blocked(state.name),
            anti_affinity=Counter(d.anti_affinity for d in domains if d.anti_affinity),
            cpu_peak=state.cpu_used
            if forecast is None
            else forecast.host(state.name, state.cpu_used),
            cpu_average=state.cpu_used
            if forecast is None
            else immovable + sum(forecast.average(d.name, d.cpu_used) for d in domains),
        )

    def chunks_of(host: str) -> list[Unit]:
        domains = by_host[host]
        by_name = {d.name: d for d in domains}
        return [
            _unit(
                host,
                chunk.id,
                tuple(by_name[n] for n in chunk.members),
                barriers,
                forbidden_any,
                forbidden_to,
                forecast,
            )
            for chunk in find_chunks(
                ChunkMember(d.name, d.private_networks, d.group) for d in domains
            )
        ]

    cap = (
        policy.max_migrations
        if max_migrations is None
        else min(policy.max_migrations, max_migrations)
    )
    return Model(
        policy=policy,
        hosts=hosts,
        units=LazyUnits(chunks_of),
        barriers=barriers,
        max_migrations=max(0, cap),
        ceiling=None if max_migrations is None else max(0, max_migrations),
        forecast=forecast is not None,
    )


class LazyUnits(dict[str, list[Unit]]):
    """Chunks per host, detected the first time a host's chunks are asked for.

    Relieving 5% of 5,000 hosts only needs the chunks of those 250: detecting all of them would be most
    of the planning time.
    """

    def __init__(self, detect: Callable[[str], list[Unit]]) -> None:
        super().__init__()
        self._detect = detect

    def __missing__(self, host: str) -> list[Unit]:
        units = self[host] = self._detect(host)
        return units


def _unit(  # noqa: PLR0917 - private helper, called once
    host: str,
    chunk_id: str,
    members: tuple[DomainState, ...],
    barriers: Barriers,
    forbidden_any: set[str],
    forbidden_to: dict[str, list[str]],
    forecast: Forecast | None,
) -> Unit:
    blocked: list[str] = []
    causes: set[Cause] = set()
    barred: dict[str, tuple[str, str, Cause]] = {}
    for member in members:
        if member.pinned:
            blocked.append(f"{member.name} is pinned")
            causes.add(Cause.PINNED)
        cooldown = barriers.domain_blocked(member.name)
        if cooldown:
            blocked.append(cooldown)
            causes.add(Cause.COOLDOWN)
        if member.name in forbidden_any:
            blocked.append(f"{member.name} is frozen (silenced)")
            causes.add(Cause.FROZEN)
        for destination in forbidden_to.get(member.name, ()):
            barred.setdefault(
                destination,
                (destination, f"{member.name} to {destination} is frozen (silenced)", Cause.FROZEN),
            )
        for destination, reason in sorted(barriers.returns.get(member.name, {}).items()):
            barred.setdefault(destination, (destination, reason, Cause.ANTI_FLAP))
    return Unit(
        host=host,
        id=chunk_id,
        members=members,
        cpu=sum(m.cpu_used for m in members),
        cpu_peak=sum(
            m.cpu_used if forecast is None else forecast.domain(m.name, m.cpu_used) for m in members
        ),
        cpu_average=sum(
            m.cpu_used if forecast is None else forecast.average(m.name, m.cpu_used)
            for m in members
        ),
        memory=sum(m.memory_bytes for m in members),
        anti_affinity=frozenset(m.anti_affinity for m in members if m.anti_affinity),
        blocked="; ".join(blocked) if blocked else None,
        barred=tuple(barred[d] for d in sorted(barred)),
        # An operator's freeze outranks a pin, a pin outranks a cooldown that will end.
        blocked_cause=next(
            (c for c in (Cause.FROZEN, Cause.PINNED, Cause.COOLDOWN) if c in causes), None
        ),
    )
