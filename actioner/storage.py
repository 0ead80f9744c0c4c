"""Moves with local storage: a domain's copied disks, their images created on the destination, cleanup.

libvirt copies a writable local disk over NBD (VIR_MIGRATE_NON_SHARED_DISK / _INC) into an image that
must already exist on the destination at the same path with the same size and format. It is created
here through the destination's storage API (the pool whose directory holds the path), so the actioner
knows which images it made: a failed copy removes exactly those, and nothing that was there before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import libvirt

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class StorageError(RuntimeError):
    """A disk cannot be prepared on the destination: the move must not start."""


@dataclass(frozen=True)
class LocalDisk:
    """A writable file disk of a domain: libvirt copies it when the move copies storage."""

    target: str
    path: str
    format: str
    capacity: int
    backing: str | None = (
        None  # the backing file (qcow2 overlays), kept on both hosts for incremental
    )
    backing_format: str | None = None


@dataclass(frozen=True)
class DiskCopy:
    """What a move copied: bytes of libvirt's job stats (disk_total, disk_processed)."""

    total: int = 0
    processed: int = 0


def local_disks(dom: Any) -> tuple[LocalDisk, ...]:
    """The domain's writable, unshared file disks, with the capacity libvirt reports for each."""
    root = ET.fromstring(dom.XMLDesc(0))
    disks = []
    for disk in root.findall("./devices/disk"):
        if disk.get("type") != "file" or disk.get("device", "disk") != "disk":
            continue
        if disk.find("readonly") is not None or disk.find("shareable") is not None:
            continue
        source, target = disk.find("source"), disk.find("target")
        if source is None or target is None or not source.get("file"):
            continue
        driver = disk.find("driver")
        fmt = (driver.get("type") if driver is not None else None) or "raw"
        backing = disk.find("./backingStore/source")
        backing_format = disk.find("./backingStore/format")
        dev = str(target.get("dev"))
        disks.append(
            LocalDisk(
                target=dev,
                path=str(source.get("file")),
                format=fmt,
                capacity=int(dom.blockInfo(dev)[0]),
                backing=backing.get("file") if backing is not None else None,
                backing_format=backing_format.get("type") if backing_format is not None else None,
            )
        )
    return tuple(disks)


def storage_timeout(disks: tuple[LocalDisk, ...], mib_per_s: int) -> float:
    """Seconds a move's timeout grows by to copy ``disks`` at ``mib_per_s`` (the one formula)."""
    return sum(d.capacity for d in disks) / (mib_per_s * MIB)


def volume_xml(disk: LocalDisk, incremental: bool) -> str:
    """The destination volume for ``disk``: same name, size and format; an overlay for incremental."""
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = os.path.basename(disk.path)
    ET.SubElement(volume, "capacity", unit="bytes").text = str(disk.capacity)
    # sparse: the copy writes what the source holds
    ET.SubElement(volume, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(volume, "target")
    ET.SubElement(target, "format", type=disk.format)
    if incremental and disk.backing:
        backing = ET.SubElement(volume, "backingStore")
        ET.SubElement(backing, "path").text = disk.backing
        ET.SubElement(backing, "format", type=disk.backing_format or "raw")
    return ET.tostring(volume, encoding="unicode")


def prepare_destination(
    dconn: Any, disks: tuple[LocalDisk, ...], destination: str, *, incremental: bool
) -> list[str]:
    """Create every disk's image on the destination; the paths created (none that existed before).

    An image already at the path (a copy an earlier move kept there) is left for libvirt to overwrite,
    and said so, unless a domain defined on the destination uses it: then the move is refused. Any failure removes what this call created and raises StorageError.
    """
    created: list[str] = []
    try:
        for disk in disks:
            directory = os.path.dirname(disk.path)
            try:
                pool = dconn.storagePoolLookupByTargetPath(directory)
                pool.refresh(0)
            except libvirt.libvirtError as exc:
                raise StorageError(
                    f"no active storage pool over {directory} on {destination}: {exc}"
                ) from None
            if incremental and disk.backing and not _volume_exists(dconn, disk.backing):
                raise StorageError(
                    f"incremental copy of {disk.target} needs its backing file {disk.backing} "
                    f"on {destination}"
                )
            if _volume_exists(dconn, disk.path):
                users = _domains_using(dconn, disk.path)
                if users:
                    raise StorageError(
                        f"{disk.path} on {destination} is the disk of {', '.join(users)}"
                    )
                log.warning(
                    "%s on %s exists already (an earlier copy?): the storage copy overwrites it",
                    disk.path,
                    destination,
                )
                continue
            try:
                pool.createXML(volume_xml(disk, incremental), 0)
            except libvirt.libvirtError as exc:
                raise StorageError(f"cannot create {disk.path} on {destination}: {exc}") from None
            created.append(disk.path)
            log.info(
                "created %s (%d bytes, %s) on %s",
                disk.path,
                disk.capacity,
                disk.format,
                destination,
            )
    except StorageError:
        remove_images(dconn, created, destination, why="preparation failed")
        raise
    return created


def remove_images(conn: Any, paths: list[str], host: str, *, why: str) -> list[str]:
    """Delete these images through ``host``'s storage API; the problems met (logged), [] if none."""
    problems = []
    for path in paths:
        try:
            _refresh_pool_of(
                conn, path
            )  # an image made behind libvirt's back is unknown until then
            conn.storageVolLookupByPath(path).delete(0)
            log.warning("removed %s on %s: %s", path, host, why)
        except libvirt.libvirtError as exc:
            problems.append(f"{path} on {host}: {exc}")
            log.error("cannot remove %s on %s (%s): %s", path, host, why, exc)
    return problems


def _refresh_pool_of(conn: Any, path: str) -> None:
    # no pool over it: the lookup by path then says so
    with contextlib.suppress(libvirt.libvirtError):
        conn.storagePoolLookupByTargetPath(os.path.dirname(path)).refresh(0)


def _domains_using(conn: Any, path: str) -> list[str]:
    """Domains defined on the host (running or not) with a disk at ``path``."""
    users = []
    for dom in conn.listAllDomains(0):
        try:
            root = ET.fromstring(dom.XMLDesc(0))
        except libvirt.libvirtError:
            continue  # it vanished meanwhile
        if any(s.get("file") == path for s in root.findall("./devices/disk/source")):
            users.append(str(dom.name()))
    return sorted(users)


def _volume_exists(conn: Any, path: str) -> bool:
    try:
        conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        return False
    return True
