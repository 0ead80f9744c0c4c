"""The replay: step through the traces, raise the alert after ``for``, let a policy move VMs, count."""

from __future__ import annotations

import time as wallclock
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from virtbalance.causes import Cause
from virtbalance.chunks import Chunk
from virtbalance.forecast import window_points
from virtbalance.policy import Policy
from virtbalance.simulator.alerting import (
    chronically_hot,
    imbalanced,
    sustained,
    window_mean,
)
from virtbalance.simulator.cluster import Cluster
from virtbalance.simulator.diagnosis import Diagnosis
from virtbalance.simulator.migration import CostModel
from virtbalance.simulator.policies.base import PolicyPlugin
from virtbalance.simulator.power import kwh
from virtbalance.simulator.sla import SlaTotals
from virtbalance.simulator.state import ClusterView, MigrationRecord, Move
from virtbalance.simulator.traces import GIB, Workload

FLAP_WINDOW = 86400.0


@dataclass
class Metrics:
    """What one policy cost and achieved over the replay."""

    policy: str
    chunk_aware: bool
    hosts: int
    vms: int
    steps: int
    days: float
    overloaded_host_steps: int = 0
    worst_cpu_ratio: float = 0.0
    migrations: int = 0
    migrated_bytes: int = 0
    flaps: int = 0
    chunk_splits: int = 0
    rejected_moves: int = 0
    alert_host_steps: int = 0
    migration_seconds: float = 0.0
    replay_seconds: float = 0.0
    # kWh the hosts drew (None: the cluster has no power model).
    energy_kwh: float | None = None
    sla: SlaTotals = field(default_factory=SlaTotals)

    @property
    def overloaded_host_time_pct(self) -> float:
        total = self.hosts * self.steps
        return 100.0 * self.overloaded_host_steps / total if total else 0.0

    @property
    def migrations_per_vm_per_day(self) -> float:
        return self.migrations / self.vms / self.days if self.vms and self.days else 0.0

    @property
    def migrated_gib(self) -> float:
        return self.migrated_bytes / GIB

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "chunk_aware": self.chunk_aware,
            "hosts": self.hosts,
            "vms": self.vms,
            "steps": self.steps,
            "days": round(self.days, 4),
            "overloaded_host_time_pct": round(self.overloaded_host_time_pct, 4),
            "overloaded_host_steps": self.overloaded_host_steps,
            "worst_cpu_ratio": round(self.worst_cpu_ratio, 4),
            "migrations": self.migrations,
            "migrations_per_vm_per_day": round(self.migrations_per_vm_per_day, 5),
            "migrated_gib": round(self.migrated_gib, 3),
            "flaps": self.flaps,
            "chunk_splits": self.chunk_splits,
            "rejected_moves": self.rejected_moves,
            "alert_host_steps": self.alert_host_steps,
            "migration_hours": round(self.migration_seconds / 3600.0, 4),
            "replay_seconds": round(self.replay_seconds, 3),
            "energy_kwh": None if self.energy_kwh is None else round(self.energy_kwh, 3),
            "slatah_pct": round(100.0 * self.sla.slatah, 4),
            "slatah_cloudsim_pct": round(100.0 * self.sla.slatah_cloudsim, 4),
            "pdm_pct": round(100.0 * self.sla.pdm, 5),
            "slav_pct": round(100.0 * self.sla.slav, 7),
        }


@dataclass
class Result:
    """Metrics, every migration, and (when recorded) each host's CPU ratio at every step."""

    metrics: Metrics
    parameters: dict[str, Any]
    history: list[MigrationRecord]
    host_series: dict[str, array[float]] = field(default_factory=dict)
    # Why each overload was not relieved at once (plug-ins that can say: virtbalance).
    diagnosis: Diagnosis | None = None


class _Tracker:
    """Flaps (A -> B -> A within 24 h) and chunk splits (a seeded chunk found on two hosts)."""

    def __init__(self, cluster: Cluster) -> None:
        self.last: dict[str, MigrationRecord] = {}
        self.chunks = cluster.chunks()
        self.split: set[str] = set()

    def is_flap(self, record: MigrationRecord) -> bool:
        before = self.last.get(record.domain)
        self.last[record.domain] = record
        return (
            before is not None
            and before.source == record.destination
            and before.destination == record.source
            and record.time - before.time <= FLAP_WINDOW
        )

    def new_splits(
        self, moved: Sequence[str], networks: dict[str, tuple[str, ...]], placement: dict[str, str]
    ) -> int:
        count = 0
        for net in {n for d in moved for n in networks.get(d, ())}:
            hosts = {placement[m] for m in self.chunks[net] if m in placement}
            if len(hosts) > 1 and net not in self.split:
                self.split.add(net)
                count += 1
            elif len(hosts) == 1:
                self.split.discard(net)
        return count


