"""Journal, executor rails, worker and start-up reconcile against an in-memory cluster (libvirt faked)."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from types import SimpleNamespace

import libvirt
import pytest

from tests.actioner_fixtures import actioner_config, running_facts
from virtbalance import contract as c
from virtbalance.actioner import journal as jr
from virtbalance.actioner.executor import Executor, MoveResult, Refusal, SkipKind, StepState
from virtbalance.actioner.journal import AlertKey, Journal
from virtbalance.actioner.libvirt_hosts import HostUnreachableError
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.reconcile import recheck, reconcile
from virtbalance.actioner.silences import Matcher, Silence, SilenceError
from virtbalance.actioner.snapshot_builder import ClusterView, SnapshotError
from virtbalance.actioner.worker import STALE_REPLANS, Worker
from virtbalance.domain_metadata import Placement
from virtbalance.forecast import Forecast
from virtbalance.plan import Migration, Mode, Plan
from virtbalance.snapshot import DomainState, HostState, Snapshot

MiB = 1024 * 1024


class FakeCluster:
    """Where each domain runs; duck-types the parts of HostPool the executor and reconcile use."""

    watch = None  # no libvirt events: nothing cached to doubt

    def __init__(self, placement, networks=None):
        self.placement = dict(placement)
        self.networks = networks or {}
        self.metadata: dict[str, Placement] = {}  # what setMetadata put on a domain
        # Only the host names are read (by the resolver, which asks every host).
        self.config = SimpleNamespace(host_names=("hv1", "hv2", "hv3"))
        self.down: set[str] = set()  # hosts whose libvirtd does not answer

    def facts(self, name, host):
        return running_facts(
            name,
            host,
            bridges=tuple(self.networks.get(name, ())),
            placement=self.metadata.get(name),
        )

    def locate(self, domain):
        host = self.placement.get(domain)
        return {} if host is None else {host: self.facts(domain, host)}

    def reachable(self, host):
        return True

    def capacity(self, host):
        return 4.0, 4096 * MiB

    def domains(self, host):
        return [self.facts(n, h) for n, h in self.placement.items() if h == host]

    def private_bridges(self, facts):
        return facts.bridges

    def private_networks(self, facts):
        return ()

    def private_links(self, facts):
        return tuple(sorted(facts.bridges))

    def connection(self, host):
        if host in self.down:
            raise HostUnreachableError(f"{host}: cannot connect: Connection refused")
        return FakeConn(self, host)

    def drop(self, host):
        pass


class FakeConn:
    def __init__(self, cluster, host):
        self.cluster = cluster
        self.host = host

    def interfaceLookupByName(self, name):
        return object()  # every bridge exists

    def listAllDomains(self, flags):
        return []  # nothing defined without running

    def lookupByName(self, name):
        if self.cluster.placement.get(name) != self.host:
            error = libvirt.libvirtError(f"Domain not found: {name}")
            error.err = (libvirt.VIR_ERR_NO_DOMAIN, 0, f"Domain not found: {name}")
            raise error
        return FakeDom()


class FakeDom:
    """A running, persistent domain with no job: what the resolver sees of a settled domain."""

    def state(self):
        return [libvirt.VIR_DOMAIN_RUNNING, 1]

    def isActive(self):
        return 1

    def isPersistent(self):
        return 1

    def jobInfo(self):
        return [libvirt.VIR_DOMAIN_JOB_NONE] + [0] * 11

    def UUIDString(self):
        return "6d1f0c1e-0000"


class FakeExecutor(Executor):
    """The real executor with libvirt's migrate replaced by a move in the fake cluster."""

    def __init__(self, *, cluster, fail=(), **kwargs):
        super().__init__(pool=cluster, **kwargs)
        self.cluster = cluster
        self.fail = set(fail)
        self.calls = []

    def migrate(self, domain, source, destination, *, abortable=True):
        self.calls.append((domain, source, destination))
        if (domain, destination) in self.fail:
            return MoveResult(domain, False, 0.1, time.monotonic(), "refused by the destination")
        assert self.cluster.placement[domain] == source
        self.cluster.placement[domain] = destination
        return MoveResult(domain, True, 0.1, time.monotonic())

    def verify(self, domain, destination, source):
        return None


CHUNK = ("app1", "db1", "web1")


def snapshot(cluster, cpu=None):
    cpu = cpu or {}
    domains = tuple(
        DomainState(
            name=n,
            host=h,
            vcpus=1,
            cpu_used=cpu.get(n, 0.3),
            memory_bytes=64 * MiB,
            private_networks=tuple(cluster.networks.get(n, ())),
        )
        for n, h in sorted(cluster.placement.items())
    )
    hosts = tuple(
        HostState(
            name=h,
            cpus=1.0 if h == "hv1" else 2.0,
            memory_bytes=4096 * MiB,
            cpu_used=sum(d.cpu_used for d in domains if d.host == h),
            memory_used_bytes=sum(d.memory_bytes for d in domains if d.host == h),
        )
        for h in ("hv1", "hv2", "hv3")
    )
    return Snapshot(time=time.time(), hosts=hosts, domains=domains)


