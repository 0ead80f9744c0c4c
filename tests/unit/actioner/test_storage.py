"""virtbalance.actioner.storage: which disks a move copies, their images on the destination, cleanup (fake libvirt)."""

from __future__ import annotations

import dataclasses
import time
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any

import libvirt
import pytest

from tests.actioner_fixtures import actioner_config
from virtbalance.actioner.executor import (
    Executor,
    MoveResult,
    _completed_disk_copy,
    _Migration,
)
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.storage import (
    DiskCopy,
    LocalDisk,
    StorageError,
    local_disks,
    prepare_destination,
    remove_images,
    storage_timeout,
    volume_xml,
)

DOMAIN_XML = """<domain type='qemu'><name>store1</name><devices>
  <disk type='file' device='disk'><driver name='qemu' type='raw'/>
    <source file='/images/store1.img'/><target dev='vda' bus='virtio'/></disk>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
    <source file='/images/store1-data.qcow2'/>
    <backingStore type='file'><format type='raw'/><source file='/images/base.img'/></backingStore>
    <target dev='vdb' bus='virtio'/></disk>
  <disk type='file' device='disk'><source file='/shared/boot.img'/><target dev='vdc'/><readonly/></disk>
  <disk type='file' device='disk'><source file='/shared/quorum.img'/><target dev='vdd'/><shareable/></disk>
  <disk type='file' device='cdrom'><source file='/iso/install.iso'/><target dev='hdc'/></disk>
  <disk type='network' device='disk'><source protocol='rbd' name='pool/vol'/><target dev='vde'/></disk>
</devices></domain>"""


class FakeDomain:
    def XMLDesc(self, _flags: int) -> str:
        return DOMAIN_XML

    def blockInfo(self, dev: str) -> list[int]:
        return [{"vda": 64, "vdb": 128}[dev] * 1024**2, 0, 0]


def _error(message: str) -> libvirt.libvirtError:
    return libvirt.libvirtError(message)


class FakePool:
    def __init__(self, conn: FakeConn, directory: str) -> None:
        self.conn, self.directory = conn, directory
        self.refreshed = 0

    def refresh(self, _flags: int) -> None:
        self.refreshed += 1

    def createXML(self, xml: str, _flags: int) -> None:
        name = ET.fromstring(xml).findtext("name")
        if name in self.conn.refuse:
            raise _error("No space left on device")
        self.conn.volumes[f"{self.directory}/{name}"] = xml


class FakeVolume:
    def __init__(self, conn: FakeConn, path: str) -> None:
        self.conn, self.path = conn, path

    def delete(self, _flags: int) -> None:
        del self.conn.volumes[self.path]

    def info(self) -> list[int]:
        # (type, capacity, allocation): what a copy wrote into a created image
        return [0, 64 * 1024**2, 4 * 1024**2]


class FakeConn:
    """A host whose storage pools cover some directories, and the volumes in them."""

    def __init__(self, *directories: str) -> None:
        self.pools = {d: FakePool(self, d) for d in directories}
        self.volumes: dict[str, str] = {}
        self.refuse: set[str] = set()
        self.domains: list[Any] = []

    def listAllDomains(self, _flags: int) -> list[Any]:
        return self.domains

    def lookupByName(self, name: str) -> Any:
        # no finished job kept here: the executor falls back on its progress polls
        raise _error(f"Domain not found: no domain with matching name '{name}'")

    def storagePoolLookupByTargetPath(self, path: str) -> FakePool:
        if path not in self.pools:
            raise _error(f"no storage pool with matching target path '{path}'")
        return self.pools[path]

    def storageVolLookupByPath(self, path: str) -> Any:
        if path not in self.volumes:
            raise _error(f"no storage vol with matching path '{path}'")
        return FakeVolume(self, path)


RAW = LocalDisk("vda", "/images/store1.img", "raw", 64 * 1024**2)
OVERLAY = LocalDisk(
    "vdb", "/images/store1-data.qcow2", "qcow2", 128 * 1024**2, "/images/base.img", "raw"
)


