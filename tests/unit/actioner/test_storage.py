"""virtbalance.actioner.storage: which disks a move copies, their images on the destination, cleanup (fake libvirt)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from types import SimpleNamespace
from typing import Any

import libvirt
import pytest

from virtbalance.actioner import storage

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


RAW = storage.LocalDisk("vda", "/images/store1.img", "raw", 64 * 1024**2)
OVERLAY = storage.LocalDisk(
    "vdb", "/images/store1-data.qcow2", "qcow2", 128 * 1024**2, "/images/base.img", "raw"
)


def test_only_writable_unshared_file_disks_are_copied_with_their_size_and_backing_file():
    assert storage.local_disks(FakeDomain()) == (RAW, OVERLAY)


def test_the_destination_volume_matches_name_size_and_format():
    volume = ET.fromstring(storage.volume_xml(RAW, incremental=False))
    assert volume.findtext("name") == "store1.img"
    assert volume.findtext("capacity") == str(64 * 1024**2)
    assert volume.find("./target/format").get("type") == "raw"
    assert volume.find("backingStore") is None


def test_an_incremental_copy_gets_an_overlay_on_the_same_backing_file():
    volume = ET.fromstring(storage.volume_xml(OVERLAY, incremental=True))
    assert volume.find("./target/format").get("type") == "qcow2"
    assert volume.findtext("./backingStore/path") == "/images/base.img"
    assert (
        ET.fromstring(storage.volume_xml(OVERLAY, incremental=False)).find("backingStore") is None
    )


def test_images_are_created_in_the_pool_over_their_directory():
    conn = FakeConn("/images")
    conn.volumes["/images/base.img"] = "<volume/>"
    created = storage.prepare_destination(conn, (RAW, OVERLAY), "hv2", incremental=True)
    assert created == [RAW.path, OVERLAY.path]
    assert set(conn.volumes) == {"/images/base.img", RAW.path, OVERLAY.path}
    assert conn.pools["/images"].refreshed == 2


def test_an_image_already_there_is_not_claimed_as_created(caplog):
    conn = FakeConn("/images")
    conn.volumes[RAW.path] = "<volume>kept by an earlier move</volume>"
    assert storage.prepare_destination(conn, (RAW,), "hv2", incremental=False) == []
    assert conn.volumes[RAW.path] == "<volume>kept by an earlier move</volume>"
    assert "overwrites it" in caplog.text


def test_an_image_that_a_domain_on_the_destination_uses_is_refused():
    conn = FakeConn("/images")
    conn.volumes[RAW.path] = "<volume/>"
    other = SimpleNamespace(XMLDesc=lambda _f: DOMAIN_XML, name=lambda: "other")
    conn.domains = [other]
    with pytest.raises(
        storage.StorageError, match="/images/store1.img on hv2 is the disk of other"
    ):
        storage.prepare_destination(conn, (RAW,), "hv2", incremental=False)
    assert RAW.path in conn.volumes


def test_no_pool_over_the_directory_refuses_the_move():
    with pytest.raises(storage.StorageError, match="no active storage pool over /images on hv2"):
        storage.prepare_destination(FakeConn("/elsewhere"), (RAW,), "hv2", incremental=False)


def test_an_incremental_copy_without_the_backing_file_on_the_destination_is_refused():
    conn = FakeConn("/images")
    with pytest.raises(
        storage.StorageError, match="needs its backing file /images/base.img on hv2"
    ):
        storage.prepare_destination(conn, (OVERLAY,), "hv2", incremental=True)
    assert conn.volumes == {}


def test_a_failed_creation_removes_the_images_this_call_made():
    conn = FakeConn("/images")
    conn.refuse.add("store1-data.qcow2")
    with pytest.raises(
        storage.StorageError, match="cannot create /images/store1-data.qcow2 on hv2"
    ):
        storage.prepare_destination(conn, (RAW, OVERLAY), "hv2", incremental=False)
    assert conn.volumes == {}


def test_removal_reports_what_it_could_not_remove():
    conn = FakeConn("/images")
    conn.volumes[RAW.path] = "<volume/>"
    problems = storage.remove_images(conn, [RAW.path, OVERLAY.path], "hv1", why="moved")
    assert conn.volumes == {}
    assert len(problems) == 1 and problems[0].startswith(f"{OVERLAY.path} on hv1: ")


def test_the_timeout_grows_by_the_disk_bytes_at_the_configured_rate():
    assert storage.storage_timeout((RAW, OVERLAY), 16) == pytest.approx((64 + 128) / 16)
    assert storage.storage_timeout((), 16) == 0