@pytest.fixture
def world(tmp_path):
    config = actioner_config(tmp_path)
    cluster = FakeCluster(
        {"web1": "hv1", "app1": "hv1", "db1": "hv1", "batch1": "hv2"},
        networks={"web1": ["lan11"], "app1": ["lan11", "lan12"], "db1": ["lan12"]},
    )
    journal = Journal(config.journal_path)
    yield config, cluster, journal
    journal.close()


def chunk_plan(destination="hv3"):
    return Plan(
        mode=Mode("relieve"),
        migrations=tuple(
            Migration(d, "hv1", destination, "lan11+lan12", "relieve hv1") for d in CHUNK
        ),
    )


def alert_plan(journal, host="hv1", fingerprint="f1"):
    return journal.record_firing([AlertKey(fingerprint, "2026-01-01T00:00:00Z", "g", host)])


def executing(world, config=None, metrics=None, cls=None, **fakes):
    """A FakeExecutor (or ``cls``) over the world (its config unless ``config`` is given) and hv1's
    alert plan."""
    world_config, cluster, journal = world
    executor = (cls or FakeExecutor)(
        cluster=cluster,
        config=config or world_config,
        journal=journal,
        metrics=metrics or Metrics(),
        **fakes,
    )
    return executor, alert_plan(journal)


def refused(executor, plan_id, state, outcome):
    """Execute the chunk plan on ``state``, expecting ``outcome`` and no migration; the detail."""
    got, detail = executor.execute(plan_id, chunk_plan(), state)
    assert (got, executor.calls) == (outcome, []), detail
    return detail


def test_a_chunk_moves_together_and_is_journaled_done(world):
    _config, cluster, journal = world
    metrics = Metrics()
    executor, plan_id = executing(world, metrics=metrics)
    outcome, detail = executor.execute(plan_id, chunk_plan(), snapshot(cluster))
    assert outcome == "executed", detail
    assert {cluster.placement[d] for d in CHUNK} == {"hv3"}
    rows = journal.migrations(plan_id)
    assert [(r.domain, r.state) for r in rows] == [(d, "done") for d in CHUNK]
    assert all(r.started is not None and r.finished >= r.started for r in rows)
    assert metrics.migrations.labels(result="done")._value.get() == 3


def test_a_failed_member_moves_the_others_back(world):
    _config, cluster, journal = world
    metrics = Metrics()
    executor, plan_id = executing(world, metrics=metrics, fail={("db1", "hv3")})
    outcome, detail = executor.execute(plan_id, chunk_plan(), snapshot(cluster))
    assert outcome == "failed"
    assert "db1: refused by the destination" in detail
    assert {cluster.placement[d] for d in CHUNK} == {"hv1"}
    rows = journal.migrations(plan_id)
    states = {r.domain: (r.state, r.error) for r in rows if r.kind == jr.MOVE}
    assert states["db1"] == ("failed", "refused by the destination")
    assert states["web1"][0] == states["app1"][0] == "rolled_back"
    assert ("web1", "hv3", "hv1") in executor.calls and ("app1", "hv3", "hv1") in executor.calls
    # every move back is a migration of its own, journaled (and counted by the cooldowns)
    back = sorted(
        (r.domain, r.source, r.destination, r.state) for r in rows if r.kind == jr.ROLLBACK
    )
    assert back == [("app1", "hv3", "hv1", "done"), ("web1", "hv3", "hv1", "done")]
    moved = {(r.domain, r.source, r.destination) for r in journal.completed_moves(0)}
    assert {("web1", "hv1", "hv3"), ("web1", "hv3", "hv1")} <= moved
    assert metrics.migrations.labels(result="rolled_back")._value.get() == 2
    assert metrics.chunk_split._sum.get() > 0


class ReportedFailedAfterFinish(FakeExecutor):
    """db1's migration ends in a libvirt error after the destination started it, and its source
    libvirtd, back from a restart, still shows a copy of it: the real executor's judgement of that."""

    def migrate(self, domain, source, destination, *, abortable=True):
        if domain != "db1":
            return super().migrate(domain, source, destination, abortable=abortable)
        self.calls.append((domain, source, destination))
        self.cluster.placement[domain] = destination
        return self._after_failure(
            domain,
            source=source,
            destination=destination,
            error="Unable to read from monitor: Connection reset by peer",
            seconds=2.0,
            aborted=False,
        )

    def verify(self, domain, destination, source):
        return f"{domain} still active on {source} after the migration" if domain == "db1" else None


