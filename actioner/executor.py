"""The executor: the only code that migrates. It owns every safety rail around a live migration.

Per chunk step: re-check the world (alert still firing, no freeze, cooldowns, members still on the source,
destination reachable with room, private bridges present), then migrate every member concurrently, measure
the split window, and if any member fails move the already-moved members back: a chunk never stays split.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import libvirt

from virtbalance import barriers
from virtbalance.actioner import journal as jr
from virtbalance.actioner.barrier_history import barrier_history
from virtbalance.actioner.bridges import bridge_exists, ensure_bridge, network_active
from virtbalance.actioner.config import STOP_GRACE, Config
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.libvirt_hosts import DomainFacts, HostPool, HostUnreachableError
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.proof import Action
from virtbalance.actioner.resolver import Resolver
from virtbalance.actioner.silences import AlertmanagerClient, SilenceError, freezing
from virtbalance.actioner.storage import (
    DiskCopy,
    LocalDisk,
    StorageError,
    local_disks,
    prepare_destination,
    remove_images,
    storage_timeout,
)
from virtbalance.chunks import ChunkMember, find_chunks
from virtbalance.contract import ALERT_JOB_STUCK, MigrationRecord
from virtbalance.plan import Migration, Plan
from virtbalance.snapshot import Snapshot

log = logging.getLogger(__name__)

_POLL = 0.5
# Rollback rows belong to no step of the plan: the reconcile judges them on their own.
ROLLBACK_STEP = -1
# The least time a rollback gets before it is aborted, whatever migration_timeout says.
ROLLBACK_MIN_TIMEOUT = 60.0
# How long libvirt may take to end a migration job after its abort before the job counts as stuck: an
# abort normally ends it within seconds; libvirt 9.0 can miss the end of a disk's mirror job that
# concludes during the abort and then waits for it forever (docs/runbook.md, VirtBalanceMigrationJobStuck).
ABORT_GRACE = 30.0
# Why a member's migration was never begun: the actioner was told to stop while it was prepared.
NOT_STARTED_STOPPING = "not started: the actioner is stopping"


@dataclass
class MoveResult:
    """How one libvirt migration ended."""

    domain: str
    ok: bool
    seconds: float
    finished_at: float
    error: str = ""
    timed_out: bool = False
    # where the domain is could not be proven afterwards: journaled ambiguous, nothing of its chunk moves
    ambiguous: bool = False
    # a move with copy_storage: the bytes copied, and what became of the image on the host it left
    disk_copy: DiskCopy | None = None
    source_disk: str = ""


class StepState(enum.Enum):
    """How one chunk step ended."""

    DONE = "done"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class SkipKind(enum.Enum):
    """Why a chunk step was not started: which pre-condition refused it."""

    CANCELLED = "cancelled"
    FROZEN = "frozen"
    COOLDOWN = "cooldown"
    PRECONDITION = "precondition"
    # What the plan relied on (a pin, a chunk's links, anti-affinity) differs on a fresh read: replan.
    STALE = "stale"


@dataclass(frozen=True)
class Refusal:
    """A pre-condition that does not hold: the step is not started."""

    kind: SkipKind
    reason: str


@dataclass
class StepOutcome:
    """How one chunk step ended; ``skip`` says which pre-condition refused a skipped step."""

    state: StepState
    reason: str = ""
    split_seconds: float | None = None
    moved: list[MigrationRecord] = field(default_factory=list)
    skip: SkipKind | None = None


@dataclass(frozen=True)
class _Migration:
    """One domain's live migration in flight: its libvirt handles, hosts and how it may end."""

    dom: Any
    # the source's and the destination's dedicated connections (the destination's is the source's
    # own in peer-to-peer mode)
    sconn: Any
    dconn: Any
    domain: str
    source: str
    destination: str
    started: float
    # False for a rollback: a stop must not abort it halfway, which would leave its chunk split
    abortable: bool