@dataclass
class _Flight:
    """A migration decided at ``queued``, copying from ``start`` to ``end``."""

    domain: str
    source: str
    destination: str
    queued: float
    start: float
    end: float


def _share(first: float, last: float, begin: float, end: float, step: float) -> float:
    """The share of the interval (first, last] that [begin, end) covers."""
    return max(0.0, min(end, last) - max(begin, first)) / step


def _schedule(
    moves: Sequence[Move], view: ClusterView, cost: CostModel, per_host: int, free_at: float
) -> tuple[list[tuple[Move, float, float]], float]:
    """Start and end of each move: groups (a chunk) one after another from ``free_at``, members together."""
    out: list[tuple[Move, float, float]] = []
    if cost.concurrent:
        lengths = [cost.wave([(view.memory[m.domain], view.cpu[m.domain])])[0] for m in moves]
        out = [(m, free_at, free_at + length) for m, length in zip(moves, lengths, strict=True)]
        return out, free_at + max(lengths, default=0.0)
    clock = free_at
    index = 0
    while index < len(moves):
        first = moves[index]
        key = (first.group, view.placement[first.domain], first.destination)
        end = index + 1
        while (
            end < len(moves)
            and (
                moves[end].group,
                view.placement[moves[end].domain],
                moves[end].destination,
            )
            == key
        ):
            end += 1
        group = moves[index:end]
        spans = cost.chunk([(view.memory[m.domain], view.cpu[m.domain]) for m in group], per_host)
        out += [(m, clock + a, clock + b) for m, (a, b) in zip(group, spans, strict=True)]
        clock += max((b for _, b in spans), default=0.0)
        index = end
    return out, clock


