"""Start-up reconcile: journal entries a crash left open are resolved against where libvirt says domains are.

A migration journaled ``running`` ended one way or the other while the actioner was away: it is ``done`` if the
domain runs on the destination, ``failed`` if it is still on the source. A chunk found split is made whole again
on its source. Nothing that completed is ever run again, and interrupted plans are not restarted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from actioner import journal as jr
from actioner.executor import Executor
from actioner.journal import Journal, MigrationRow
from actioner.libvirt_hosts import HostPool
from actioner.shells import sweep_incoming_shells

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What the reconcile found and did."""

    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    shells_cleared: list[str] = field(default_factory=list)
    interrupted_plans: list[int] = field(default_factory=list)
    requeued_plans: list[int] = field(default_factory=list)


def _settled_location(
    pool: HostPool, domain: str, wait: float, sleep: Callable[[float], None]
) -> list[str]:
    """Hosts the domain runs on, once no migration job of it is left in flight (bounded wait)."""
    deadline = time.monotonic() + wait
    while True:
        where = pool.locate(domain)
        running = sorted(h for h, f in where.items() if f.running_here)
        incoming = [h for h, f in where.items() if f.active and not f.running_here]
        # Nothing in flight that we can see: decide now (a domain on an unreachable host shows nowhere).
        if len(running) <= 1 and not incoming:
            return running
        if time.monotonic() >= deadline:
            return running
        sleep(1.0)


def reconcile(
    journal: Journal,
    pool: HostPool,
    executor: Executor,
    wait: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReconcileReport:
    """Resolve open migrations and plans; requeue plans that never started (the caller submits them)."""
    report = ReconcileReport()
    wait = executor.config.execution.migration_timeout if wait is None else wait
    open_rows = journal.migrations_in_state(jr.RUNNING, jr.PLANNED)
    steps: dict[tuple[int, int], list[MigrationRow]] = {}
    for row in open_rows:
        steps.setdefault((row.plan_id, row.step), []).append(row)
    for (plan_id, step), _rows in sorted(steps.items()):
        every = [r for r in journal.migrations(plan_id) if r.step == step]
        source, destination = every[0].source, every[0].destination
        at_destination: list[MigrationRow] = []
        for row in every:
            where = _settled_location(
                pool, row.domain, wait if row.state == jr.RUNNING else 0, sleep
            )
            for host in where:
                if pool.resume_if_stranded(host, row.domain):
                    report.resumed.append(row.domain)
            if row.state == jr.PLANNED:
                journal.set_migration_state(
                    row.id, jr.SKIPPED, reason="skipped: the actioner stopped before this move"
                )
                report.skipped.append(row.domain)
            elif row.state == jr.RUNNING:
                if where == [destination]:
                    problem = executor.verify(row.domain, destination, source)
                    journal.set_migration_state(
                        row.id,
                        jr.DONE,
                        reason="reconciled after restart: found on the destination",
                        error=problem or "",
                    )
                    report.done.append(row.domain)
                else:
                    journal.set_migration_state(
                        row.id,
                        jr.FAILED,
                        error=f"interrupted by an actioner restart; found on {', '.join(where) or 'no host'}",
                    )
                    report.failed.append(row.domain)
            if where == [destination]:
                at_destination.append(row)
        on_source = [r for r in every if r not in at_destination and _on(pool, r.domain, source)]
        if at_destination and on_source:
            # Split: the crash came between members. Make the chunk whole where it started.
            names = ", ".join(r.domain for r in at_destination)
            log.warning(
                "chunk %s split after restart; moving %s back to %s", every[0].chunk, names, source
            )
            for row in at_destination:
                result = executor.migrate(row.domain, destination, source)
                if result.ok:
                    journal.set_migration_state(
                        row.id,
                        jr.ROLLED_BACK,
                        reason="rolled back after restart: the chunk was split",
                    )
                    report.rolled_back.append(row.domain)
                else:
                    journal.set_migration_state(
                        row.id, jr.FAILED, error=f"rollback after restart failed: {result.error}"
                    )
                    report.split.append(row.domain)
    # A destination that died mid-migration and came back holds a paused copy of what the source resumed.
    report.shells_cleared = [f"{d}@{h}" for h, d in sweep_incoming_shells(pool)]
    for plan in journal.plans_in_state(jr.PLAN_RUNNING):
        journal.set_plan_state(
            plan.id, "interrupted", detail="the actioner stopped during this plan"
        )
        report.interrupted_plans.append(plan.id)
    report.requeued_plans = [p.id for p in journal.plans_in_state(jr.PLAN_QUEUED)]
    if any(
        (
            report.done,
            report.failed,
            report.rolled_back,
            report.split,
            report.resumed,
            report.shells_cleared,
            report.interrupted_plans,
        )
    ):
        log.warning("reconcile after restart: %s", report)
    return report


def _on(pool: HostPool, domain: str, host: str) -> bool:
    facts = pool.locate(domain).get(host)
    return facts is not None and facts.running_here