class Executor:
    """Runs plans chunk by chunk; construct once per actioner."""

    def __init__(
        self,
        *,
        config: Config,
        pool: HostPool,
        journal: Journal,
        metrics: Metrics,
        alertmanager: AlertmanagerClient | None = None,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.journal = journal
        self.metrics = metrics
        self.alertmanager = alertmanager
        self.resolver = resolver or Resolver(pool, journal, metrics)
        self._clock = clock
        self.progress: dict[str, dict[str, Any]] = {}
        self.stopping = threading.Event()
        self._progress_lock = threading.Lock()
        self._disk_copies: dict[str, DiskCopy] = {}  # the last job stats of a storage copy
        # libvirt refuses a pool refresh while another volume of that pool is being created
        # ("asynchronous jobs running"): a chunk's members prepare their images one at a time per host
        self._pool_locks: dict[str, threading.Lock] = {}
        self._pool_locks_guard = threading.Lock()
        # rollbacks that ran while the journal could not be written: journaled as soon as it can be,
        # so the cooldowns and the audit count every migration libvirt made
        self._unjournaled: list[tuple[int, Migration, str, MoveResult]] = []
        self._unjournaled_lock = threading.Lock()

    # --- plans --------------------------------------------------------------------------------

    def record(self, plan_id: int, plan: Plan) -> list[list[int]]:
        """Journal every migration of the plan as planned; ids grouped by chunk step.

        A plan run again (requeued after a stale step) numbers its steps after the earlier run's.
        """
        first = 1 + max(
            (r.step for r in self.journal.migrations(plan_id) if r.step >= 0), default=-1
        )
        return [
            [self._journal_move(plan_id, index, m, reason=m.reason) for m in group]
            for index, group in enumerate(plan.chunks(), first)
        ]

    def _journal_move(
        self, plan_id: int, step: int, move: Migration, *, back: bool = False, **row: str
    ) -> int:
        """Journal ``move`` (``back``: its rollback, destination to source) as a step of the plan."""
        source, destination = (
            (move.destination, move.source) if back else (move.source, move.destination)
        )
        return self.journal.add_migration(
            plan_id=plan_id,
            step=step,
            domain=move.domain,
            chunk=move.chunk,
            source=source,
            destination=destination,
            **row,
        )

    def execute(self, plan_id: int, plan: Plan, snapshot: Snapshot) -> tuple[str, str]:
        """Run a plan; (outcome, detail) with outcome one of the plan outcomes of the metrics."""
        self.journal_late_rollbacks()
        steps = self.record(plan_id, plan)
        groups = plan.chunks()
        if self.config.dry_run:
            for ids, group in zip(steps, groups, strict=True):
                self._finish_step(ids, group, jr.SKIPPED, "dry_run: nothing was moved")
            return "dry_run", f"dry run: {len(plan.migrations)} migration(s) not executed"
        own_moves: list[MigrationRecord] = []
        states: list[StepOutcome] = []
        for index, (ids, group) in enumerate(zip(steps, groups, strict=True)):
            outcome = self.run_step(plan_id, ids, group, snapshot, own_moves)
            states.append(outcome)
            own_moves.extend(outcome.moved)
            if outcome.state is StepState.CANCELLED or outcome.skip is SkipKind.STALE:
                # A stale step means the whole plan was made on facts that are no longer true.
                for rest_ids, rest in zip(steps[index + 1 :], groups[index + 1 :], strict=True):
                    self._finish_step(rest_ids, rest, jr.SKIPPED, outcome.reason)
                if outcome.skip is SkipKind.STALE:
                    return "stale", _plan_outcome(states)[1]
                return "cancelled", outcome.reason
        return _plan_outcome(states)

    def run_step(
        self,
        plan_id: int,
        ids: Sequence[int],
        group: Sequence[Migration],
        snapshot: Snapshot,
        own_moves: Sequence[MigrationRecord],
    ) -> StepOutcome:
        """One chunk: pre-checks, concurrent moves, rollback on failure; journal and metrics updated."""
        if self.stopping.is_set():
            refusal: Refusal | None = Refusal(
                SkipKind.CANCELLED, "cancelled: the actioner is stopping"
            )
        else:
            refusal = self.precheck(plan_id, group, snapshot, own_moves)
        if refusal is not None:
            self._finish_step(ids, group, jr.SKIPPED, refusal.reason)
            if refusal.kind is SkipKind.CANCELLED:
                return StepOutcome(StepState.CANCELLED, refusal.reason, skip=refusal.kind)
            return StepOutcome(StepState.SKIPPED, refusal.reason, skip=refusal.kind)
        source, destination = group[0].source, group[0].destination
        for migration_id in ids:
            self.journal.set_migration_state(migration_id, jr.RUNNING)
        workers = max(
            1,
            min(
                len(group),
                self.config.execution.max_concurrent,
                self.config.execution.max_concurrent_per_host,
            ),
        )
        if self.config.execution.copy_storage != "none":
            workers = min(workers, self.config.execution.max_concurrent_storage_copies)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="migrate") as pool:
            results = list(pool.map(lambda m: self.migrate(m.domain, source, destination), group))
        if any(r.ambiguous for r in results):
            return self._leave_in_doubt(ids, group, results)
        successes = [r for r in results if r.ok]
        failures = [r for r in results if not r.ok]
        if not failures:
            split = (
                max(r.finished_at for r in results) - min(r.finished_at for r in results)
                if len(results) > 1
                else 0.0
            )
            now = self._clock()
            for migration_id, m, r in zip(ids, group, results, strict=True):
                self.journal.set_migration_state(migration_id, jr.DONE)
                self._journal_storage(migration_id, r)
                self.metrics.migration(m, "done", r.seconds)
            self.metrics.chunk_split.observe(split)
            log.info(
                "chunk %s moved %s -> %s in %.1f s (split window %.2f s)",
                group[0].chunk,
                source,
                destination,
                time.monotonic() - started,
                split,
            )
            return StepOutcome(
                StepState.DONE,
                split_seconds=split,
                moved=[MigrationRecord(m.domain, source, destination, now) for m in group],
            )
        # A member failed: bring the moved ones back so the chunk is whole again on the source.
        first_arrival = min((r.finished_at for r in successes), default=None)
        by_domain = {r.domain: r for r in results}
        rollback_errors = []
        moved: list[MigrationRecord] = []
        why = f"rolled back: chunk member(s) failed: {', '.join(f.domain for f in failures)}"
        for migration_id, m in zip(ids, group, strict=True):
            r = by_domain[m.domain]
            if r.ok:
                back = self.roll_back(plan_id, m, why)
                now = self._clock()
                moved.append(MigrationRecord(m.domain, source, destination, now))
                if back.ok:
                    self._journal_safely(migration_id, jr.ROLLED_BACK, reason=why)
                    self.metrics.migration(m, "rolled_back", r.seconds)
                else:
                    rollback_errors.append(f"{m.domain}: {back.error}")
                    # SPLIT, not a final state: the periodic recheck tries the rollback again
                    self._journal_safely(
                        migration_id,
                        jr.SPLIT,
                        error=f"rollback failed: {back.error}",
                        reason="moved, then the rollback failed: the chunk is split",
                    )
                    self.metrics.migration(m, "failed", r.seconds)
            else:
                result = "timeout" if r.timed_out else "failed"
                self._journal_safely(migration_id, jr.FAILED, error=r.error)
                self._journal_storage(migration_id, r)
                self.metrics.migration(m, result, r.seconds)
        rollback_split: float | None = None
        if first_arrival is not None:
            rollback_split = time.monotonic() - first_arrival
            self.metrics.chunk_split.observe(rollback_split)
        detail = "; ".join(f"{f.domain}: {f.error}" for f in failures)
        if rollback_errors:
            log.critical(
                "chunk %s is SPLIT between %s and %s: rollback failed: %s",
                group[0].chunk,
                source,
                destination,
                "; ".join(rollback_errors),
            )
            return StepOutcome(
                StepState.FAILED,
                f"rollback failed ({'; '.join(rollback_errors)}); {detail}",
                rollback_split,
                moved,
            )
        state = StepState.ROLLED_BACK if successes else StepState.FAILED
        log.error("chunk %s not moved (%s): %s", group[0].chunk, state.value, detail)
        return StepOutcome(state, detail, rollback_split, moved)

    def _leave_in_doubt(
        self, ids: Sequence[int], group: Sequence[Migration], results: Sequence[MoveResult]
    ) -> StepOutcome:
        """A member's state could not be proven: journal every member as it is, move nothing back.

        Rolling the others back could only be judged against a member that may run anywhere; the
        recheck makes the chunk whole once the member is proven (actioner.reconcile).
        """
        for migration_id, m, r in zip(ids, group, results, strict=True):
            if r.ambiguous:
                self._journal_safely(migration_id, jr.AMBIGUOUS, error=r.error)
            elif r.ok:
                self._journal_safely(migration_id, jr.DONE)
            else:
                self._journal_safely(migration_id, jr.FAILED, error=r.error)
            self.metrics.migration(m, "done" if r.ok else "failed", r.seconds)
        doubtful = ", ".join(r.domain for r in results if r.ambiguous)
        log.critical(
            "chunk %s: %s could not be proven after its migration; the chunk is left as it is "
            "until the recheck proves it",
            group[0].chunk,
            doubtful,
        )
        detail = "; ".join(f"{r.domain}: {r.error}" for r in results if not r.ok)
        return StepOutcome(StepState.FAILED, f"in doubt, left as it is: {detail}")

    # --- re-checks ----------------------------------------------------------------------------

    def precheck(
        self,
        plan_id: int,
        group: Sequence[Migration],
        snapshot: Snapshot,
        own_moves: Sequence[MigrationRecord],
    ) -> Refusal | None:
        """The step's pre-condition, checked against the world right before it: a Refusal, or None."""
        source, destination = group[0].source, group[0].destination
        if self.journal.cancel_requested(plan_id) or not self.journal.alert_firing(plan_id):
            return Refusal(SkipKind.CANCELLED, "cancelled: the alert resolved before this move")
        if self.alertmanager is not None:
            try:
                silences = self.alertmanager.active_silences()
            except SilenceError as exc:
                return Refusal(SkipKind.FROZEN, f"frozen: freeze state unknown ({exc})")
            for m in group:
                silence = freezing(silences, m)
                if silence is not None:
                    return Refusal(
                        SkipKind.FROZEN,
                        f"frozen: {m.domain} {source}->{destination} matches {silence.describe()}",
                    )
        reason = self._cooldown_reason(plan_id, group, own_moves)
        if reason:
            return Refusal(SkipKind.COOLDOWN, reason)
        for host in (source, destination):
            if not self.pool.reachable(host):
                return Refusal(SkipKind.PRECONDITION, f"precondition: host {host} unreachable")
        try:
            stale = self._stale_reason(group)
            if stale is not None:
                self._doubt((source, destination), stale)
                return Refusal(SkipKind.STALE, stale)
            problem = self._placement_reason(group, snapshot)
        except (HostUnreachableError, libvirt.libvirtError) as exc:
            problem = f"precondition: cannot check the hosts: {exc}"
        return None if problem is None else Refusal(SkipKind.PRECONDITION, problem)

    def _stale_reason(self, group: Sequence[Migration]) -> str | None:
        """What planning relied on, checked again on a fresh read of both hosts (XML included, no cache).

        The planner moves only whole, unpinned chunks to hosts without their anti-affinity keys; a pin set,
        a link added or removed, a key arrived since the snapshot makes the step stale.
        """
        source, destination = group[0].source, group[0].destination
        here = {f.name: f for f in self.pool.domains(source) if f.running_here}
        names = {m.domain for m in group}
        missing = sorted(names - set(here))
        if missing:
            return None  # not on the source any more: the placement check says so
        for name in sorted(names):
            if here[name].placement.pinned:
                return f"stale plan: {name} is pinned now"
        chunks = find_chunks(
            ChunkMember(f.name, self.pool.private_links(f), f.placement.group)
            for f in here.values()
        )
        (chunk,) = [c for c in chunks if group[0].domain in c.members]
        if set(chunk.members) != names or chunk.id != group[0].chunk:
            return (
                f"stale plan: the chunk on {source} is now {chunk.id} ({', '.join(chunk.members)}), "
                f"the plan moves {group[0].chunk} ({', '.join(sorted(names))})"
            )
        keys = {here[n].placement.anti_affinity for n in names} - {None}
        present = {
            f.placement.anti_affinity for f in self.pool.domains(destination) if f.running_here
        }
        clash = sorted(k for k in keys & present if k)
        if clash:
            return f"stale plan: anti-affinity {', '.join(clash)} already on {destination}"
        return None

    def _doubt(self, hosts: Sequence[str], why: str) -> None:
        """The snapshot's cached facts were wrong: the next one reads these hosts in full."""
        log.error("%s; the next snapshot reads %s in full", why, " and ".join(hosts))
        if self.pool.watch is not None:
            for host in hosts:
                self.pool.watch.doubt(host)

    def _cooldown_reason(
        self,
        plan_id: int,
        group: Sequence[Migration],
        own_moves: Sequence[MigrationRecord],
    ) -> str | None:
        policy = self.config.policy
        now = self._clock()
        # This plan's own moves were planned together: they count against the hourly cap only.
        history = barrier_history(self.journal, now, policy, skip_plan=plan_id)
        b = barriers.evaluate(policy, now, history)
        for m in group:
            for reason in (
                b.domain_blocked(m.domain),
                b.return_blocked(m.domain, m.destination),
                b.host_blocked(m.source),
                b.host_blocked(m.destination),
            ):
                if reason:
                    return f"cooldown: {reason}"
        if b.remaining_hourly - len(own_moves) < len(group):
            return f"cooldown: {b.hourly_reason or 'max_migrations_per_hour: budget used up by this plan'}"
        return None

    def _placement_reason(self, group: Sequence[Migration], snapshot: Snapshot) -> str | None:
        source, destination = group[0].source, group[0].destination
        chunk_memory = 0
        bridges: set[str] = set()
        networks: set[str] = set()
        for m in group:
            where = {h: f for h, f in self.pool.locate(m.domain).items() if f.running_here}
            if list(where) != [source]:
                found = ", ".join(sorted(where)) or "nowhere"
                return f"precondition: {m.domain} is no longer only on {source} (found on {found})"
            facts = where[source]
            chunk_memory += facts.memory_bytes
            bridges.update(self.pool.private_bridges(facts))
            networks.update(self.pool.private_networks(facts))
        cpu_of = {d.name: d.cpu_used for d in snapshot.domains}
        chunk_cpu = sum(cpu_of.get(m.domain, 0.0) for m in group)
        cpus, memory = self.pool.capacity(destination)
        resident = self.pool.domains(destination)
        used_memory = sum(f.memory_bytes for f in resident)
        used_cpu = sum(cpu_of.get(f.name, 0.0) for f in resident)
        policy = self.config.policy
        if used_memory + chunk_memory > memory * policy.memory_high:
            return (
                f"precondition: {destination} has no memory room "
                f"({used_memory + chunk_memory} of {memory} bytes above memory_high)"
            )
        if used_cpu + chunk_cpu > cpus * policy.cpu_high:
            return (
                f"precondition: {destination} has no CPU room "
                f"({used_cpu + chunk_cpu:.2f} of {cpus:g} cores above cpu_high)"
            )
        conn = self.pool.connection(destination)
        for network in sorted(networks):
            if not network_active(conn, network):
                return f"precondition: libvirt network {network} not active on {destination}"
        for bridge in sorted(bridges):
            if bridge_exists(conn, bridge):
                continue
            if not self.config.execution.manage_bridges:
                return (
                    f"precondition: bridge {bridge} missing on {destination} (manage_bridges off)"
                )
            try:
                ensure_bridge(conn, bridge)
            except libvirt.libvirtError as exc:
                return f"precondition: cannot create bridge {bridge} on {destination}: {exc}"
        return None

    def ineligible_destinations(
        self, plan: Plan, facts: Mapping[str, DomainFacts]
    ) -> dict[tuple[str, str], str]:
        """(domain, destination) pairs whose destination lacks a private link of the chunk and cannot
        get it: a missing libvirt network always, a missing bridge when ``manage_bridges`` is off."""
        out: dict[tuple[str, str], str] = {}
        for group in plan.chunks():
            destination = group[0].destination
            members = [facts[m.domain] for m in group if m.domain in facts]
            bridges = sorted({b for f in members for b in self.pool.private_bridges(f)})
            networks = sorted({n for f in members for n in self.pool.private_networks(f)})
            if not networks and (self.config.execution.manage_bridges or not bridges):
                continue
            try:
                conn = self.pool.connection(destination)
                missing = [n for n in networks if not network_active(conn, n)]
                if not self.config.execution.manage_bridges:
                    missing += [b for b in bridges if not bridge_exists(conn, b)]
            except (HostUnreachableError, libvirt.libvirtError) as exc:
                missing = [f"(cannot check: {exc})"]
            if missing:
                reason = f"{', '.join(missing)} missing on {destination}"
                for m in group:
                    out[(m.domain, destination)] = reason
        return out

    # --- one libvirt migration ----------------------------------------------------------------

    def _flags_and_params(
        self, destination: str, disks: tuple[LocalDisk, ...] = ()
    ) -> tuple[int, dict[str, Any]]:
        execution = self.config.execution
        flags = (
            libvirt.VIR_MIGRATE_LIVE
            | libvirt.VIR_MIGRATE_PERSIST_DEST
            | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        )
        if execution.auto_converge:
            flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
        if execution.post_copy:
            flags |= libvirt.VIR_MIGRATE_POSTCOPY
        if execution.copy_storage == "all":
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
        elif execution.copy_storage == "incremental":
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
        if execution.unsafe:
            flags |= libvirt.VIR_MIGRATE_UNSAFE
        if execution.peer2peer:
            flags |= libvirt.VIR_MIGRATE_PEER2PEER
        if execution.migration_tls:
            flags |= libvirt.VIR_MIGRATE_TLS
        params: dict[str, Any] = {}
        host = self.config.host(destination)
        if host.migration_uri:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = host.migration_uri
        if disks:
            # exactly the disks prepared on the destination; any other unshared disk makes libvirt
            # refuse the move as unsafe (execution.unsafe is off with copy_storage)
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = [d.target for d in disks]
            if host.disks_uri:
                params[libvirt.VIR_MIGRATE_PARAM_DISKS_URI] = host.disks_uri
            elif execution.nbd_port:
                params[libvirt.VIR_MIGRATE_PARAM_DISKS_PORT] = execution.nbd_port
        if execution.bandwidth_mib_per_s:
            params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = execution.bandwidth_mib_per_s
        return flags, params

    def roll_back(self, plan_id: int, move: Migration, why: str) -> MoveResult:
        """Move a chunk member back to its source: a migration with its own journal row, written first.

        A journal that cannot be written (disk full, read-only) never stops a rollback: a whole chunk
        matters more than the row, and the failure is logged with the real error.
        """
        row: int | None = None
        try:
            row = self._journal_rollback(plan_id, move, why)
        except sqlite3.Error as exc:
            log.critical("%s: rolling back without a journal row: %s", move.domain, exc)
        result = self.migrate(move.domain, move.destination, move.source, abortable=False)
        if row is not None:
            state = jr.DONE if result.ok else jr.FAILED
            self._journal_safely(row, state, error=result.error or None)
        else:
            with self._unjournaled_lock:
                self._unjournaled.append((plan_id, move, why, result))
            self.journal_late_rollbacks()
        return result

    def _journal_rollback(self, plan_id: int, move: Migration, why: str) -> int:
        """The row of ``move``'s rollback (destination back to source), journaled running."""
        return self._journal_move(
            plan_id,
            ROLLBACK_STEP,
            move,
            back=True,
            state=jr.RUNNING,
            reason=why,
            kind=jr.ROLLBACK,
        )

    def journal_late_rollbacks(self) -> None:
        """Journal the rollbacks that ran while the journal could not be written, if it can be now.

        Called after each such rollback, before each plan and by the periodic recheck; what still
        cannot be written waits for the next call (and is lost only with the process)."""
        with self._unjournaled_lock:
            while self._unjournaled:
                plan_id, move, why, result = self._unjournaled[0]
                try:
                    row = self._journal_rollback(
                        plan_id,
                        move,
                        f"{why}; journaled after it ran (the journal was not writable then)",
                    )
                except sqlite3.Error as exc:
                    log.warning("%d rollback(s) still unjournaled: %s", len(self._unjournaled), exc)
                    return
                self._unjournaled.pop(0)
                state = jr.DONE if result.ok else jr.FAILED
                self._journal_safely(row, state, error=result.error or None)
                log.warning(
                    "%s: rollback %s->%s journaled after it ran",
                    move.domain,
                    move.destination,
                    move.source,
                )

    def migrate(
        self, domain: str, source: str, destination: str, *, abortable: bool = True
    ) -> MoveResult:
        """Live-migrate one domain; progress from job stats, aborted at the timeout, then verified.

        A stop (SIGTERM) aborts it unless ``abortable`` is False: a rollback runs to its end, since
        stopping halfway would leave its chunk split.

        The migration gets connections of its own, closed only once its outcome is known: a pooled
        connection may be dropped by another thread, and closing the destination's connection makes
        libvirt destroy every incoming migration tied to it.
        """
        started = time.monotonic()
        try:
            sconn = self.pool.dedicated(source)
        except HostUnreachableError as exc:
            return MoveResult(domain, False, 0.0, time.monotonic(), str(exc))
        connections = [sconn]
        try:
            if not self.config.execution.peer2peer:
                connections.append(self.pool.dedicated(destination))
            migration = _Migration(
                dom=sconn.lookupByName(domain),
                sconn=sconn,
                dconn=connections[-1],
                domain=domain,
                source=source,
                destination=destination,
                started=started,
                abortable=abortable,
            )
            if self.config.execution.copy_storage != "none":
                return self._migrate_with_storage(migration)
            return self._migrate_on(migration)
        except (HostUnreachableError, libvirt.libvirtError) as exc:
            return MoveResult(domain, False, 0.0, time.monotonic(), str(exc))
        finally:
            for conn in connections:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()

    def _migrate_on(self, migration: _Migration, disks: tuple[LocalDisk, ...] = ()) -> MoveResult:
        dom, domain, source, destination = (
            migration.dom,
            migration.domain,
            migration.source,
            migration.destination,
        )
        started, abortable = migration.started, migration.abortable
        if abortable and self.stopping.is_set():
            # A stop came while this member was being prepared (its disks created, its connections
            # opened): started now, it would only be aborted at the first poll, beside its chunk's
            # members being aborted and moved back. Not started, it certainly has not moved.
            return MoveResult(domain, False, 0.0, time.monotonic(), NOT_STARTED_STOPPING)
        timeout = self.config.execution.migration_timeout
        # copying disks takes longer: the timeout grows with their size
        timeout += storage_timeout(disks, self.config.execution.storage_copy_mib_per_s)
        if not abortable:
            # a rollback gets longer: aborting it leaves its chunk split until the recheck retries
            timeout = max(ROLLBACK_MIN_TIMEOUT, 2 * timeout)
        flags, params = self._flags_and_params(destination, disks)
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                if flags & libvirt.VIR_MIGRATE_PEER2PEER:
                    dom.migrateToURI3(self.config.host(destination).uri, params, flags)
                else:
                    box["dom"] = dom.migrate3(migration.dconn, params, flags)
            except libvirt.libvirtError as exc:
                box["error"] = str(exc)
            # The moment libvirt returned, not the next poll tick: the split window is measured from these.
            box["finished"] = time.monotonic()

        thread = threading.Thread(target=run, name=f"migrate-{domain}", daemon=True)
        thread.start()
        aborted = postcopy = stuck = False
        aborted_at = 0.0
        while thread.is_alive():
            thread.join(_POLL)
            if not thread.is_alive():
                break
            elapsed = time.monotonic() - started
            if aborted and not stuck and time.monotonic() - aborted_at > ABORT_GRACE:
                stuck = True
                self._report_stuck(domain, source, time.monotonic() - aborted_at)
            self._record_progress(domain, source, destination, dom, elapsed)
            if self.config.execution.post_copy and not postcopy and elapsed > timeout / 2:
                # Half the time is gone without converging: switch to post-copy, which always ends.
                try:
                    dom.migrateStartPostCopy(0)
                    postcopy = True
                except libvirt.libvirtError as exc:
                    log.warning("%s: cannot switch to post-copy: %s", domain, exc)
            stopping = abortable and self.stopping.is_set()
            if (elapsed > timeout or stopping) and not aborted and not postcopy:
                why = "the actioner is stopping" if stopping else f"exceeded {timeout:.0f} s"
                log.warning("%s: migration %s, aborting", domain, why)
                try:
                    dom.abortJob()
                except libvirt.libvirtError as exc:
                    log.warning("%s: abortJob failed: %s", domain, exc)
                aborted, aborted_at = True, time.monotonic()
        if stuck:
            self.resolver.clear_stuck(domain)
            log.warning(
                "%s: libvirt's migration call on %s returned %.0f s after its abort",
                domain,
                source,
                time.monotonic() - aborted_at,
            )
        with self._progress_lock:
            self.progress.pop(domain, None)
        finished = float(box.get("finished", time.monotonic()))
        seconds = finished - started
        error: str | None = box.get("error")
        if error is None:
            # libvirt said done, yet the destination may not show it (its libvirtd may have died
            # right after Finish): only proof decides whether it moved
            error = self.verify(domain, destination, source)
        if error is not None:
            return self._after_failure(
                domain,
                source=source,
                destination=destination,
                error=error,
                seconds=seconds,
                aborted=aborted,
            )
        return MoveResult(domain, True, seconds, finished)

    def _report_stuck(self, domain: str, source: str, waited: float) -> None:
        """The migration's job outlived its abort: libvirt will not end it, and waiting is all that is
        safe (its outcome is unknown, so nothing of the chunk may move and no other plan runs)."""
        self.resolver.report_stuck(domain, (source,))
        log.critical(
            "%s: libvirt's migration job on %s has not ended %.0f s after its abort; libvirt cannot "
            "end it (%s): restart libvirtd on %s. Nothing else moves until it ends.",
            domain,
            source,
            waited,
            ALERT_JOB_STUCK,
            source,
        )

    def _migrate_with_storage(self, migration: _Migration) -> MoveResult:
        """A move that copies the domain's local disks: create their images on the destination first,
        remove them again if the move fails, and keep or remove the source's per the setting."""
        domain, source, destination = migration.domain, migration.source, migration.destination
        execution = self.config.execution
        try:
            storage_conn = self.pool.dedicated(destination)
        except HostUnreachableError as exc:
            return MoveResult(domain, False, 0.0, time.monotonic(), str(exc))
        try:
            disks = local_disks(migration.dom)
            try:
                with self._pool_lock(destination):
                    created = prepare_destination(
                        storage_conn,
                        disks,
                        destination,
                        incremental=execution.copy_storage == "incremental",
                    )
            except StorageError as exc:
                return MoveResult(domain, False, 0.0, time.monotonic(), f"storage: {exc}")
            self._disk_copies.pop(domain, None)
            result = self._migrate_on(migration, disks)
            result.disk_copy = self._disk_copies.pop(domain, None)
            if result.ok:
                copied = (
                    _completed_disk_copy(storage_conn, domain)
                    or result.disk_copy
                    or self._copied_allocation(storage_conn, created, destination)
                )
                # libvirt ends a migration only once every disk is mirrored: a poll that saw the copy
                # start knew its size, and all of it was copied
                result.disk_copy = copied and DiskCopy(copied.total, copied.total)
                result.source_disk = self._source_disk_after_move(
                    migration.sconn, disks, source, domain
                )
            elif not result.ambiguous:
                self._remove_copy(storage_conn, created, domain, destination)
            elif created:
                log.critical(
                    "%s: in doubt after its storage copy: %s left on %s for the recheck",
                    domain,
                    ", ".join(created),
                    destination,
                )
            return result
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                storage_conn.close()

    def _copied_allocation(
        self, conn: Any, created: list[str], destination: str
    ) -> DiskCopy | None:
        """What the copy wrote into the images it created, when libvirt's job stats never showed it
        (a copy that ends between two progress polls): the bytes allocated there."""
        total = 0
        with self._pool_lock(destination):
            for path in created:
                try:
                    volume = conn.storageVolLookupByPath(path)
                    total += int(volume.info()[2])  # (type, capacity, allocation)
                except libvirt.libvirtError:
                    return None
        return DiskCopy(total, total) if total else None

    def _pool_lock(self, host: str) -> threading.Lock:
        with self._pool_locks_guard:
            return self._pool_locks.setdefault(host, threading.Lock())

    def _remove_copy(self, conn: Any, created: list[str], domain: str, destination: str) -> None:
        """A failed move: remove the images it created, unless the domain is active there after all."""
        try:
            here = self.pool.locate(domain).get(destination)
        except (HostUnreachableError, libvirt.libvirtError) as exc:
            log.critical("%s: cannot check %s, its copy is left: %s", domain, destination, exc)
            return
        if here is not None and here.active:
            log.critical(
                "%s: active on %s after a failed move: its copy is left", domain, destination
            )
            return
        with self._pool_lock(destination):
            remove_images(conn, created, destination, why=f"the move of {domain} failed")

    def _source_disk_after_move(
        self, sconn: Any, disks: tuple[LocalDisk, ...], source: str, domain: str
    ) -> str:
        """Apply execution.source_disk_after_move to the images the domain left on ``source``."""
        paths = [d.path for d in disks]
        if self.config.execution.source_disk_after_move == "keep":
            log.info("%s: kept its former image(s) on %s: %s", domain, source, ", ".join(paths))
            return "kept"
        with self._pool_lock(source):
            problems = remove_images(sconn, paths, source, why=f"{domain} moved with its storage")
        return f"remove failed: {'; '.join(problems)}" if problems else "removed"

    def _journal_storage(self, migration_id: int, result: MoveResult) -> None:
        if result.disk_copy is None and not result.source_disk:
            return
        copy = result.disk_copy or DiskCopy()
        try:
            self.journal.set_migration_storage(
                migration_id, copy.total, copy.processed, result.source_disk
            )
        except sqlite3.Error as exc:
            log.critical("journal write failed (storage of migration %s): %s", migration_id, exc)

    def _after_failure(
        self,
        domain: str,
        *,
        source: str,
        destination: str,
        error: str,
        seconds: float,
        aborted: bool,
    ) -> MoveResult:
        """libvirt said the migration failed: find out from every host where the domain really is.

        A failure reported after Finish (the destination runs the guest) is a move that happened; a
        source left paused is resumed only with proof that no other copy runs (actioner.proof).
        """
        context = f"migration {source}->{destination} failed: {error}"
        # a stop must end within STOP_GRACE: wait for a job left behind at most half of it
        wait = STOP_GRACE / 2 if self.stopping.is_set() else self.config.execution.migration_timeout
        deadline = time.monotonic() + wait
        resolution = self.resolver.resolve(domain, context)
        while resolution.verdict.action is Action.IN_FLIGHT and time.monotonic() < deadline:
            time.sleep(_POLL)
            resolution = self.resolver.resolve(domain, context)
        finished = time.monotonic()
        if resolution.done and resolution.host == destination:
            problem = self.verify(domain, destination, source)
            if problem is None:
                log.warning("%s: libvirt reported %r, yet the move completed", domain, error)
                return MoveResult(domain, True, seconds, finished)
            # It runs on the destination, yet something of it is left on the source (an active copy,
            # a definition that would not go): "not moved" would have its chunk moved back around it
            # and the split journaled as closed. Nothing moves until the recheck proves it.
            return MoveResult(
                domain,
                False,
                seconds,
                finished,
                f"{error}; {problem}; left untouched: it runs on {destination}",
                timed_out=aborted,
                ambiguous=True,
            )
        if not resolution.done:
            return MoveResult(
                domain,
                False,
                seconds,
                finished,
                f"{error}; left untouched: {resolution.detail}",
                timed_out=aborted,
                ambiguous=True,
            )
        return MoveResult(domain, False, seconds, finished, error, timed_out=aborted)

    def _record_progress(
        self, domain: str, source: str, destination: str, dom: Any, elapsed: float
    ) -> None:
        try:
            stats = dom.jobStats(0)
        except libvirt.libvirtError:
            return
        total = stats.get("data_total") or stats.get("memory_total") or 0
        remaining = stats.get("data_remaining") or stats.get("memory_remaining") or 0
        entry = {
            "source": source,
            "destination": destination,
            "elapsed_seconds": round(elapsed, 1),
            "data_total_bytes": total,
            "data_remaining_bytes": remaining,
            "percent": round(100.0 * (1 - remaining / total), 1) if total else None,
        }
        if stats.get("disk_total"):
            entry["disk_total_bytes"] = stats["disk_total"]
            entry["disk_processed_bytes"] = stats.get("disk_processed", 0)
        with self._progress_lock:
            self.progress[domain] = entry
            if stats.get("disk_total"):
                self._disk_copies[domain] = DiskCopy(
                    int(stats["disk_total"]), int(stats.get("disk_processed", 0))
                )
        log.debug("migrating %s %s -> %s: %s", domain, source, destination, entry)

    def verify(self, domain: str, destination: str, source: str) -> str | None:
        """The post-condition: running and persistent on the destination only; clean a leftover definition."""
        where = self.pool.locate(domain)
        dest = where.get(destination)
        if dest is None or not dest.running_here:
            return f"{domain} not running on {destination} after the migration"
        if not dest.persistent:
            return f"{domain} runs on {destination} without a persistent definition"
        src = where.get(source)
        if src is not None:
            if src.active:
                return f"{domain} still active on {source} after the migration"
            try:
                self.pool.connection(source).lookupByName(domain).undefine()
                log.warning("%s: removed the stale definition left on %s", domain, source)
            except libvirt.libvirtError as exc:
                return f"{domain}: stale definition on {source} could not be removed: {exc}"
        return None

    # --- journal helpers ----------------------------------------------------------------------

    def _journal_safely(self, migration_id: int, state: str, **fields: str | None) -> None:
        """A journal write on a path that must go on (rollbacks, outcomes): a failure is logged, not raised."""
        try:
            self.journal.set_migration_state(migration_id, state, **fields)
        except sqlite3.Error as exc:
            log.critical(
                "journal write failed (migration %s -> %s): %s; the libvirt action went ahead",
                migration_id,
                state,
                exc,
            )

    def _finish_step(
        self, ids: Sequence[int], group: Sequence[Migration], state: str, reason: str
    ) -> None:
        for migration_id, m in zip(ids, group, strict=True):
            self.journal.set_migration_state(migration_id, state, reason=reason)
            self.metrics.migration(m, "skipped", None)


def _plan_outcome(states: Sequence[StepOutcome]) -> tuple[str, str]:
    done = sum(1 for s in states if s.state is StepState.DONE)
    bad = [s for s in states if s.state in (StepState.FAILED, StepState.ROLLED_BACK)]
    skipped = [s for s in states if s.state is StepState.SKIPPED]
    frozen = [s for s in skipped if s.skip is SkipKind.FROZEN]
    details = "; ".join(s.reason for s in bad + skipped if s.reason)
    summary = f"{done} of {len(states)} chunk(s) moved"
    if bad:
        return "failed", f"{summary}; {details}"
    if done:
        return "executed", summary + (f"; {details}" if details else "")
    if frozen and len(frozen) == len(skipped):
        return "frozen", f"{summary}; {details}"
    return "unresolved", f"{summary}; {details}"


def _completed_disk_copy(conn: Any, domain: str) -> DiskCopy | None:
    """The bytes copied, from the finished migration's stats that the destination keeps.

    The progress polls miss a copy shorter than one poll; the completed job's stats do not.
    """
    try:
        stats = conn.lookupByName(domain).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return None
    if not stats.get("disk_total"):
        return None
    return DiskCopy(int(stats["disk_total"]), int(stats.get("disk_processed", 0)))
