"""The resolver against faked hosts: what it destroys, resumes and journals, and what it leaves alone."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import libvirt
import pytest

from tests.actioner_fixtures import actioner_config
from virtbalance.actioner.executor import Executor
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.libvirt_hosts import HostUnreachableError
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.proof import Action
from virtbalance.actioner.resolver import Resolver

PAUSED_BY_MIGRATION = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION)
RUNNING = (libvirt.VIR_DOMAIN_RUNNING, 1)


class Dom:
    def __init__(self, state, persistent=True, job=False, uuid="6d1f0c1e-db1"):
        self._state = state
        self.persistent = persistent
        self.job = job
        self.calls = []
        self.active = True
        self.uuid = uuid

    def UUIDString(self):
        return self.uuid

    def state(self):
        return list(self._state)

    def isActive(self):
        return int(self.active)

    def isPersistent(self):
        return int(self.persistent)

    def jobInfo(self):
        kind = libvirt.VIR_DOMAIN_JOB_UNBOUNDED if self.job else libvirt.VIR_DOMAIN_JOB_NONE
        return [kind] + [0] * 11

    def destroy(self):
        self.calls.append("destroy")
        self.active = False
        self._state = (libvirt.VIR_DOMAIN_SHUTOFF, 0)

    def undefine(self):
        self.calls.append("undefine")
        self.persistent = False

    def resume(self):
        self.calls.append("resume")
        self._state = RUNNING


class Pool:
    """Hosts holding domains; a host in ``silent`` does not answer."""

    def __init__(self, hosts, silent=()):
        self.hosts = hosts
        self.silent = set(silent)
        self.config = SimpleNamespace(host_names=tuple(sorted(hosts)))

    def connection(self, host):
        if host in self.silent:
            raise HostUnreachableError(f"{host}: cannot connect to qemu+tcp://{host}/system")
        return SimpleNamespace(
            lookupByName=lambda name: self._lookup(host, name),
            listAllDomains=lambda flags: [
                SimpleNamespace(name=lambda n=n: n)
                for n, d in self.hosts[host].items()
                if not d.active and d.persistent
            ],
        )

    def _lookup(self, host, name):
        dom = self.hosts[host].get(name)
        if dom is None or (not dom.active and not dom.persistent):
            error = libvirt.libvirtError(f"Domain not found: {name}")
            error.err = (libvirt.VIR_ERR_NO_DOMAIN, 0, "")
            raise error
        return dom

    def domains(self, host):
        if host in self.silent:
            raise HostUnreachableError(host)
        return [
            SimpleNamespace(name=n, state=d.state()[0], reason=d.state()[1])
            for n, d in self.hosts[host].items()
            if d.active
        ]


@pytest.fixture
def journal(tmp_path):
    return Journal(tmp_path / "journal.sqlite")


TIMEOUT_60S = SimpleNamespace(migration_timeout=60.0)


def _clock(monkeypatch):
    """The resolver's monotonic clock, set by the test: ``now[0] += 61`` moves it on."""
    now = [1000.0]
    monkeypatch.setattr("virtbalance.actioner.resolver.time.monotonic", lambda: now[0])
    return now


def test_the_source_paused_after_finish_is_destroyed_not_resumed(journal):
    source, destination = Dom(PAUSED_BY_MIGRATION), Dom(RUNNING)
    pool = Pool({"hv1": {"db1": source}, "hv2": {}, "hv3": {"db1": destination}})
    resolution = Resolver(pool, journal).resolve("db1", "test")
    assert resolution.done and resolution.host == "hv3"
    assert source.calls == ["destroy", "undefine"]
    assert destination.calls == []