def test_a_member_running_on_the_destination_with_a_copy_left_on_the_source_moves_nothing_back(
    world, caplog
):
    executor, plan_id = executing(world, cls=ReportedFailedAfterFinish)
    _config, cluster, journal = world
    outcome, detail = executor.execute(plan_id, chunk_plan(), snapshot(cluster))
    # Neither "moved" nor "not moved" is proven for db1: no member is moved back around it, so the
    # chunk stays whole on hv3 and db1's row stays open for the recheck.
    assert outcome == "failed"
    assert {cluster.placement[d] for d in CHUNK} == {"hv3"}
    assert all(destination == "hv3" for _d, _s, destination in executor.calls)
    states = {r.domain: (r.state, r.error) for r in journal.migrations(plan_id)}
    assert states["db1"][0] == jr.AMBIGUOUS
    assert "db1 still active on hv1 after the migration" in states["db1"][1]
    assert "left untouched: it runs on hv3" in states["db1"][1]
    assert states["app1"][0] == states["web1"][0] == jr.DONE
    assert "in doubt, left as it is" in detail
    assert any(r.levelname == "CRITICAL" and "db1" in r.getMessage() for r in caplog.records)
    # The recheck proves it (here: it runs on hv3 alone) and closes the row; nothing moved back.
    recheck(journal, executor.resolver, executor)
    states = {r.domain: r.state for r in journal.migrations(plan_id)}
    assert states == {"app1": jr.DONE, "db1": jr.DONE, "web1": jr.DONE}
    assert {cluster.placement[d] for d in CHUNK} == {"hv3"}


def test_a_failed_rollback_is_reported_as_a_split(world, caplog):
    _config, cluster, journal = world
    executor, plan_id = executing(world, fail={("db1", "hv3"), ("web1", "hv1")})
    outcome, detail = executor.execute(plan_id, chunk_plan(), snapshot(cluster))
    assert outcome == "failed"
    assert detail.count("rollback failed") == 1
    assert "SPLIT" in caplog.text
    states = {r.domain: r.state for r in journal.migrations(plan_id) if r.kind == jr.MOVE}
    assert states == {"app1": "rolled_back", "db1": "failed", "web1": "split"}
    rollbacks = {r.domain: r.state for r in journal.migrations(plan_id) if r.kind == jr.ROLLBACK}
    assert rollbacks == {"app1": "done", "web1": "failed"}

    # the recheck tries the rollback again until the chunk is whole
    executor.fail.clear()
    report = recheck(journal, executor.resolver, executor)
    assert report.rolled_back == ["web1"]
    assert {cluster.placement[d] for d in CHUNK} == {"hv1"}
    states = {r.domain: r.state for r in journal.migrations(plan_id) if r.kind == jr.MOVE}
    assert states == {"app1": "rolled_back", "db1": "failed", "web1": "rolled_back"}


def test_dry_run_moves_nothing(world, tmp_path):
    _config, cluster, journal = world
    executor, plan_id = executing(world, config=actioner_config(tmp_path, dry_run=True))
    outcome, _ = executor.execute(plan_id, chunk_plan(), snapshot(cluster))
    assert outcome == "dry_run"
    assert executor.calls == []
    assert {r.state for r in journal.migrations(plan_id)} == {"skipped"}


def test_resolved_alert_cancels_the_remaining_steps(world):
    _config, cluster, journal = world
    executor, plan_id = executing(world)
    journal.set_plan_state(plan_id, jr.PLAN_RUNNING)
    assert journal.record_resolved([AlertKey("f1", "2026-01-01T00:00:00Z", "g", "hv1")]) == [
        plan_id
    ]
    two_steps = Plan(
        mode=Mode("relieve"),
        migrations=(
            *chunk_plan().migrations,
            Migration("batch9", "hv1", "hv2", "domain:batch9", "r"),
        ),
    )
    outcome, detail = executor.execute(plan_id, two_steps, snapshot(cluster))
    assert outcome == "cancelled"
    assert "resolved" in detail
    assert executor.calls == []
    assert {r.state for r in journal.migrations(plan_id)} == {"skipped"}


def test_precheck_refuses_a_domain_that_left_the_source(world):
    _, cluster, _ = world
    executor, plan_id = executing(world)
    cluster.placement["db1"] = "hv2"  # someone moved it meanwhile
    assert "db1 is no longer only on hv1 (found on hv2)" in refused(
        executor, plan_id, snapshot(cluster), "unresolved"
    )


