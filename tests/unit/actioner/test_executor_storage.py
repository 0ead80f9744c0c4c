"""The executor's moves with local storage: images prepared first, removed or kept after (fake libvirt)."""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace
from typing import Any

import libvirt

from tests.actioner_fixtures import actioner_config
from tests.unit.actioner.test_storage import OVERLAY, RAW, FakeConn, FakeDomain
from virtbalance.actioner.executor import (
    NOT_STARTED_STOPPING,
    Executor,
    MoveResult,
    _completed_disk_copy,
    _Migration,
)
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.storage import DiskCopy, LocalDisk


class FakePoolOfHosts:
    """The executor's HostPool: a storage connection per host, and where the domain is active."""

    def __init__(self, hosts: dict[str, FakeConn], active_on: str | None = None) -> None:
        self.hosts, self.active_on = hosts, active_on

    def dedicated(self, host: str) -> FakeConn:
        conn = self.hosts[host]
        conn.close = lambda: None  # type: ignore[attr-defined]
        return conn

    def locate(self, _domain: str) -> dict[str, Any]:
        if self.active_on is None:
            return {}
        return {self.active_on: SimpleNamespace(active=True, running_here=True)}


class StorageExecutor(Executor):
    """The real executor; _migrate_on (libvirt's migration) returns a set outcome."""

    def __init__(self, outcome: MoveResult, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.outcome = outcome
        self.copied: list[tuple[LocalDisk, ...]] = []

    def _migrate_on(self, migration: _Migration, disks: tuple[LocalDisk, ...] = ()) -> MoveResult:
        self.copied.append(disks)
        return self.outcome


def storage_executor(tmp_path, outcome, *, active_on=None, **execution):
    config = actioner_config(tmp_path)
    config = dataclasses.replace(
        config,
        execution=dataclasses.replace(config.execution, copy_storage="all", **execution),
    )
    source, destination = FakeConn("/images"), FakeConn("/images")
    source.volumes = {RAW.path: "<volume/>", OVERLAY.path: "<volume/>"}
    pool = FakePoolOfHosts({"hv1": source, "hv2": destination}, active_on)
    journal = Journal(config.journal_path)
    executor = StorageExecutor(
        outcome, config=config, pool=pool, journal=journal, metrics=Metrics()
    )
    return executor, source, destination


def move(executor: Executor, source: FakeConn) -> MoveResult:
    return executor._migrate_with_storage(
        _Migration(
            dom=FakeDomain(),
            sconn=source,
            dconn=source,
            domain="store1",
            source="hv1",
            destination="hv2",
            started=time.monotonic(),
            abortable=True,
        )
    )


def test_a_move_copies_into_images_created_first_and_keeps_the_source_by_default(tmp_path):
    done = MoveResult("store1", True, 1.0, time.monotonic())
    executor, source, destination = storage_executor(tmp_path, done)
    result = move(executor, source)
    assert result.ok and result.source_disk == "kept"
    assert executor.copied == [(RAW, OVERLAY)]
    assert set(destination.volumes) == {RAW.path, OVERLAY.path}
    assert set(source.volumes) == {RAW.path, OVERLAY.path}


def test_the_source_images_are_removed_when_the_setting_says_so(tmp_path):
    done = MoveResult("store1", True, 1.0, time.monotonic())
    executor, source, _ = storage_executor(tmp_path, done, source_disk_after_move="remove")
    assert move(executor, source).source_disk == "removed"
    assert source.volumes == {}


def test_a_failed_copy_removes_what_it_created_and_nothing_else(tmp_path):
    failed = MoveResult("store1", False, 1.0, time.monotonic(), "No space left on device")
    executor, source, destination = storage_executor(tmp_path, failed)
    destination.volumes[OVERLAY.path] = "<volume>there before</volume>"
    result = move(executor, source)
    assert not result.ok and result.source_disk == ""
    assert destination.volumes == {OVERLAY.path: "<volume>there before</volume>"}
    assert set(source.volumes) == {RAW.path, OVERLAY.path}


def test_a_copy_is_left_where_the_domain_runs_or_may_run(tmp_path):
    failed = MoveResult("store1", False, 1.0, time.monotonic(), "verify failed")
    executor, source, destination = storage_executor(tmp_path, failed, active_on="hv2")
    move(executor, source)
    assert set(destination.volumes) == {RAW.path, OVERLAY.path}
    doubtful = MoveResult("store1", False, 1.0, time.monotonic(), "lost", ambiguous=True)
    executor, source, destination = storage_executor(tmp_path, doubtful)
    move(executor, source)
    assert set(destination.volumes) == {RAW.path, OVERLAY.path}


def test_a_destination_without_a_pool_fails_the_move_before_libvirt_is_asked(tmp_path):
    executor, source, _ = storage_executor(tmp_path, MoveResult("store1", True, 1.0, 0.0))
    executor.pool.hosts["hv2"] = FakeConn("/elsewhere")
    result = move(executor, source)
    assert not result.ok
    assert result.error.startswith("storage: no active storage pool over /images on hv2")
    assert executor.copied == []


def test_the_copy_names_its_disks_nbd_port_and_tls(tmp_path):
    executor, _, _ = storage_executor(
        tmp_path, MoveResult("x", True, 0, 0), nbd_port=49153, migration_tls=True
    )
    flags, params = executor._flags_and_params("hv2", (RAW, OVERLAY))
    assert flags & libvirt.VIR_MIGRATE_NON_SHARED_DISK
    assert flags & libvirt.VIR_MIGRATE_TLS
    assert params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] == ["vda", "vdb"]
    assert params[libvirt.VIR_MIGRATE_PARAM_DISKS_PORT] == 49153
    _, plain = executor._flags_and_params("hv2")
    assert libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS not in plain


def test_the_bytes_copied_come_from_the_finished_job_the_destination_keeps():
    class Finished:
        def jobStats(self, flags: int) -> dict[str, int]:
            assert flags == libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED
            return {"disk_total": 67_108_864, "disk_processed": 67_108_864}

    class Destination(FakeConn):
        def lookupByName(self, name: str) -> Any:
            return Finished()

    assert _completed_disk_copy(Destination(), "store1") == DiskCopy(67_108_864, 67_108_864)
    assert _completed_disk_copy(FakeConn(), "store1") is None


def test_a_stop_while_a_member_is_prepared_starts_no_migration_and_removes_its_images(tmp_path):
    # The executor itself, not StorageExecutor: libvirt's migration must not be asked for at all
    # (FakeDomain has no migrate call: asking would fail the test).
    _, source, destination = storage_executor(tmp_path, outcome=None)
    config = actioner_config(tmp_path)
    config = dataclasses.replace(
        config, execution=dataclasses.replace(config.execution, copy_storage="all")
    )
    executor = Executor(
        config=config,
        pool=FakePoolOfHosts({"hv1": source, "hv2": destination}),
        journal=Journal(config.journal_path),
        metrics=Metrics(),
    )
    executor.stopping.set()
    result = move(executor, source)
    assert (result.ok, result.ambiguous, result.error) == (False, False, NOT_STARTED_STOPPING)
    assert destination.volumes == {}  # the images it created for the copy are removed again
    assert set(source.volumes) == {RAW.path, OVERLAY.path}