def replay(
    workload: Workload,
    cluster: Cluster,
    plugin: PolicyPlugin,
    policy: Policy,
    *,
    record_series: bool = True,
    cost: CostModel | None = None,
) -> Result:
    """Replay ``workload`` on ``cluster`` under ``plugin``.

    Step ``i`` stands for the interval that ends at ``start + i * step``, when it is sampled and the
    policy decides. Each step: the moves decided at the previous step begin (one chunk after another,
    after any still running; ``cost`` says how long each lasts, during which the source still carries
    the domain plus the copying overhead and the destination carries it too); sum every host's demand
    over the interval; count overload (CPU above ``policy.cpu_high``); advance the policy's alert (CPU
    above ``cpu_high`` or memory above ``memory_high`` for ``overload_for``); ask the plug-in what to
    move, and record why each overloaded host got no move (the diagnosis). HostChronicallyHot
    (``virtbalance.simulator.alerting.chronically_hot``) is evaluated beside it: ``ClusterView.hot``; and
    HostsImbalanced over the hosts that run a domain, each averaged over ``balance_window``
    (``virtbalance.simulator.alerting.imbalanced``):
    ``ClusterView.imbalanced``. A VM whose
    ``end`` is that step is deleted after the step is counted, before the plug-in decides.
    """
    cost = cost or CostModel()
    started = wallclock.perf_counter()
    names = [vm.name for vm in workload.vms]
    series = [vm.cpu for vm in workload.vms]
    memory_series = [vm.memory for vm in workload.vms]
    vcpus = {vm.name: vm.vcpus for vm in workload.vms}
    networks = {n: tuple(cluster.networks.get(n, ())) for n in names}
    hosts = cluster.host_names
    placement = {n: cluster.placement[n] for n in names}
    domains_by_host: dict[str, list[str]] = {h: [] for h in hosts}
    for name in names:
        domains_by_host[placement[name]].append(name)
    memory_now = {vm.name: vm.memory_bytes for vm in workload.vms}
    metrics = Metrics(
        policy=plugin.name,
        chunk_aware=plugin.chunk_aware,
        hosts=len(hosts),
        vms=len(names),
        steps=workload.steps,
        days=workload.days,
    )
    host_series = {h: array("d", bytes(8 * workload.steps)) for h in hosts} if record_series else {}
    history: list[MigrationRecord] = []
    tracker = _Tracker(cluster)
    pending_since: dict[str, float | None] = dict.fromkeys(hosts)
    # HostChronicallyHot: each host's evaluations within hot_window, and its own pending time.
    hot_points = window_points(policy.hot_window, workload.step)
    hot_window: dict[str, deque[bool]] = {h: deque() for h in hosts}
    hot_since: dict[str, float | None] = dict.fromkeys(hosts)
    # HostsImbalanced: one series for the cluster, so one pending time; each awake host's ratios
    # within balance_window (an off host has no series: its window starts again when it wakes).
    imbalanced_since: float | None = None
    balance_points = window_points(policy.balance_window, workload.step)
    balance_window: dict[str, deque[float]] = {h: deque() for h in hosts}
    pending: list[tuple[Move, float, float]] = []
    flights: list[_Flight] = []
    free_at = workload.start
    cpu_high = policy.cpu_high
    memory_high = policy.memory_high
    cpu_now: dict[str, float] = dict.fromkeys(names, 0.0)
    index_of = {n: i for i, n in enumerate(names)}
    series_by_name = dict(zip(names, series, strict=True))
    rows = list(zip(names, series, memory_series, strict=True))
    # VMs deleted during the trace, by the step they go at (after that step is counted).
    ends: dict[int, list[str]] = {}
    for vm in workload.vms:
        if vm.end is not None:
            ends.setdefault(vm.end, []).append(vm.name)
    chunk_cache: dict[tuple[str, ...], list[Chunk]] = {}
    diagnosis = Diagnosis(hosts, workload.steps, workload.step)
    explains = True
    power = cluster.host_power
    cores = cluster.host_core
    if power:
        metrics.energy_kwh = 0.0
    sla = metrics.sla

    for step in range(workload.steps):
        now = workload.start + step * workload.step
        if pending:
            moved = []
            decided = now - workload.step
            for move, begin, end in pending:
                source = placement[move.domain]
                record = MigrationRecord(
                    end,
                    move.domain,
                    source,
                    move.destination,
                    memory_now[move.domain],
                    end - begin,
                )
                placement[move.domain] = move.destination
                domains_by_host[source].remove(move.domain)
                domains_by_host[move.destination].append(move.domain)
                if end > decided:
                    flights.append(
                        _Flight(move.domain, source, move.destination, decided, begin, end)
                    )
                history.append(record)
                metrics.migrations += 1
                metrics.migrated_bytes += record.memory_bytes
                metrics.migration_seconds += record.duration
                metrics.flaps += tracker.is_flap(record)
                moved.append(move.domain)
            metrics.chunk_splits += tracker.new_splits(moved, networks, placement)
            pending = []

        host_cpu_used = dict.fromkeys(hosts, 0.0)
        host_memory_used = dict.fromkeys(hosts, 0)
        # What the domains ask beyond their cores (hosts with host_core): the host cannot run it.
        beyond_cores = dict.fromkeys(hosts, 0.0)
        for name, values, used in rows:
            value = values[step]
            cpu_now[name] = value
            if used is not None:
                memory_now[name] = int(used[step])
            where = placement[name]
            host_cpu_used[where] += value
            host_memory_used[where] += memory_now[name]
            sla.requested += value * workload.step
            if cores:
                beyond_cores[where] += max(0.0, value - vcpus[name] * cores[where])
        # Seconds of this interval during which a domain migrated to each host (CloudSim's SLATAH):
        # the longest copy to it (the copies of one decision start together with concurrent costs).
        arriving: dict[str, float] = {}
        if flights:
            # Over the interval (now - step, now] a domain counts on its source until its migration
            # ends, plus the copying while it runs; on its destination once the copy starts (it is
            # placed there already, so the wait in the executor's queue is taken off).
            first = now - workload.step
            running = []
            for flight in flights:
                cpu = series[index_of[flight.domain]][step]
                host_cpu_used[flight.source] += cpu * _share(
                    first, now, flight.queued, flight.end, workload.step
                ) + cost.overhead_cores * _share(
                    first, now, flight.start, flight.end, workload.step
                )
                host_cpu_used[flight.destination] -= cpu * _share(
                    first, now, flight.queued, flight.start, workload.step
                )
                copying = workload.step * _share(
                    first, now, flight.start, flight.end, workload.step
                )
                sla.add_migration(cpu, copying)
                arriving[flight.destination] = max(arriving.get(flight.destination, 0.0), copying)
                if flight.end > now:
                    running.append(flight)
            flights = running

        firing = set()
        hot = set()
        overloaded_hosts = []
        awake_ratios = []
        for host in hosts:
            capacity = cluster.host_cpus[host]
            ratio = host_cpu_used[host] / capacity
            # A host with no domain left is off: no power, no active time.
            active = bool(domains_by_host[host])
            # What the host runs: the demand within its domains' cores, at most its capacity.
            allocated = min(host_cpu_used[host] - beyond_cores[host], capacity)
            sla.add_host(
                workload.step, host_cpu_used[host], allocated, active, arriving.get(host, 0.0)
            )
            model = power.get(host)
            if model is not None and active:
                metrics.energy_kwh = (metrics.energy_kwh or 0.0) + kwh(
                    model.power(allocated / capacity), workload.step
                )
            if record_series:
                host_series[host][step] = ratio
            if active:
                awake_ratios.append(window_mean(balance_window[host], ratio, balance_points))
            else:
                balance_window[host].clear()
            metrics.worst_cpu_ratio = max(metrics.worst_cpu_ratio, ratio)
            overloaded = ratio > cpu_high
            if overloaded:
                overloaded_hosts.append(host)
            metrics.overloaded_host_steps += overloaded
            breached = (
                overloaded or host_memory_used[host] / cluster.host_memory[host] > memory_high
            )
            pending_since[host], fires = sustained(
                pending_since[host], breached, now, policy.overload_for
            )
            if fires:
                firing.add(host)
            hot_since[host], hot_fires = chronically_hot(
                hot_window[host], hot_since[host], ratio, now, policy, hot_points
            )
            if hot_fires:
                hot.add(host)
        metrics.alert_host_steps += len(firing)
        # Off hosts are out of the spread, as the rule leaves out the hosts the actioner emptied.
        imbalanced_since, imbalance_fires = imbalanced(imbalanced_since, awake_ratios, now, policy)
        if step in ends:
            gone = set(ends[step])
            for name in gone:
                domains_by_host[placement.pop(name)].remove(name)
            rows = [row for row in rows if row[0] not in gone]

        view = ClusterView(
            time=now,
            step=step,
            step_seconds=workload.step,
            host_names=hosts,
            host_cpus=cluster.host_cpus,
            host_memory=cluster.host_memory,
            placement=placement,
            domains_by_host=domains_by_host,
            cpu=cpu_now,
            memory=memory_now,
            vcpus=vcpus,
            networks=networks,
            host_cpu_used=host_cpu_used,
            host_memory_used=host_memory_used,
            firing=frozenset(firing),
            hot=frozenset(hot),
            imbalanced=imbalance_fires,
            history=history,
            executing_until=free_at,
            cpu_series=series_by_name,
            chunk_cache=chunk_cache,
            host_power=power,
            host_core=cores,
        )
        # One executor for every policy: while its migrations run, nothing new is decided.
        busy = free_at > now
        admitted = [] if busy else _admit(plugin.decide(view), view, metrics)
        if admitted:
            pending, free_at = _schedule(admitted, view, cost, policy.max_per_host, now)
        explained = plugin.explain()
        if busy and explained is not None:
            explained = dict.fromkeys(firing | hot, Cause.WAITING)
        explains = explains and explained is not None
        if overloaded_hosts and explained is not None:
            relieving = {view.placement[m.domain] for m in admitted} | {f.source for f in flights}
            for host in overloaded_hosts:
                if host in relieving:
                    cause = Cause.MIGRATING
                elif host not in firing and host not in hot:
                    cause = Cause.FOR_WINDOW
                else:
                    cause = explained.get(host, Cause.OTHER)
                diagnosis.record(host, step, cause)

    metrics.replay_seconds = wallclock.perf_counter() - started
    return Result(
        metrics, plugin.parameters(), history, host_series, diagnosis if explains else None
    )


def _admit(moves: Sequence[Move], view: ClusterView, metrics: Metrics) -> list[Move]:
    """Keep the moves the hypervisors would accept: a known domain, another host, memory to hold it.

    Memory is checked in order, counting what the earlier admitted moves take and free; a refused
    move is counted in ``rejected_moves`` (libvirt would have failed it).
    """
    admitted: list[Move] = []
    seen: set[str] = set()
    delta: dict[str, int] = {}
    for move in moves:
        source = view.placement.get(move.domain)
        size = view.memory.get(move.domain, 0)
        if (
            source is None
            or move.domain in seen
            or move.destination not in view.host_memory
            or move.destination == source
            or view.host_memory_used[move.destination] + delta.get(move.destination, 0) + size
            > view.host_memory[move.destination]
        ):
            metrics.rejected_moves += 1
            continue
        seen.add(move.domain)
        delta[move.destination] = delta.get(move.destination, 0) + size
        delta[source] = delta.get(source, 0) - size
        admitted.append(move)
    return admitted
