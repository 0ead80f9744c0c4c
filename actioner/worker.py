"""The background worker: one plan at a time for the cluster, from snapshot to executed migrations."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from virtbalance import barriers
from virtbalance.actioner import journal as jr
from virtbalance.actioner.barrier_history import barrier_history
from virtbalance.actioner.emptied import EmptiedHosts
from virtbalance.actioner.executor import Executor
from virtbalance.actioner.libvirt_hosts import DomainFacts
from virtbalance.actioner.silences import SilenceError, forbidden_pairs
from virtbalance.actioner.snapshot_builder import SnapshotBuilder, SnapshotError
from virtbalance.forecast import Forecast
from virtbalance.plan import Mode, Plan
from virtbalance.planner import plan as make_plan
from virtbalance.snapshot import Snapshot

log = logging.getLogger(__name__)

Planner = Callable[..., Plan]

# A plan found stale before a move is planned again from a fresh snapshot at most this often: a cluster
# changing under every plan is reported, not chased.
STALE_REPLANS = 2


def hold(snapshot: Snapshot, ambiguous: Mapping[str, str]) -> Snapshot:
    """Pin every domain in doubt, so nothing of its chunk moves until its state is proven."""
    if not ambiguous:
        return snapshot
    domains = tuple(
        dataclasses.replace(d, pinned=True) if d.name in ambiguous else d for d in snapshot.domains
    )
    return dataclasses.replace(snapshot, domains=domains)


class Worker:
    """Consumes plan ids from a queue in one thread, so one plan executes at a time per cluster."""

    def __init__(
        self,
        *,
        builder: SnapshotBuilder,
        executor: Executor,
        planner: Planner = make_plan,
        clock: Callable[[], float] = time.time,
        recheck: Callable[[], object] | None = None,
        emptied: EmptiedHosts | None = None,
    ) -> None:
        self.builder = builder
        self.executor = executor
        # The executor's config, journal, metrics and Alertmanager: planning and executing one plan
        # must never see two different ones.
        self.config = executor.config
        self.journal = executor.journal
        self.metrics = executor.metrics
        self.alertmanager = executor.alertmanager
        # The hosts consolidation emptied: into the snapshot before planning, updated after executing.
        self.emptied = emptied
        # Judges domains in doubt again (actioner.resolver): before each plan and whenever the queue has
        # been idle for execution.recheck_interval; in this thread, so never beside a migration.
        self._recheck = recheck
        self.planner = planner
        self._clock = clock
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: int | None = None
        self._stale_runs: dict[int, int] = {}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="actioner-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking plans; the plan in flight ends after its current chunk step."""
        self._stop.set()
        self.executor.stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, plan_id: int) -> None:
        self._queue.put(plan_id)

    def pending(self) -> int:
        return self._queue.qsize()

    def drain_queue(self, timeout: float = 60.0) -> None:
        """Run queued plans in the calling thread until the queue is empty (tests, one-shot use)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                plan_id = self._queue.get_nowait()
            except queue.Empty:
                return
            if plan_id is not None:
                self.run(plan_id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                plan_id = self._queue.get(timeout=self.config.execution.recheck_interval)
            except queue.Empty:
                self._recheck_safely()
                continue
            if plan_id is None:
                continue
            try:
                self.run(plan_id)
            except Exception as exc:  # the worker must outlive any single plan
                log.exception("plan %s crashed", plan_id)
                self.metrics.plans.labels(outcome="failed").inc()
                try:
                    self.journal.set_plan_state(plan_id, "failed", detail=f"internal error: {exc}")
                except Exception:  # a journal that cannot be written (disk full) must not end us
                    log.exception("plan %s: cannot journal its failure", plan_id)

    def _recheck_safely(self) -> None:
        if self._recheck is None:
            return
        try:
            self._recheck()
        except Exception:  # a host failing mid-recheck is rechecked next time
            log.exception("periodic recheck of domains in doubt failed")

    # --- one plan -----------------------------------------------------------------------------

    def run(self, plan_id: int) -> str:
        """Plan and execute one queued plan; returns its outcome."""
        row = self.journal.plan(plan_id)
        if row.state != jr.PLAN_QUEUED:
            return row.state  # already handled (a duplicate submit, or reconciled)
        if row.cancel_requested or not self.journal.alert_firing(plan_id):
            return self._finish(plan_id, "cancelled", "the alert resolved before planning", 0.0)
        started = time.monotonic()
        self.current = plan_id
        try:
            # A host that came back since the last plan may hold copies of migrations it lost. Before
            # this plan is marked running: the recheck treats every running plan as an orphan.
            self._recheck_safely()
            self.journal.set_plan_state(plan_id, jr.PLAN_RUNNING)
            try:
                view = self.builder.build()
            except SnapshotError as exc:
                return self._finish(plan_id, "failed", f"cannot read the cluster: {exc}", started)
            now = self._clock()
            past = barrier_history(self.journal, now, self.config.policy)
            seen = view.snapshot if self.emptied is None else self.emptied.view(view.snapshot)
            snapshot = hold(barriers.annotate(seen, past), self.journal.ambiguous_domains())
            active = barriers.evaluate(self.config.policy, now, past, snapshot.domains)
            for kind, count in active.counts().items():
                self.metrics.cooldowns.labels(kind=kind).set(count)
            mode = Mode.parse(row.mode)
            missing = [h for h in row.hosts if h in view.unreachable]
            if mode.kind == "drain" and missing:
                return self._finish(
                    plan_id, "failed", f"cannot drain: {', '.join(missing)} unreachable", started
                )
            result, frozen, ineligible = self._plan(
                plan_id,
                snapshot=snapshot,
                mode=mode,
                hosts=row.hosts,
                active=active,
                facts=view.facts,
                forecast=view.forecast,
            )
            # A forecast part Prometheus could not give is said where the plan's outcome is read.
            noted = "".join(f"; {note}" for note in view.forecast_notes)
            self._count_missing_forecast(view.forecast, view.forecast_notes)
            self.metrics.unplaceable.set(len(result.unresolved))
            self.journal.set_plan_state(plan_id, jr.PLAN_RUNNING, plan_json=result.to_json(None))
            if result.empty:
                if frozen:
                    return self._finish(
                        plan_id, "frozen", "; ".join(sorted(set(frozen))) + noted, started
                    )
                if result.unresolved or ineligible:
                    reasons = "; ".join(
                        [f"{u.host}: {u.reason}" for u in result.unresolved] + ineligible
                    )
                    return self._finish(plan_id, "unresolved", reasons + noted, started)
                return self._finish(plan_id, "empty", "nothing to move" + noted, started)
            if self.alertmanager is not None and self.config.alertmanager.announce:
                self._announce(plan_id, result)
            outcome, detail = self.executor.execute(plan_id, result, snapshot)
            detail += noted
            if self.emptied is not None:
                marked, _ = self.emptied.after(plan_id, result, snapshot)
                if marked:
                    detail += f"; emptied {', '.join(marked)} (may be powered off)"
            if self.alertmanager is not None and self.config.alertmanager.announce:
                self.alertmanager.retire(result.migrations, plan_id)
            if outcome == "stale":
                return self._requeue(plan_id, detail, started)
            if outcome == "executed" and result.unresolved:
                detail += "; unresolved: " + "; ".join(
                    f"{u.host}: {u.reason}" for u in result.unresolved
                )
            return self._finish(plan_id, outcome, detail, started)
        finally:
            self.current = None

    def _count_missing_forecast(self, forecast: Forecast | None, notes: tuple[str, ...]) -> None:
        """Count the parts of the forecast this plan lacked; a policy without one lacks nothing."""
        if not notes:
            return
        if forecast is None:
            self.metrics.plans_without_forecast.labels(part="peaks").inc()
        if forecast is None or not forecast.averages:
            self.metrics.plans_without_forecast.labels(part="averages").inc()

    def _plan(
        self,
        plan_id: int,
        *,
        snapshot: Snapshot,
        mode: Mode,
        hosts: tuple[str, ...],
        active: barriers.Barriers,
        facts: Mapping[str, DomainFacts],
        forecast: Forecast | None = None,
    ) -> tuple[Plan, list[str], list[str]]:
        """Plan; forbid silenced moves and destinations missing a chunk's links; replan (bounded).

        Returns the plan, the freezes that shaped it and the destinations found ineligible.
        """
        relieve = frozenset(hosts) if mode.kind == "relieve" and hosts else None
        frozen: dict[tuple[str, str], str] = {}
        ineligible: dict[tuple[str, str], str] = {}
        result = Plan(mode=mode)
        for _ in range(self.config.execution.replan_rounds + 1):
            result = self.planner(
                snapshot,
                self.config.policy,
                mode,
                relieve_hosts=relieve,
                forbidden=frozenset(frozen) | frozenset(ineligible),
                max_migrations=active.remaining_hourly,
                clock=time.monotonic,
                barriers=active,
                forecast=forecast,
            )
            new_frozen: dict[tuple[str, str], str] = {}
            if self.alertmanager is not None:
                try:
                    silences = self.alertmanager.active_silences()
                except SilenceError as exc:
                    # Unknown freeze state: plan nothing rather than move something an operator froze.
                    return (
                        Plan(mode=mode, unresolved=result.unresolved),
                        [f"freeze state unknown: {exc}"],
                        [],
                    )
                new_frozen = forbidden_pairs(silences, result.migrations)
            new_ineligible = self.executor.ineligible_destinations(result, facts)
            new_frozen = {k: v for k, v in new_frozen.items() if k not in frozen}
            new_ineligible = {k: v for k, v in new_ineligible.items() if k not in ineligible}
            if not new_frozen and not new_ineligible:
                break
            frozen.update(new_frozen)
            ineligible.update(new_ineligible)
            log.info(
                "plan %s: replanning without %d silenced and %d ineligible move(s)",
                plan_id,
                len(new_frozen),
                len(new_ineligible),
            )
        return (
            result,
            [f"frozen: {d}->{t}: {why}" for (d, t), why in frozen.items()],
            sorted({f"{t} not eligible: {why}" for (_d, t), why in ineligible.items()}),
        )

    def _announce(self, plan_id: int, result: Plan) -> None:
        assert self.alertmanager is not None
        delay = self.config.alertmanager.announce_delay
        try:
            self.alertmanager.announce(result.migrations, delay * 2 + 60, plan_id)
        except SilenceError as exc:
            log.warning("plan %s: announce failed: %s", plan_id, exc)
        log.info("plan %s announced; waiting %.0f s for vetoes", plan_id, delay)
        self._stop.wait(delay)

    def _requeue(self, plan_id: int, detail: str, started: float) -> str:
        """A step found the plan's facts stale: plan again from a fresh snapshot (bounded)."""
        runs = self._stale_runs.get(plan_id, 0) + 1
        if runs > STALE_REPLANS:
            self._stale_runs.pop(plan_id, None)
            return self._finish(
                plan_id,
                "unresolved",
                f"{detail}; still stale after {STALE_REPLANS} fresh plans",
                started,
            )
        self._stale_runs[plan_id] = runs
        log.error(
            "plan %s was made on stale facts (%s); planning it again from a fresh snapshot (%d of %d)",
            plan_id,
            detail,
            runs,
            STALE_REPLANS,
        )
        self.journal.set_plan_state(plan_id, jr.PLAN_QUEUED, detail=f"requeued, stale: {detail}")
        self.submit(plan_id)
        return jr.PLAN_QUEUED

    def _finish(self, plan_id: int, outcome: str, detail: str, started: float) -> str:
        self._stale_runs.pop(plan_id, None)
        self.journal.set_plan_state(plan_id, outcome, detail=detail)
        self.metrics.plans.labels(outcome=outcome).inc()
        if started:
            self.metrics.plan_duration.observe(time.monotonic() - started)
        if outcome in ("executed", "empty", "dry_run"):
            self.metrics.last_success.set(self._clock())
        log.info("plan %s: %s (%s)", plan_id, outcome, detail)
        return outcome

    def status(self) -> dict[str, Any]:
        return {"alive": self.alive, "current_plan": self.current, "queued": self.pending()}