def test_a_silent_destination_leaves_the_source_paused_and_journals_it(journal):
    source = Dom(PAUSED_BY_MIGRATION)
    pool = Pool({"hv1": {"db1": source}, "hv2": {}, "hv3": {}}, silent={"hv3"})
    metrics = Metrics()
    resolver = Resolver(pool, journal, metrics)
    resolution = resolver.resolve("db1", "reconcile after restart")
    assert not resolution.done and resolution.verdict.action is Action.AMBIGUOUS
    assert source.calls == []
    assert "hv3: did not answer" in journal.ambiguous_domains()["db1"]
    assert metrics.registry.get_sample_value("virtbalance_domains_ambiguous") == 1
    assert metrics.registry.get_sample_value("virtbalance_domain_ambiguous", {"domain": "db1"}) == 1

    # the destination answers again, without the domain: now the source is provably the only copy
    pool.silent.clear()
    (result,) = resolver.recheck()
    assert result.done and result.verdict.action is Action.RESUME
    assert source.calls == ["resume"]
    assert journal.ambiguous_domains() == {}
    assert metrics.registry.get_sample_value("virtbalance_domains_ambiguous") == 0


def test_a_domain_with_a_job_is_not_touched(journal):
    source, shell = Dom(PAUSED_BY_MIGRATION, job=True), Dom(PAUSED_BY_MIGRATION, persistent=False)
    pool = Pool({"hv1": {"db1": source}, "hv3": {"db1": shell}})
    resolution = Resolver(pool, journal).resolve("db1", "test")
    assert resolution.verdict.action is Action.IN_FLIGHT and not resolution.done
    assert source.calls == shell.calls == []
    assert journal.ambiguous_domains() == {}


def test_two_running_copies_are_left_alone_and_reported(journal, caplog):
    a, b = Dom(RUNNING), Dom(RUNNING)
    pool = Pool({"hv1": {"db1": a}, "hv3": {"db1": b}})
    resolution = Resolver(pool, journal).resolve("db1", "periodic recheck")
    assert not resolution.done
    assert a.calls == b.calls == []
    assert "active on 2 hosts" in journal.ambiguous_domains()["db1"]
    assert "db1 is AMBIGUOUS" in caplog.text


def test_the_recheck_finds_a_double_run_nobody_journaled_and_reports_it(journal):
    a, b = Dom(RUNNING), Dom(RUNNING)
    pool = Pool({"hv1": {"db1": a}, "hv2": {}, "hv3": {"db1": b}})
    metrics = Metrics()
    (result,) = Resolver(pool, journal, metrics).recheck()
    assert result.verdict.action is Action.AMBIGUOUS and not result.done
    assert a.calls == b.calls == []
    assert "active on 2 hosts" in journal.ambiguous_domains()["db1"]
    assert metrics.registry.get_sample_value("virtbalance_domain_ambiguous", {"domain": "db1"}) == 1


def test_a_source_libvirt_resumed_beside_a_silent_destination_stays_in_doubt_until_it_answers(
    journal,
):
    source = Dom((libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_MIGRATION_CANCELED))
    pool = Pool({"hv1": {"db1": source}, "hv2": {}, "hv3": {}}, silent={"hv3"})
    resolver = Resolver(pool, journal)
    first = resolver.resolve("db1", "migration hv1->hv3 failed")
    assert first.verdict.action is Action.AMBIGUOUS and not first.done
    assert "hv3: did not answer" in journal.ambiguous_domains()["db1"]
    # the destination answers: it started the guest before its libvirtd died, so it runs twice
    pool.silent.clear()
    pool.hosts["hv3"]["db1"] = Dom(RUNNING)
    (second,) = resolver.recheck()
    assert second.verdict.action is Action.AMBIGUOUS and not second.done
    assert "active on 2 hosts" in journal.ambiguous_domains()["db1"]
    assert source.calls == pool.hosts["hv3"]["db1"].calls == []


def test_nothing_is_done_when_the_world_changed_between_judging_and_acting(journal):
    source, destination = Dom(PAUSED_BY_MIGRATION), Dom(RUNNING)
    pool = Pool({"hv1": {"db1": source}, "hv3": {"db1": destination}})
    resolver = Resolver(pool, journal)
    looked = []
    real = pool.connection

    def connection(host):
        looked.append(host)
        if len(looked) == 3:  # the second look, right before acting: the destination went silent
            pool.hosts["hv3"]["db1"] = Dom(PAUSED_BY_MIGRATION)
        return real(host)

    pool.connection = connection
    resolution = resolver.resolve("db1", "test")
    assert not resolution.done
    assert "changed while acting" in resolution.detail
    assert source.calls == []
    assert "db1" in journal.ambiguous_domains()