def test_each_refused_pre_condition_is_typed_and_the_step_is_skipped_with_its_reason(world):
    _config, cluster, journal = world
    executor, plan_id = executing(world)
    group = chunk_plan().migrations
    busy = snapshot(cluster, cpu={"web1": 1.2, "app1": 1.2, "db1": 1.2})
    refusal = executor.precheck(plan_id, group, busy, [])
    assert refusal == Refusal(
        SkipKind.PRECONDITION,
        "precondition: hv3 has no CPU room (3.60 of 4 cores above cpu_high)",
    )
    assert executor.precheck(plan_id, group, snapshot(cluster), []) is None
    ids = executor.record(plan_id, chunk_plan())[0]
    outcome = executor.run_step(plan_id, ids, group, busy, [])
    assert (outcome.state, outcome.skip, outcome.reason) == (
        StepState.SKIPPED,
        SkipKind.PRECONDITION,
        refusal.reason,
    )
    assert executor.calls == []
    assert {r.state for r in journal.migrations(plan_id)} == {jr.SKIPPED}
    journal.record_resolved([AlertKey("f1", "2026-01-01T00:00:00Z", "g", "hv1")])
    cancelled = executor.precheck(plan_id, group, snapshot(cluster), [])
    assert cancelled is not None and cancelled.kind is SkipKind.CANCELLED


def test_precheck_refuses_a_destination_without_room(world):
    _, cluster, _ = world
    executor, plan_id = executing(world)
    busy = snapshot(cluster, cpu={"web1": 1.2, "app1": 1.2, "db1": 1.2})
    assert "hv3 has no CPU room" in refused(executor, plan_id, busy, "unresolved")


def test_cooldown_from_an_earlier_plan_blocks_the_move(world, tmp_path):
    _config, cluster, journal = world
    config = actioner_config(tmp_path, policy={"host_settle": "0s"})  # leave only the VM cooldown
    executor = FakeExecutor(cluster=cluster, config=config, journal=journal, metrics=Metrics())
    earlier = journal.create_plan("drain", "drain:hv9", ["hv9"])
    row = journal.add_migration(
        plan_id=earlier, step=0, domain="web1", chunk="lan11", source="hv2", destination="hv1"
    )
    journal.set_migration_state(row, jr.DONE)
    plan_id = alert_plan(journal)
    assert "cooldown: vm_cooldown: web1 moved" in refused(
        executor, plan_id, snapshot(cluster), "unresolved"
    )


class FakeAlertmanager:
    def __init__(self, silences=(), error=None):
        self.silences = list(silences)
        self.error = error

    def active_silences(self):
        if self.error:
            raise SilenceError(self.error)
        return self.silences


FREEZE_DB1 = Silence(
    "s-db1",
    (Matcher("alertname", "VirtBalanceMigration"), Matcher("domain", "db1")),
)


def test_a_silence_set_after_planning_still_stops_the_move(world):
    _, cluster, _ = world
    executor, plan_id = executing(world, alertmanager=FakeAlertmanager([FREEZE_DB1]))
    assert "s-db1" in refused(executor, plan_id, snapshot(cluster), "frozen")


def test_unknown_freeze_state_moves_nothing(world):
    _, cluster, _ = world
    executor, plan_id = executing(world, alertmanager=FakeAlertmanager(error="connection refused"))
    assert "freeze state unknown" in refused(executor, plan_id, snapshot(cluster), "frozen")


class FakeBuilder:
    def __init__(self, cluster, cpu):
        self.cluster = cluster
        self.cpu = cpu

    def build(self):
        return ClusterView(snapshot(self.cluster, self.cpu), {}, (), "test")


def overloaded_world(world, alertmanager=None):
    config, cluster, journal = world
    metrics = Metrics()
    executor = FakeExecutor(
        cluster=cluster, config=config, journal=journal, metrics=metrics, alertmanager=alertmanager
    )
    builder = FakeBuilder(cluster, {"web1": 0.3, "app1": 0.3, "db1": 0.3, "batch1": 0.05})
    worker = Worker(builder=builder, executor=executor)
    return worker, executor, metrics


def test_worker_plans_with_the_real_planner_and_executes(world):
    worker, executor, metrics = overloaded_world(world)
    _config, cluster, journal = world
    plan_id = alert_plan(journal)
    assert worker.run(plan_id) == "executed"
    assert len({cluster.placement[d] for d in CHUNK}) == 1
    assert cluster.placement["web1"] != "hv1"
    assert journal.plan(plan_id).state == "executed"
    assert metrics.plans.labels(outcome="executed")._value.get() == 1
    assert worker.run(plan_id) == "executed"  # a second submit of the same plan does nothing
    assert len(executor.calls) == 3


class ForecastBuilder(FakeBuilder):
    """Snapshots with a forecast (or its notes), as the snapshot builder reads them from Prometheus."""

    def __init__(self, cluster, cpu, forecast, notes=()):
        super().__init__(cluster, cpu)
        self.forecast = forecast
        self.notes = notes

    def build(self):
        view = super().build()
        return dataclasses.replace(view, forecast=self.forecast, forecast_notes=self.notes)


def bursty_world(world, forecast, notes=()):
    """hv1 overloaded by its chunk; hv3 idle now but for burst1, which peaked at a whole core."""
    config, cluster, journal = world
    cluster.placement["burst1"] = "hv3"
    executor = FakeExecutor(cluster=cluster, config=config, journal=journal, metrics=Metrics())
    cpu = {"web1": 0.3, "app1": 0.3, "db1": 0.3, "batch1": 0.05, "burst1": 0.01}
    worker = Worker(builder=ForecastBuilder(cluster, cpu, forecast, notes), executor=executor)
    return worker, cluster, journal


