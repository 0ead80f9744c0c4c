"""Start-up reconcile: journal rows a crash left open are resolved from proof of where each domain is.

A migration journaled ``running`` ended one way or another while the actioner was away (or still runs:
with peer-to-peer migration the source libvirtd drives it on). Each domain is judged by actioner.proof
from what every host shows, after any job left on it has ended (bounded wait): ``done`` when it runs on
the destination, ``failed`` when it runs on the source, ``ambiguous`` when nothing can be proven (it is
then left exactly as it is, held from planning, and rechecked periodically). A chunk found split is made
whole on its source, each move back journaled before it is made. Nothing that completed is run again,
and interrupted plans are not restarted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from virtbalance.actioner import journal as jr
from virtbalance.actioner.executor import Executor
from virtbalance.actioner.journal import Journal, MigrationRow
from virtbalance.actioner.proof import Action
from virtbalance.actioner.resolver import Resolution, Resolver
from virtbalance.plan import Migration

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What the reconcile found and did."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    interrupted_plans: list[int] = field(default_factory=list)
    requeued_plans: list[int] = field(default_factory=list)


# Why a row was still open when the reconcile found it, in the texts it journals.
AFTER_RESTART = "after an actioner restart"
AFTER_JOURNAL_FAILURE = "left running by a journal write that failed"
AFTER_DOUBT = "once in doubt, now proven"


def _resolve_after_jobs(
    resolver: Resolver, domain: str, wait: float, sleep: Callable[[float], None], cause: str
) -> Resolution:
    """Resolve ``domain`` once no host holds a job for it; at most ``wait`` seconds of waiting."""
    deadline = time.monotonic() + wait
    while True:
        resolution = resolver.resolve(domain, f"reconcile ({cause})")
        if resolution.verdict.action is not Action.IN_FLIGHT or time.monotonic() >= deadline:
            return resolution
        sleep(1.0)


def reconcile(
    journal: Journal,
    resolver: Resolver,
    executor: Executor,
    *,
    wait: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    also: Sequence[MigrationRow] = (),
    cause: str = AFTER_RESTART,
) -> ReconcileReport:
    """Resolve open migrations, the rows of domains once in doubt and now proven (and ``also`` these
    rows), and plans; list the plans that never started (at start-up the caller submits them)."""
    report = ReconcileReport()
    wait = executor.config.execution.migration_timeout if wait is None else wait
    # domains in doubt (and copies a host brought back) judged again; the rows of those now proven
    # are closed below, and their chunks made whole
    resolver.recheck()
    held = journal.ambiguous_domains()
    also = [
        *also,
        *(r for r in journal.migrations_in_state(jr.AMBIGUOUS) if r.domain not in held),
    ]
    for row in journal.migrations_in_state(jr.PLANNED):
        journal.set_migration_state(
            row.id, jr.SKIPPED, reason="skipped: the actioner stopped before this move"
        )
        report.skipped.append(row.domain)
    steps: set[tuple[int, int]] = set()
    for row in [*journal.migrations_in_state(jr.RUNNING), *also]:
        why = cause if row.state == jr.RUNNING else AFTER_DOUBT
        resolution = _resolve_after_jobs(resolver, row.domain, wait, sleep, why)
        _close_row(journal, row, resolution, report, why)
        if row.kind == jr.MOVE:
            steps.add((row.plan_id, row.step))
    # a chunk whose rollback failed earlier is tried again, every pass, until it is whole
    steps |= {(r.plan_id, r.step) for r in journal.migrations_in_state(jr.SPLIT)}
    for plan_id, step in sorted(steps):
        _make_chunk_whole(journal, resolver, executor, report, plan_id=plan_id, step=step)
    for plan in journal.plans_in_state(jr.PLAN_RUNNING):
        journal.set_plan_state(
            plan.id,
            "interrupted",
            detail="ended without its outcome journaled (the actioner stopped, or its journal failed)",
        )
        report.interrupted_plans.append(plan.id)
    report.requeued_plans = [p.id for p in journal.plans_in_state(jr.PLAN_QUEUED)]
    if any((report.done, report.failed, report.ambiguous, report.rolled_back, report.split)):
        log.warning("reconcile: %s", report)
    return report


def recheck(journal: Journal, resolver: Resolver, executor: Executor) -> ReconcileReport:
    """The periodic pass, run by the worker between plans (so no migration of this process is in
    flight): the reconcile again, without waiting for jobs (a job still running is judged next time)."""
    executor.journal_late_rollbacks()
    return reconcile(
        journal,
        resolver,
        executor,
        wait=0.0,
        sleep=lambda _s: None,
        cause=AFTER_JOURNAL_FAILURE,
    )


def _close_row(
    journal: Journal,
    row: MigrationRow,
    resolution: Resolution,
    report: ReconcileReport,
    cause: str,
) -> None:
    if not resolution.done:
        journal.set_migration_state(
            row.id,
            jr.AMBIGUOUS,
            reason=f"reconciled ({cause}): state not provable, left untouched",
            error=resolution.detail,
        )
        report.ambiguous.append(row.domain)
        return
    if resolution.verdict.action is Action.RESUME:
        report.resumed.append(row.domain)
    if resolution.host == row.destination:
        journal.set_migration_state(
            row.id, jr.DONE, reason=f"reconciled ({cause}): {resolution.detail}"
        )
        report.done.append(row.domain)
    else:
        journal.set_migration_state(
            row.id,
            jr.FAILED,
            error=f"not moved ({cause}); {resolution.detail}",
        )
        report.failed.append(row.domain)


def _make_chunk_whole(
    journal: Journal,
    resolver: Resolver,
    executor: Executor,
    report: ReconcileReport,
    *,
    plan_id: int,
    step: int,
) -> None:
    """A crash between members can leave a chunk split: move the moved ones back to the source."""
    rows = [r for r in journal.migrations(plan_id) if r.step == step and r.kind == jr.MOVE]
    if not rows:
        return
    source, destination, chunk = rows[0].source, rows[0].destination, rows[0].chunk
    held = journal.ambiguous_domains()
    if any(r.domain in held for r in rows):
        if any(r.domain not in held for r in rows):
            report.split.append(chunk)
            log.critical(
                "chunk %s: a member is ambiguous; the chunk is left as it is until it is proven",
                chunk,
            )
        return
    resolutions = {r.domain: resolver.resolve(r.domain, "reconcile: chunk check") for r in rows}
    where = {domain: resolution.host for domain, resolution in resolutions.items()}
    unknown = sorted(domain for domain, host in where.items() if host is None)
    hosts = {host for host in where.values() if host is not None}
    if unknown or (len(hosts) > 1 and hosts - {source, destination}):
        # A member that cannot be located (its host does not answer: it was just marked ambiguous)
        # says nothing of whether the chunk is whole, and one split off to a third host is not this
        # move's to mend: the rows stay as they are, and the next pass judges the chunk again.
        report.split.append(chunk)
        log.critical(
            "chunk %s: %s; the chunk is left as it is until every member is proven",
            chunk,
            # why each cannot be located: the operator's lead (a host down, a migration job of
            # libvirt's that does not end, ...)
            "; ".join(f"{d} cannot be located ({_why(resolutions[d])})" for d in unknown)
            if unknown
            else f"its members run on {', '.join(sorted(hosts))}",
        )
        return
    at_destination = [r for r in rows if where[r.domain] == destination]
    on_source = [r for r in rows if where[r.domain] == source]
    if not (at_destination and on_source):
        # whole, on the source or on the destination: a member journaled split is not split any more
        for row in rows:
            if row.state == jr.SPLIT and where[row.domain] in (source, destination):
                state = jr.DONE if where[row.domain] == destination else jr.ROLLED_BACK
                journal.set_migration_state(row.id, state, reason="the chunk is whole again")
        return
    log.warning(
        "chunk %s split after restart; moving %s back to %s",
        chunk,
        ", ".join(r.domain for r in at_destination),
        source,
    )
    why = "rolled back by the reconcile: the chunk was split"
    for row in at_destination:
        move = Migration(row.domain, source, destination, chunk, row.reason)
        result = executor.roll_back(plan_id, move, why)
        if result.ok:
            journal.set_migration_state(row.id, jr.ROLLED_BACK, reason=why)
            report.rolled_back.append(row.domain)
        else:
            journal.set_migration_state(
                row.id,
                jr.SPLIT,
                reason="moved, then the rollback failed: the chunk is split (retried)",
                error=f"rollback failed: {result.error}",
            )
            report.split.append(row.domain)


def _why(resolution: Resolution) -> str:
    """What the resolver saw of a domain it could not place, in a few words."""
    return resolution.verdict.reason or resolution.detail or resolution.verdict.action.value
