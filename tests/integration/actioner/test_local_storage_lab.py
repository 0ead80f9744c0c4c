"""Moves with local storage in the lab: guests writing to host-local disks, copied by the actioner."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.integration.actioner.test_lab import TOKEN, run_app, write_config
from tests.lab_fixtures import lab_up, spare_lab_id
from virtbalance.lab import Lab, diskwriter
from virtbalance.lab.dial import read_log
from virtbalance.lab.hosts import IMAGE_DIR

pytestmark = [pytest.mark.integration, pytest.mark.lab]

CHUNK = ("store1", "store2")  # group:store on ls1 in the local-storage scenario
SOURCE, DESTINATION = "ls1", "ls2"
WRITES_BEFORE_MOVE = 200  # the guests are well into writing when the move starts
WAIT = 60.0  # for the guests' writes; a guest that stops writing fails the test here


@pytest.fixture(scope="module")
def storage_lab() -> Iterator[Lab]:
    with lab_up("local-storage", spare_lab_id()) as instance:
        yield instance


@pytest.fixture
def fresh_storage_lab(storage_lab: Lab) -> Lab:
    """Both writers running anew on ls1, and no image of theirs on ls2."""
    storage_lab.repair()
    storage_lab.reset()
    for name in CHUNK:
        storage_lab.disk_image(name, DESTINATION).unlink(missing_ok=True)
    return storage_lab


def acks(lab: Lab, domain: str) -> list[int]:
    return diskwriter.acknowledged(read_log(lab.serial_log(domain)))


def wait_for_acks(lab: Lab, domain: str, at_least: int) -> list[int]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        values = acks(lab, domain)
        if values and values[-1] >= at_least:
            return values
        time.sleep(0.2)
    raise AssertionError(f"{domain} acknowledged only {acks(lab, domain)[-1:]} (wanted {at_least})")


def drain_source(lab: Lab, tmp_path: Path, copy_storage: str = "all", **execution: object):
    client, services = run_app(
        write_config(lab, tmp_path, overloaded="none", copy_storage=copy_storage, **execution)
    )
    response = client.post(f"/api/v1/drain/{SOURCE}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202, response.get_data(as_text=True)
    plan_id = response.get_json()["queued_plan"]
    services.worker.drain_queue(timeout=600)
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(
        as_text=True
    )
    return services, plan_id, metrics


def move_while_writing(lab: Lab, tmp_path: Path, **execution: object):
    """Drain the chunk off the source once its guests are writing; it must end running on the
    destination only. Returns the services, the plan, the metrics and each guest's last ack at the
    switchover."""
    for name in CHUNK:
        wait_for_acks(lab, name, WRITES_BEFORE_MOVE)
    services, plan_id, metrics = drain_source(lab, tmp_path, **execution)
    plan = services.journal.plan(plan_id)
    assert plan.state == "executed", plan.detail
    at_switchover = {name: acks(lab, name)[-1] for name in CHUNK}
    running = lab.running_hosts()
    assert {name: running[name] for name in CHUNK} == {name: [DESTINATION] for name in CHUNK}
    return services, plan_id, metrics, at_switchover


def stop_guest(lab: Lab, domain: str, host: str) -> None:
    """Stop the guest hard (as a host failure would): only what reached its disk counts."""
    lab.connection(host).lookupByName(domain).destroy()


def images_inside(lab: Lab, host: str) -> list[str]:
    """The files in ``host``'s image directory as the host itself sees it (a tmpfs there included)."""
    listing = lab.run_in_host(host, ["ls", "-A", IMAGE_DIR], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    return sorted(listing.stdout.split())


@pytest.mark.parametrize("source_disk", ["keep", "remove"])
def test_a_chunk_with_local_disks_moves_while_writing_and_loses_no_acknowledged_write(
    fresh_storage_lab, tmp_path, source_disk
):
    lab = fresh_storage_lab
    services, plan_id, metrics, at_switchover = move_while_writing(
        lab, tmp_path, source_disk_after_move=source_disk
    )
    # ... persistent on the destination, and nothing is left on the source
    for name in CHUNK:
        assert lab.connection(DESTINATION).lookupByName(name).isPersistent()
        with pytest.raises(libvirt.libvirtError):
            lab.connection(SOURCE).lookupByName(name)
    # ... and keep writing there, to the destination's own image
    for name in CHUNK:
        wait_for_acks(lab, name, at_switchover[name] + 50)

    rows = {r.domain: r for r in services.journal.migrations(plan_id)}
    for name in CHUNK:
        stop_guest(lab, name, DESTINATION)
        log = read_log(lab.serial_log(name))
        acknowledged = diskwriter.acknowledged(log)
        assert acknowledged == list(range(1, len(acknowledged) + 1)), f"{name}: gaps in its acks"
        assert diskwriter.write_errors(log) == []
        ring = diskwriter.read_ring(lab.disk_image(name, DESTINATION))
        # every value acknowledged before the switchover and after it is on the destination's disk
        assert diskwriter.missing_writes(acknowledged, ring) == []
        assert acknowledged[-1] > at_switchover[name] >= WRITES_BEFORE_MOVE

        left = lab.disk_image(name, SOURCE)
        if source_disk == "keep":
            # a separate file on the host-local disk: it stopped at the switchover
            old = diskwriter.read_ring(left)
            assert max(old.values()) < acknowledged[-1]
        else:
            assert not left.exists()

        row = rows[name]
        assert (row.state, row.source, row.destination) == ("done", SOURCE, DESTINATION)
        # libvirt's job stats as of the last progress poll (every 0.5 s), before the copy ended
        assert row.disk_total >= 64 * 1024**2, row
        assert 0 < row.disk_processed <= row.disk_total, row
        assert row.source_disk == {"keep": "kept", "remove": "removed"}[source_disk]
    assert "virtbalance_chunk_split_seconds_count 1.0" in metrics
    services.close()


@pytest.fixture
def full_destination(fresh_storage_lab) -> Iterator[Lab]:
    """ls2's image directory is a 16 MiB tmpfs: too small for one 64 MiB disk of the chunk."""
    lab = fresh_storage_lab
    mounted = lab.run_in_host(
        DESTINATION, ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", IMAGE_DIR]
    )
    assert mounted.returncode == 0
    try:
        yield lab
    finally:
        lab.run_in_host(DESTINATION, ["umount", IMAGE_DIR])
        with contextlib.suppress(libvirt.libvirtError):
            lab.connection(DESTINATION).storagePoolLookupByName("default").refresh(0)


def test_a_copy_to_a_full_destination_leaves_the_chunk_on_its_source_and_nothing_behind(
    full_destination, tmp_path
):
    lab = full_destination
    for name in CHUNK:
        wait_for_acks(lab, name, WRITES_BEFORE_MOVE)
    services, plan_id, _ = drain_source(lab, tmp_path)
    plan = services.journal.plan(plan_id)
    assert plan.state == "failed", plan.detail
    rows = services.journal.migrations(plan_id)
    assert {r.domain: r.state for r in rows if r.kind == "move"} == dict.fromkeys(CHUNK, "failed")
    for row in rows:
        # the images were created (sparse), then the copy itself ran out of space
        assert "No space left on device" in row.error, row.error
    running = lab.running_hosts()
    assert {name: running[name] for name in CHUNK} == {name: [SOURCE] for name in CHUNK}
    for name in CHUNK:
        dom = lab.connection(SOURCE).lookupByName(name)
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        with pytest.raises(libvirt.libvirtError):
            lab.connection(DESTINATION).lookupByName(name)
    assert images_inside(lab, DESTINATION) == []
    # still writing on the source, to its own disk
    for name in CHUNK:
        wait_for_acks(lab, name, acks(lab, name)[-1] + 50)
    services.close()