def test_without_a_forecast_the_chunk_goes_to_the_host_idlest_on_its_sample(world):
    worker, cluster, journal = bursty_world(world, None)
    assert worker.run(alert_plan(journal)) == "executed"
    assert {cluster.placement[d] for d in CHUNK} == {"hv3"}


def test_a_destination_is_refused_on_its_recent_peak(world):
    # hv3's peak (1 core of 2) plus the chunk's 0.9 is 95% of it, above cpu_high: hv2 takes the chunk.
    forecast = Forecast(domains={"burst1": 1.0}, hosts={"hv3": 1.0})
    worker, cluster, journal = bursty_world(world, forecast)
    plan_id = alert_plan(journal)
    assert worker.run(plan_id) == "executed"
    assert {cluster.placement[d] for d in CHUNK} == {"hv2"}
    planned = json.loads(journal.plan(plan_id).plan_json)
    assert {m["destination"] for m in planned["migrations"]} == {"hv2"}


def test_what_the_forecast_lacks_is_said_in_the_plans_outcome(world):
    note = "no forecast: Prometheus holds 5m of the 1h forecast_window; destinations judged on the last sample"
    worker, _cluster, journal = bursty_world(world, None, (note,))
    plan_id = alert_plan(journal)
    assert worker.run(plan_id) == "executed"
    assert journal.plan(plan_id).detail.endswith("; " + note)
    assert missing_forecast(worker) == {"peaks": 1.0, "averages": 1.0}


def test_a_forecast_without_averages_is_counted_as_lacking_only_them(world):
    peaks = Forecast(domains={"burst1": 0.5}, hosts={"hv3": 0.5})
    worker, _cluster, journal = bursty_world(
        world, peaks, ("no averages: 20m of the 1h balance_window",)
    )
    assert worker.run(alert_plan(journal)) == "executed"
    assert missing_forecast(worker) == {"peaks": 0.0, "averages": 1.0}


def test_a_whole_forecast_is_not_counted_as_lacking(world):
    worker, _cluster, journal = bursty_world(world, Forecast({}, {}, {"burst1": 0.2}))
    assert worker.run(alert_plan(journal)) == "executed"
    assert missing_forecast(worker) == {"peaks": 0.0, "averages": 0.0}


def missing_forecast(worker) -> dict[str, float]:
    """virtbalance_plans_without_forecast_total by part, as the actioner serves it."""
    return {
        part: worker.metrics.registry.get_sample_value(
            c.PLANS_WITHOUT_FORECAST + "_total", {"part": part}
        )
        for part in ("peaks", "averages")
    }


def test_worker_replans_around_a_pinned_member_and_reports_the_freeze(world):
    worker, executor, _metrics = overloaded_world(world, FakeAlertmanager([FREEZE_DB1]))
    _config, cluster, journal = world
    plan_id = alert_plan(journal)
    outcome = worker.run(plan_id)
    assert outcome == "frozen"
    assert "s-db1" in journal.plan(plan_id).detail
    assert executor.calls == []
    assert {cluster.placement[d] for d in CHUNK} == {"hv1"}


def test_worker_skips_a_plan_whose_alert_resolved_while_queued(world):
    worker, executor, _metrics = overloaded_world(world)
    _config, _cluster, journal = world
    plan_id = alert_plan(journal)
    journal.record_resolved([AlertKey("f1", "2026-01-01T00:00:00Z", "g", "hv1")])
    assert worker.run(plan_id) == "cancelled"
    assert executor.calls == []


def test_journal_dedupes_alert_instances(world):
    _config, _cluster, journal = world
    key = AlertKey("f1", "2026-01-01T00:00:00Z", "g", "hv1")
    first = journal.record_firing([key])
    assert first is not None
    assert journal.record_firing([key]) is None
    other = AlertKey("f2", "2026-01-01T00:00:00Z", "g", "hv2")
    second = journal.record_firing([key, other])
    assert journal.plan(second).hosts == ("hv2",)
    with pytest.raises(ValueError, match="unknown migration state"):
        journal.set_migration_state(1, "teleported")


def test_a_frozen_plan_lets_the_next_notification_act(tmp_path):
    clock = [1000.0]
    journal = Journal(tmp_path / "j.sqlite", clock=lambda: clock[0])
    key = AlertKey("f1", "2026-01-01T00:00:00Z", "g", "hv1")
    first = journal.record_firing([key], replan_after=600)
    # Re-sent while the plan waits or runs: a duplicate, whatever the settle window.
    journal.set_plan_state(first, jr.PLAN_RUNNING)
    clock[0] += 3600
    assert journal.record_firing([key], replan_after=600) is None
    # A silence held it: the very next notification of the same alert gets a new plan.
    journal.set_plan_state(first, "frozen")
    second = journal.record_firing([key], replan_after=600)
    assert second is not None and second != first
    assert journal.plan(second).hosts == ("hv1",)
    assert journal.record_firing([key], replan_after=600) is None
    journal.close()