class MigratingDom(Dom):
    """A source domain whose migrateToURI3 blocks until released, as a real one lasts seconds."""

    def __init__(self, release):
        super().__init__(RUNNING)
        self.release = release

    def migrateToURI3(self, uri, params, flags):
        assert self.release.wait(10)
        raise libvirt.libvirtError("migration failed")

    def jobStats(self, flags):
        return {}


class Conn:
    def __init__(self, dom):
        self.dom = dom
        self.closed = False

    def lookupByName(self, name):
        return self.dom

    def close(self):
        self.closed = True


def test_a_migration_keeps_its_own_connections_until_its_outcome_is_known(tmp_path, journal):
    release = threading.Event()
    source = MigratingDom(release)
    pool = Pool({"hv1": {"db1": source}, "hv2": {}, "hv3": {}})
    opened = []

    def dedicated(host):
        opened.append(Conn(source))
        return opened[-1]

    pool.dedicated = dedicated
    pool.drop = lambda host: None
    executor = Executor(
        config=actioner_config(tmp_path), pool=pool, journal=journal, metrics=Metrics()
    )
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(result=executor.migrate("db1", "hv1", "hv3"))
    )
    thread.start()
    deadline = time.monotonic() + 5
    while not opened and time.monotonic() < deadline:
        time.sleep(0.01)
    # peer-to-peer by default: one connection, to the source, held while the job runs
    assert len(opened) == 1 and not opened[0].closed
    pool.drop("hv1")  # another thread dropping the pooled connection changes nothing here
    assert not opened[0].closed
    release.set()
    thread.join(10)
    assert opened[0].closed, "closed once the outcome was known"
    result = outcome["result"]
    assert not result.ok and "migration failed" in result.error
    # the source never left: judged settled there, nothing resumed or destroyed
    assert source.calls == []


def test_a_definition_left_on_a_source_whose_libvirtd_was_away_is_removed(journal):
    stale = Dom(RUNNING)
    stale.active = False  # defined, not running: the move's undefine never reached it
    running = Dom(RUNNING)
    pool = Pool({"hv1": {"db1": stale}, "hv3": {"db1": running}})
    (result,) = Resolver(pool, journal).recheck()
    assert result.done and result.host == "hv3"
    assert stale.calls == ["undefine"] and running.calls == []


def test_a_job_that_outlives_the_migration_timeout_is_journaled_ambiguous(journal, monkeypatch):
    # a job on a persistent copy beside the running one: no proof which migration it is
    pool = Pool({"hv1": {"db1": Dom(RUNNING)}, "hv3": {"db1": Dom(PAUSED_BY_MIGRATION, job=True)}})
    pool.config.execution = TIMEOUT_60S
    resolver = Resolver(pool, journal)
    now = _clock(monkeypatch)
    resolver.recheck()
    assert journal.ambiguous_domains() == {}  # a job may be a migration finishing: not yet
    now[0] += 61
    resolver.recheck()
    reason = journal.ambiguous_domains()["db1"]
    assert "a job has run on it for 61 s" in reason
    assert pool.hosts["hv3"]["db1"].calls == [] and pool.hosts["hv1"]["db1"].calls == []


