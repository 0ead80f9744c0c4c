"""Incremental moves in the lab: qcow2 overlays on a base image both hosts hold, only the top copied."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests.integration.actioner.test_local_storage_lab import (
    CHUNK,
    DESTINATION,
    SOURCE,
    move_while_writing,
    stop_guest,
    wait_for_acks,
)
from tests.lab_fixtures import lab_up, spare_lab_id
from virtbalance.lab import Lab, diskwriter
from virtbalance.lab.dial import read_log

pytestmark = [pytest.mark.integration, pytest.mark.lab]


@pytest.fixture(scope="module")
def overlay_lab() -> Iterator[Lab]:
    with lab_up("local-storage-qcow2", spare_lab_id()) as instance:
        yield instance


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_incremental_move_copies_the_overlays_onto_the_destinations_base(overlay_lab, tmp_path):
    lab = overlay_lab
    bases = {}
    for name in CHUNK:
        spec = lab.scenario.domain(name)
        base = lab.disk_image(name, DESTINATION).with_name(str(spec.base_file))
        bases[name] = (base, digest(base))
    services, plan_id, _, at_switchover = move_while_writing(
        lab, tmp_path, copy_storage="incremental"
    )
    for name in CHUNK:
        wait_for_acks(lab, name, at_switchover[name] + 50)
    rows = {r.domain: r for r in services.journal.migrations(plan_id)}
    for name in CHUNK:
        stop_guest(lab, name, DESTINATION)
        acknowledged = diskwriter.acknowledged(read_log(lab.serial_log(name)))
        assert acknowledged == list(range(1, len(acknowledged) + 1))
        ring = diskwriter.read_ring(lab.disk_contents(name, DESTINATION))
        assert diskwriter.missing_writes(acknowledged, ring) == []
        # the guest wrote to the overlay only: the destination's base is untouched
        base, before = bases[name]
        assert digest(base) == before
        row = rows[name]
        assert row.state == "done" and row.source_disk == "kept"
        assert row.disk_total > 0, row
        # the kept overlay on the source stopped at the switchover
        old = diskwriter.read_ring(lab.disk_contents(name, SOURCE))
        assert max(old.values()) < acknowledged[-1]
    services.close()