def test_an_executed_plan_is_followed_up_only_after_the_settle_window(tmp_path):
    clock = [1000.0]
    journal = Journal(tmp_path / "j.sqlite", clock=lambda: clock[0])
    key = AlertKey("f1", "2026-01-01T00:00:00Z", "g", "hv1")
    first = journal.record_firing([key], replan_after=600)
    journal.set_plan_state(first, "executed")
    clock[0] += 599
    # Prometheus still reports the relieved host overloaded: its rates lag the move.
    assert journal.record_firing([key], replan_after=600) is None
    clock[0] += 1
    follow_up = journal.record_firing([key], replan_after=600)
    assert follow_up is not None and follow_up != first
    journal.close()


def reconcile_world(world, **members):
    """A running plan for the chunk journaled as ``members`` say: domain=(state, host it runs on now)."""
    _config, cluster, journal = world
    executor, plan_id = executing(world)
    journal.set_plan_state(plan_id, jr.PLAN_RUNNING)
    for domain, (state, host) in members.items():
        row = journal.add_migration(
            plan_id=plan_id,
            step=0,
            domain=domain,
            chunk="lan11+lan12",
            source="hv1",
            destination="hv3",
        )
        journal.set_migration_state(row, state)
        cluster.placement[domain] = host
    return plan_id, executor


def restart(journal, executor):
    """Reconcile as the actioner does when it starts, without waiting for a running migration."""
    return reconcile(journal, executor.resolver, executor, wait=0, sleep=lambda s: None)


def test_reconcile_marks_completed_moves_done_and_never_repeats_them(world):
    _config, _cluster, journal = world
    plan_id, executor = reconcile_world(
        world, web1=(jr.DONE, "hv3"), app1=(jr.RUNNING, "hv3"), db1=(jr.RUNNING, "hv3")
    )
    queued = journal.record_firing([AlertKey("f9", "t", "g", "hv2")])
    report = restart(journal, executor)
    assert report.done == ["app1", "db1"]
    assert executor.calls == []
    assert {r.domain: r.state for r in journal.migrations(plan_id)} == dict.fromkeys(CHUNK, "done")
    assert journal.plan(plan_id).state == "interrupted"
    assert report.requeued_plans == [queued]


def test_reconcile_makes_a_split_chunk_whole_on_its_source(world):
    _config, cluster, journal = world
    plan_id, executor = reconcile_world(
        world, web1=(jr.DONE, "hv3"), app1=(jr.RUNNING, "hv1"), db1=(jr.PLANNED, "hv1")
    )
    report = restart(journal, executor)
    assert executor.calls == [("web1", "hv3", "hv1")]
    assert {cluster.placement[d] for d in CHUNK} == {"hv1"}
    states = {r.domain: r.state for r in journal.migrations(plan_id) if r.kind == jr.MOVE}
    assert states == {"web1": "rolled_back", "app1": "failed", "db1": "skipped"}
    rollbacks = [(r.domain, r.state) for r in journal.migrations(plan_id) if r.kind == jr.ROLLBACK]
    assert rollbacks == [("web1", "done")]
    assert report.rolled_back == ["web1"] and report.split == []


def test_a_split_chunk_with_a_member_that_cannot_be_located_stays_split_until_it_is_proven(
    world, caplog
):
    # app1 and db1 moved to hv3, web1 never left hv1, and the rollbacks failed: hv1's libvirtd was
    # down. While hv1 does not answer, web1 cannot be located: that is no proof the chunk is whole.
    _config, cluster, journal = world
    plan_id, executor = reconcile_world(
        world, app1=(jr.SPLIT, "hv3"), db1=(jr.SPLIT, "hv3"), web1=(jr.FAILED, "hv1")
    )
    cluster.down.add("hv1")
    with caplog.at_level(logging.CRITICAL, logger="virtbalance.actioner.reconcile"):
        report = recheck(journal, executor.resolver, executor)
    # the operator is told why: the resolver's own words for web1
    [said] = [r.getMessage() for r in caplog.records if "cannot be located" in r.getMessage()]
    assert said.startswith("chunk lan11+lan12: web1 cannot be located (")
    assert "hv1" in said.split("(", 1)[1]
    moves = {r.domain: r.state for r in journal.migrations(plan_id) if r.kind == jr.MOVE}
    assert moves == {"app1": jr.SPLIT, "db1": jr.SPLIT, "web1": jr.FAILED}
    assert report.split == ["lan11+lan12"]
    assert executor.calls == []
    # hv1 answers again: web1 is proven there, and the moved members go back to it.
    cluster.down.clear()
    for _ in range(2):  # the first pass proves web1, the next makes the chunk whole
        recheck(journal, executor.resolver, executor)
    assert {cluster.placement[d] for d in CHUNK} == {"hv1"}
    moves = {r.domain: r.state for r in journal.migrations(plan_id) if r.kind == jr.MOVE}
    assert moves == {"app1": jr.ROLLED_BACK, "db1": jr.ROLLED_BACK, "web1": jr.FAILED}
    assert sorted(executor.calls) == [("app1", "hv3", "hv1"), ("db1", "hv3", "hv1")]
    assert journal.ambiguous_domains() == {}


