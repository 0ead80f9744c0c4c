"""libvirt's lock manager in the lab: a second running copy of a writable disk is refused, whoever asks.

Every lab host runs virtlockd, and all of them keep disk leases in one shared directory (as production
hosts would on NFS). These tests use a guest of their own whose disk is writable: the scenario guests'
disks are read-only, and libvirt takes no lease on those.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.integration.confirm_faults import (
    confirm_never_arrives,
    copy_of,
    ports_to,
    reset_connections,
)
from tests.waiting import wait_until
from virtbalance.lab import Lab
from virtbalance.lab.domain_xml import domain_xml
from virtbalance.lab.hosts import LOCKSPACE_DIR
from virtbalance.lab.scenario import DomainSpec
from virtbalance.lab.system import find_tool
from virtbalance.lab.teardown import namespace_pids

pytestmark = [pytest.mark.integration, pytest.mark.lab]

PROBE = "lockprobe"
SOURCE, DESTINATION = "hv1", "hv2"
PAUSED_BY_MIGRATION = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION)


def _writable(xml: str) -> str:
    root = ET.fromstring(xml)
    disk = root.find("devices/disk")
    assert disk is not None
    readonly = disk.find("readonly")
    assert readonly is not None
    disk.remove(readonly)
    return ET.tostring(root, encoding="unicode")


@pytest.fixture
def probe(lab: Lab) -> Iterator[tuple[str, Path]]:
    """(XML, disk) of a guest with a writable disk; every copy of it is gone afterwards."""
    disk = lab.state_dir / "guests" / f"{PROBE}.img"
    shutil.copyfile(lab.state_dir / "guest.img", disk)
    spec = DomainSpec(name=PROBE, host=SOURCE)
    emulator = find_tool("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
    xml = _writable(domain_xml(spec, disk, lab.serial_log(PROBE), emulator))
    try:
        yield xml, disk
    finally:
        for host in lab.hosts:
            for name in (PROBE, f"{PROBE}-copy"):
                try:
                    dom = lab.connection(host.name).lookupByName(name)
                except libvirt.libvirtError:
                    continue
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()
        disk.unlink(missing_ok=True)


def _lease(lab: Lab, disk: Path) -> Path:
    """The lease file virtlockd keeps for ``disk``: named by the SHA-256 of its path."""
    return lab.state_dir / LOCKSPACE_DIR / hashlib.sha256(str(disk).encode()).hexdigest()


def _write_lock_holders(path: Path) -> set[int]:
    """Pids holding a POSIX write lock on ``path`` (from /proc/locks, matched by inode)."""
    inode = path.stat().st_ino
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # N: POSIX ADVISORY WRITE PID MAJ:MIN:INODE START END
        if fields[1:4] == ["POSIX", "ADVISORY", "WRITE"] and fields[5].endswith(f":{inode}"):
            holders.add(int(fields[4]))
    return holders


def _virtlockd(lab: Lab, host: str) -> int:
    pids = [
        pid
        for pid in namespace_pids(lab.names.netns(host))
        if Path(f"/proc/{pid}/comm").read_text().strip() == "virtlockd"
    ]
    assert len(pids) == 1, f"{host} runs virtlockd {pids}"
    return pids[0]


def test_a_second_copy_of_a_running_writable_disk_does_not_start(lab, probe):
    xml, disk = probe
    first = lab.connection(SOURCE).defineXML(xml)
    first.create()
    # the lease is held by the first host's virtlockd, in the directory every host shares
    assert _write_lock_holders(_lease(lab, disk)) == {_virtlockd(lab, SOURCE)}

    # the same domain on another host, and another domain on the same disk: both refused
    same = lab.connection(DESTINATION).defineXML(xml)
    with pytest.raises(libvirt.libvirtError):
        same.create()
    other = ET.fromstring(xml)
    name = other.find("name")
    assert name is not None
    name.text = f"{PROBE}-copy"
    copy = lab.connection(DESTINATION).defineXML(ET.tostring(other, encoding="unicode"))
    with pytest.raises(libvirt.libvirtError):
        copy.create()

    assert not same.isActive() and not copy.isActive()
    assert first.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert lab.running_hosts()[PROBE] == [SOURCE]


def test_a_source_paused_by_a_lost_client_cannot_resume_while_the_destination_runs(lab, probe):
    """The exact state of a client killed between Finish and Confirm: libvirt's lease refuses the resume."""
    xml, disk = probe
    lab.connection(SOURCE).defineXML(xml).create()
    source, destination = lab.host(SOURCE), lab.host(DESTINATION)
    virsh = find_tool("virsh") or "virsh"
    # client-driven, so the client itself must send Confirm; --unsafe because libvirt cannot tell that
    # every lab host sees the same disk file (the lease is what makes it safe)
    argv = [virsh, "-c", source.libvirt_uri, "migrate", "--live", "--unsafe", "--persistent"]
    argv += ["--undefinesource", PROBE, destination.libvirt_uri]
    argv += ["--migrateuri", destination.migration_uri]
    ports: list[int] = []
    with confirm_never_arrives(source.address):
        client = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(
                f"{PROBE} running on {DESTINATION}",
                lambda: (copy_of(lab, DESTINATION, PROBE) or (0,))[0] == libvirt.VIR_DOMAIN_RUNNING,
                timeout=120,
            )
            ports = ports_to(client.pid, source.address)
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait(10)
        reset_connections(ports, source.address)
    wait_until(
        f"{PROBE} left paused on {SOURCE}",
        lambda: (copy_of(lab, SOURCE, PROBE) or (0, 0))[:2] == PAUSED_BY_MIGRATION,
        timeout=60,
        poll=0.2,
    )
    assert _write_lock_holders(_lease(lab, disk)) == {_virtlockd(lab, DESTINATION)}

    with pytest.raises(libvirt.libvirtError) as refused:
        lab.connection(SOURCE).lookupByName(PROBE).resume()

    assert refused.value.get_error_code() == libvirt.VIR_ERR_RESOURCE_BUSY
    assert "is locked" in str(refused.value)
    assert (copy_of(lab, SOURCE, PROBE) or (0, 0))[:2] == PAUSED_BY_MIGRATION
    assert copy_of(lab, DESTINATION, PROBE) == (
        libvirt.VIR_DOMAIN_RUNNING,
        libvirt.VIR_DOMAIN_RUNNING_MIGRATED,
        True,
        True,
    )