def test_a_dead_migrations_receiving_shell_is_destroyed_once_its_job_outlives_the_timeout(
    journal, monkeypatch
):
    # campaign round 13:17: the destination's libvirtd, restarted mid-move, re-adopted the receiving
    # QEMU with its job (and another pause reason); the source runs on alone, with no job
    shell = Dom(
        (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_UNKNOWN), persistent=False, job=True
    )
    source = Dom(RUNNING)
    pool = Pool({"hv1": {"db1": source}, "hv2": {}, "hv3": {"db1": shell}})
    pool.config.execution = TIMEOUT_60S
    resolver = Resolver(pool, journal)
    now = _clock(monkeypatch)
    (first,) = resolver.recheck()
    assert first.verdict.action is Action.IN_FLIGHT and shell.calls == []
    now[0] += 61
    (second,) = resolver.recheck()
    assert second.done and second.host == "hv1" and second.verdict.action is Action.KEEP
    assert shell.calls == ["destroy"] and source.calls == []
    assert journal.ambiguous_domains() == {}


def test_a_stale_shell_is_left_alone_while_a_host_does_not_answer(journal, monkeypatch):
    shell = Dom(PAUSED_BY_MIGRATION, persistent=False, job=True)
    pool = Pool({"hv1": {"db1": Dom(RUNNING)}, "hv2": {}, "hv3": {"db1": shell}}, silent={"hv2"})
    pool.config.execution = TIMEOUT_60S
    resolver = Resolver(pool, journal)
    now = _clock(monkeypatch)
    resolver.recheck()
    now[0] += 61
    resolver.recheck()
    assert "a job has run on it for 61 s" in journal.ambiguous_domains()["db1"]
    assert shell.calls == []


def test_a_definition_of_another_vm_with_the_same_name_is_never_touched(journal):
    other = Dom(RUNNING, uuid="another-vm")
    other.active = False
    running = Dom(RUNNING)
    pool = Pool({"hv1": {"db1": other}, "hv3": {"db1": running}})
    (result,) = Resolver(pool, journal).recheck()
    assert result.done and result.host == "hv3"
    assert other.calls == [] and running.calls == []


def test_a_destination_refusing_job_statistics_is_migrating_in(journal):
    class Incoming(Dom):
        def jobInfo(self):
            error = libvirt.libvirtError(
                "migration statistics are available only on the source host"
            )
            error.err = (libvirt.VIR_ERR_OPERATION_UNSUPPORTED, 0, "")
            raise error

    source, shell = Dom(PAUSED_BY_MIGRATION), Incoming(PAUSED_BY_MIGRATION, persistent=False)
    pool = Pool({"hv1": {"db1": source}, "hv3": {"db1": shell}})
    resolution = Resolver(pool, journal).resolve("db1", "test")
    assert resolution.verdict.action is Action.IN_FLIGHT
    assert source.calls == shell.calls == []


def test_a_source_job_that_outlives_the_timeout_names_the_libvirtd_to_restart(journal, monkeypatch):
    # campaign rounds 26:36 and 11:3: an abort met the disks' mirror jobs and libvirt kept the source's
    # migration job, the guest paused under it, with no copy anywhere else
    source = Dom(PAUSED_BY_MIGRATION, job=True)
    pool = Pool({"hv1": {"db1": source}, "hv2": {}, "hv3": {}})
    pool.config.execution = TIMEOUT_60S
    metrics = Metrics()
    resolver = Resolver(pool, journal, metrics)
    now = _clock(monkeypatch)

    def stuck(host):
        return metrics.registry.get_sample_value(
            "virtbalance_migration_job_stuck", {"domain": "db1", "host": host}
        )

    resolver.recheck()
    assert stuck("hv1") is None  # a job may be a migration finishing: not yet
    now[0] += 61
    (held,) = resolver.recheck()
    assert held.verdict.action is Action.IN_FLIGHT and not held.done
    assert stuck("hv1") == 1 and stuck("hv2") is None
    assert (
        "restart libvirtd on hv1 (VirtBalanceMigrationJobStuck)"
        in journal.ambiguous_domains()["db1"]
    )
    assert source.calls == []  # neither resumed under its job nor destroyed
    # the operator restarts hv1's libvirtd: the job is gone, the source still paused, nowhere else
    source.job = False
    (resumed,) = resolver.recheck()
    assert resumed.done and resumed.verdict.action is Action.RESUME and source.calls == ["resume"]
    assert stuck("hv1") is None
    assert journal.ambiguous_domains() == {}