def test_only_writable_unshared_file_disks_are_copied_with_their_size_and_backing_file():
    assert local_disks(FakeDomain()) == (RAW, OVERLAY)


def test_the_destination_volume_matches_name_size_and_format():
    volume = ET.fromstring(volume_xml(RAW, incremental=False))
    assert volume.findtext("name") == "store1.img"
    assert volume.findtext("capacity") == str(64 * 1024**2)
    assert volume.find("./target/format").get("type") == "raw"
    assert volume.find("backingStore") is None


def test_an_incremental_copy_gets_an_overlay_on_the_same_backing_file():
    volume = ET.fromstring(volume_xml(OVERLAY, incremental=True))
    assert volume.find("./target/format").get("type") == "qcow2"
    assert volume.findtext("./backingStore/path") == "/images/base.img"
    assert ET.fromstring(volume_xml(OVERLAY, incremental=False)).find("backingStore") is None


def test_images_are_created_in_the_pool_over_their_directory():
    conn = FakeConn("/images")
    conn.volumes["/images/base.img"] = "<volume/>"
    created = prepare_destination(conn, (RAW, OVERLAY), "hv2", incremental=True)
    assert created == [RAW.path, OVERLAY.path]
    assert set(conn.volumes) == {"/images/base.img", RAW.path, OVERLAY.path}
    assert conn.pools["/images"].refreshed == 2


def test_an_image_already_there_is_not_claimed_as_created(caplog):
    conn = FakeConn("/images")
    conn.volumes[RAW.path] = "<volume>kept by an earlier move</volume>"
    assert prepare_destination(conn, (RAW,), "hv2", incremental=False) == []
    assert conn.volumes[RAW.path] == "<volume>kept by an earlier move</volume>"
    assert "overwrites it" in caplog.text


def test_an_image_that_a_domain_on_the_destination_uses_is_refused():
    conn = FakeConn("/images")
    conn.volumes[RAW.path] = "<volume/>"
    other = SimpleNamespace(XMLDesc=lambda _f: DOMAIN_XML, name=lambda: "other")
    conn.domains = [other]
    with pytest.raises(StorageError, match="/images/store1.img on hv2 is the disk of other"):
        prepare_destination(conn, (RAW,), "hv2", incremental=False)
    assert RAW.path in conn.volumes


def test_no_pool_over_the_directory_refuses_the_move():
    with pytest.raises(StorageError, match="no active storage pool over /images on hv2"):
        prepare_destination(FakeConn("/elsewhere"), (RAW,), "hv2", incremental=False)


def test_an_incremental_copy_without_the_backing_file_on_the_destination_is_refused():
    conn = FakeConn("/images")
    with pytest.raises(StorageError, match="needs its backing file /images/base.img on hv2"):
        prepare_destination(conn, (OVERLAY,), "hv2", incremental=True)
    assert conn.volumes == {}


def test_a_failed_creation_removes_the_images_this_call_made():
    conn = FakeConn("/images")
    conn.refuse.add("store1-data.qcow2")
    with pytest.raises(StorageError, match="cannot create /images/store1-data.qcow2 on hv2"):
        prepare_destination(conn, (RAW, OVERLAY), "hv2", incremental=False)
    assert conn.volumes == {}


def test_removal_reports_what_it_could_not_remove():
    conn = FakeConn("/images")
    conn.volumes[RAW.path] = "<volume/>"
    problems = remove_images(conn, [RAW.path, OVERLAY.path], "hv1", why="moved")
    assert conn.volumes == {}
    assert len(problems) == 1 and problems[0].startswith(f"{OVERLAY.path} on hv1: ")


def test_the_timeout_grows_by_the_disk_bytes_at_the_configured_rate():
    assert storage_timeout((RAW, OVERLAY), 16) == pytest.approx((64 + 128) / 16)
    assert storage_timeout((), 16) == 0


# --- the executor's storage pre-step and cleanup (libvirt's migration itself faked) -------------


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


def move(executor: StorageExecutor, source: FakeConn) -> MoveResult:
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