def test_a_cluster_that_cannot_be_read_fails_the_plan_with_the_reason(world):
    worker, executor, metrics = overloaded_world(world)
    _config, _cluster, journal = world

    class Broken:
        def build(self):
            raise SnapshotError("domain web1 runs on both hv1 and hv2")

    worker.builder = Broken()
    plan_id = alert_plan(journal)
    assert worker.run(plan_id) == "failed"
    assert (
        journal.plan(plan_id).detail
        == "cannot read the cluster: domain web1 runs on both hv1 and hv2"
    )
    assert metrics.plans.labels(outcome="failed")._value.get() == 1
    assert executor.calls == []


def _fill(journal):
    """Make the journal's database full for real: SQLite answers SQLITE_FULL past max_page_count."""
    pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
    journal._db.execute(f"PRAGMA max_page_count = {pages}")
    for i in range(10_000):
        try:
            journal.add_migration(
                plan_id=0, step=0, domain=f"pad{i}" * 50, chunk="c", source="a", destination="b"
            )
        except sqlite3.OperationalError:
            return


def test_a_full_journal_reports_the_real_error(world):
    _config, _cluster, journal = world
    _fill(journal)
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        journal.add_migration(
            plan_id=0, step=0, domain="x" * 4000, chunk="c", source="a", destination="b"
        )


def test_a_full_journal_never_abandons_a_rollback(world, caplog):
    config, cluster, journal = world
    executor = FakeExecutor(
        cluster=cluster, fail={("db1", "hv3")}, config=config, journal=journal, metrics=Metrics()
    )
    plan_id = alert_plan(journal)
    real_migrate = executor.migrate

    def migrate_then_fill(domain, source, destination, **kwargs):
        result = real_migrate(domain, source, destination, **kwargs)
        if domain == "db1":  # the last member failed: the disk fills before the rollbacks
            _fill(journal)
        return result

    executor.migrate = migrate_then_fill
    executor.config = dataclasses.replace(
        config, execution=dataclasses.replace(config.execution, max_concurrent=1)
    )
    outcome, _detail = executor.execute(plan_id, chunk_plan(), snapshot(cluster))
    assert outcome == "failed"
    assert {cluster.placement[d] for d in CHUNK} == {"hv1"}, "the chunk was made whole anyway"
    assert "rolling back without a journal row: database or disk is full" in caplog.text

    def rollbacks():
        return [r for r in journal.migrations(plan_id) if r.kind == "rollback"]

    late = {"app1", "web1"} - {r.domain for r in rollbacks()}
    assert late, "at least one rollback ran without its row"
    # room again (the fault campaign's round 31:47): the next pass journals the rollbacks that ran,
    # so every migration libvirt made has its row (the cooldowns are read from them)
    journal._db.execute("PRAGMA max_page_count = 1073741823")
    journal._db.execute("DELETE FROM migrations WHERE plan_id = 0")
    executor.journal_late_rollbacks()
    assert sorted((r.domain, r.source, r.destination, r.state) for r in rollbacks()) == [
        ("app1", "hv3", "hv1", "done"),
        ("web1", "hv3", "hv1", "done"),
    ]
    assert {r.domain for r in rollbacks() if "journaled after it ran" in r.reason} == late
    executor.journal_late_rollbacks()  # journaled once, not again
    assert len(rollbacks()) == 2


# --- the facts the plan relied on, read again before the move ----------------------------------


class DoubtingWatch:
    """Records the hosts the executor found the snapshot's cached facts wrong about."""

    def __init__(self):
        self.doubted = []

    def doubt(self, host):
        self.doubted.append(host)


def test_a_pin_set_after_planning_stops_the_move_and_doubts_both_hosts(world):
    config, cluster, journal = world
    cluster.watch = DoubtingWatch()
    executor = FakeExecutor(cluster=cluster, config=config, journal=journal, metrics=Metrics())
    plan_id = alert_plan(journal)
    # The snapshot (from a cache the events had not updated yet) still says db1 is free to move.
    stale = snapshot(cluster)
    cluster.metadata["db1"] = Placement(pinned=True)
    refusal = executor.precheck(plan_id, chunk_plan().migrations, stale, [])
    assert refusal == Refusal(SkipKind.STALE, "stale plan: db1 is pinned now")
    assert cluster.watch.doubted == ["hv1", "hv3"]
    outcome, detail = executor.execute(plan_id, chunk_plan(), stale)
    assert (outcome, executor.calls) == ("stale", [])
    assert "stale plan: db1 is pinned now" in detail
    assert {cluster.placement[d] for d in CHUNK} == {"hv1"}