def test_a_job_on_a_receiving_shell_alone_names_no_libvirtd_to_restart(journal, monkeypatch):
    # a shell with a job beside a source that does not run: the runbook's ghost case, not a stuck source
    shell = Dom(PAUSED_BY_MIGRATION, persistent=False, job=True)
    pool = Pool({"hv1": {"db1": Dom(PAUSED_BY_MIGRATION)}, "hv2": {}, "hv3": {"db1": shell}})
    pool.config.execution = TIMEOUT_60S
    metrics = Metrics()
    resolver = Resolver(pool, journal, metrics)
    now = _clock(monkeypatch)
    resolver.recheck()
    now[0] += 61
    resolver.recheck()
    assert "a job has run on it for 61 s" in journal.ambiguous_domains()["db1"]
    assert "restart libvirtd" not in journal.ambiguous_domains()["db1"]
    assert list(metrics.registry.collect())  # the registry collects
    samples = [
        s
        for family in metrics.registry.collect()
        if family.name == "virtbalance_migration_job_stuck"
        for s in family.samples
    ]
    assert samples == []


class StuckDom(MigratingDom):
    """A source whose migration job libvirt does not end on abort: the call returns only once released
    (its libvirtd restarted)."""

    def __init__(self, release):
        super().__init__(release)
        self.aborts = 0

    def migrateToURI3(self, uri, params, flags):
        assert self.release.wait(30)
        raise libvirt.libvirtError("operation failed: Lost connection to destination host")

    def abortJob(self):
        self.aborts += 1


def test_a_migration_whose_job_outlives_its_abort_is_reported_stuck_until_libvirt_returns(
    tmp_path, journal, monkeypatch
):
    release = threading.Event()
    source = StuckDom(release)
    pool = Pool({"hv1": {"db1": source}, "hv2": {}, "hv3": {}})
    pool.dedicated = lambda host: Conn(source)
    monkeypatch.setattr("virtbalance.actioner.executor._POLL", 0.02)
    monkeypatch.setattr("virtbalance.actioner.executor.ABORT_GRACE", 0.3)
    config = actioner_config(tmp_path, execution={"migration_timeout": "1s"})
    metrics = Metrics()
    executor = Executor(config=config, pool=pool, journal=journal, metrics=metrics)
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(result=executor.migrate("db1", "hv1", "hv3"))
    )
    thread.start()

    def stuck():
        return metrics.registry.get_sample_value(
            "virtbalance_migration_job_stuck", {"domain": "db1", "host": "hv1"}
        )

    deadline = time.monotonic() + 10
    while stuck() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stuck() == 1, "reported once the job outlived its abort by ABORT_GRACE"
    assert source.aborts == 1 and thread.is_alive(), "aborted once, and still waited for"
    release.set()
    thread.join(10)
    assert stuck() is None, "cleared once libvirt's call returned"
    result = outcome["result"]
    assert not result.ok and result.timed_out and "Lost connection" in result.error


def test_a_stuck_job_report_ends_whoever_judges_the_domain_settled(journal, monkeypatch):
    # reported by the recheck, then resolved by another judgement (the executor's, after libvirtd's
    # restart made its call return) that the recheck never repeats: the series must still go
    source = Dom(PAUSED_BY_MIGRATION, job=True)
    pool = Pool({"hv1": {"db1": source}, "hv2": {}, "hv3": {}})
    pool.config.execution = TIMEOUT_60S
    metrics = Metrics()
    resolver = Resolver(pool, journal, metrics)
    now = _clock(monkeypatch)
    resolver.recheck()
    now[0] += 61
    resolver.recheck()
    labels = {"domain": "db1", "host": "hv1"}
    assert metrics.registry.get_sample_value("virtbalance_migration_job_stuck", labels) == 1
    source.job = False
    resolution = resolver.resolve("db1", "migration hv1->hv3 failed")
    assert resolution.done and source.calls == ["resume"]
    assert metrics.registry.get_sample_value("virtbalance_migration_job_stuck", labels) is None