def test_a_link_added_after_planning_makes_the_chunk_stale(world):
    _, cluster, _ = world
    executor, plan_id = executing(world)
    stale = snapshot(cluster)
    cluster.placement["cache1"] = "hv1"
    cluster.networks["cache1"] = ["lan12"]  # hot-plugged into the chunk's private bridge
    refusal = executor.precheck(plan_id, chunk_plan().migrations, stale, [])
    assert refusal == Refusal(
        SkipKind.STALE,
        "stale plan: the chunk on hv1 is now lan11+lan12 (app1, cache1, db1, web1), "
        "the plan moves lan11+lan12 (app1, db1, web1)",
    )
    # A link removed splits it: moving the old members together is no longer what was planned.
    del cluster.placement["cache1"]
    cluster.networks["db1"] = []
    refusal = executor.precheck(plan_id, chunk_plan().migrations, stale, [])
    assert refusal is not None and refusal.kind is SkipKind.STALE
    assert "is now lan11+lan12 (app1, web1)" in refusal.reason
    assert executor.calls == []


def test_an_anti_affinity_key_that_arrived_on_the_destination_stops_the_move(world):
    _, cluster, _ = world
    executor, plan_id = executing(world)
    stale = snapshot(cluster)
    cluster.metadata["web1"] = Placement(anti_affinity="front")
    cluster.placement["web2"] = "hv3"
    cluster.metadata["web2"] = Placement(anti_affinity="front")
    refusal = executor.precheck(plan_id, chunk_plan().migrations, stale, [])
    assert refusal == Refusal(SkipKind.STALE, "stale plan: anti-affinity front already on hv3")
    # The same key elsewhere, or another key on the destination, is no clash.
    cluster.metadata["web2"] = Placement(anti_affinity="back")
    assert executor.precheck(plan_id, chunk_plan().migrations, stale, []) is None


class StaleOnceBuilder:
    """The first snapshot misses the metadata set meanwhile (a stale cache); later ones are fresh."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.builds = 0

    def build(self):
        self.builds += 1
        view = snapshot(self.cluster, {"web1": 0.3, "app1": 0.3, "db1": 0.3, "batch1": 0.05})
        if self.builds > 1:
            domains = tuple(
                dataclasses.replace(d, pinned=self.cluster.metadata.get(d.name, Placement()).pinned)
                for d in view.domains
            )
            view = dataclasses.replace(view, domains=domains)
        return ClusterView(view, {}, (), "test")


def test_a_stale_plan_is_requeued_and_planned_again_from_a_fresh_snapshot(world):
    config, cluster, journal = world
    executor = FakeExecutor(cluster=cluster, config=config, journal=journal, metrics=Metrics())
    builder = StaleOnceBuilder(cluster)
    worker = Worker(builder=builder, executor=executor)
    cluster.metadata["db1"] = Placement(pinned=True)
    plan_id = alert_plan(journal)
    assert worker.run(plan_id) == jr.PLAN_QUEUED
    assert journal.plan(plan_id).detail.startswith("requeued, stale: ")
    worker.drain_queue(timeout=10)
    assert builder.builds == 2
    assert executor.calls == []
    assert {cluster.placement[d] for d in CHUNK} == {"hv1"}
    row = journal.plan(plan_id)
    assert row.state == "unresolved"
    assert "db1 is pinned" in row.detail
    rows = journal.migrations(plan_id)
    assert {r.state for r in rows} == {jr.SKIPPED}
    assert all("stale plan: db1 is pinned now" in r.reason for r in rows)


def test_a_plan_stale_on_every_snapshot_ends_unresolved_after_the_bounded_replans(world):
    config, cluster, journal = world
    executor = FakeExecutor(cluster=cluster, config=config, journal=journal, metrics=Metrics())
    builder = FakeBuilder(cluster, {"web1": 0.3, "app1": 0.3, "db1": 0.3, "batch1": 0.05})
    worker = Worker(builder=builder, executor=executor)
    cluster.metadata["db1"] = Placement(pinned=True)  # never shows in FakeBuilder's snapshots
    plan_id = alert_plan(journal)
    worker.run(plan_id)
    worker.drain_queue(timeout=10)
    row = journal.plan(plan_id)
    assert row.state == "unresolved"
    assert f"still stale after {STALE_REPLANS} fresh plans" in row.detail
    assert executor.calls == []
    # Each run journals its own steps after the earlier runs' (the reconcile groups rows by step).
    steps = sorted({r.step for r in journal.migrations(plan_id)})
    assert steps == list(range(STALE_REPLANS + 1))
