"""A libvirt host vanishes mid-plan (its libvirtd killed, as on a real hypervisor whose daemon dies):
afterwards every VM runs exactly once, no chunk is split, and the journal says what really happened."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.actioner.test_lab import (
    CHUNK,
    SOURCE,
    TOKEN,
    assert_whole_cluster_sane,
    firing,
    loaded_lab,
    post,
    run_app,
    write_config,
)
from tests.waiting import wait_until
from virtbalance.actioner.journal import MigrationRow
from virtbalance.actioner.services import Services
from virtbalance.lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]

__all__ = ["loaded_lab"]  # the fixture, shared with the other actioner lab tests


@pytest.fixture
def revive(lab: Lab):
    """Hosts whose libvirtd a test kills come back even when the test fails, for the next tests."""
    yield lab
    for host in lab.hosts:
        lab.start_libvirtd(host.name)


def start_worker(services: Services) -> threading.Thread:
    worker = threading.Thread(target=services.worker.drain_queue, kwargs={"timeout": 300})
    worker.start()
    return worker


def migrating(services: Services) -> dict[str, dict[str, Any]]:
    """The moves in flight with job progress, once every chunk member is in one (copying memory)."""
    progress = dict(services.progress)
    return progress if set(CHUNK) <= set(progress) else {}


def assert_journal_honest(lab: Lab, rows: list[MigrationRow]) -> dict[str, str]:
    """Every domain once, no chunk split, and each journaled move where its state says it is."""
    placement = assert_whole_cluster_sane(lab)
    for row in rows:
        assert row.state in ("done", "failed", "rolled_back", "skipped"), row
        expected = row.destination if row.state == "done" else row.source
        assert placement[row.domain] == expected, (row, placement)
        if row.state == "skipped":
            assert row.reason, row
        if row.state == "failed":
            assert row.error or row.reason, row
    done = [r.domain for r in rows if r.state == "done"]
    assert len(done) == len(set(done)), f"a domain moved twice: {done}"
    return placement


def restart(config: Path, services: Services) -> tuple[Any, Services]:
    """Stop this actioner and start another on the same journal: its start-up reconcile runs."""
    services.close()
    return run_app(config)


@dataclass
class Killed:
    """A plan that failed when a host's libvirtd was stopped under it."""

    config: Path
    services: Services
    plan_id: int
    host: str  # whose libvirtd was stopped
    rows: list[MigrationRow]  # the plan's journal rows when it failed


def kill_libvirtd_mid_plan(
    lab: Lab, tmp_path: Path, victim: Callable[[dict[str, Any]], str]
) -> Killed:
    """Relieve hv1 and, once the chunk's members migrate, stop the libvirtd of the host ``victim``
    picks from the moves in flight; the plan must fail."""
    # A bandwidth cap keeps the members copying long enough for the kill to land inside the moves.
    config = write_config(lab, tmp_path, bandwidth_mib_per_s=1)
    client, services = run_app(config)
    plan_id = post(client, firing(SOURCE)).get_json()["queued_plan"]
    worker = start_worker(services)
    flight = wait_until("the chunk's members migrating", lambda: migrating(services), poll=0.05)
    host = victim(flight)
    lab.stop_libvirtd(host)
    worker.join(300)
    assert not worker.is_alive()
    plan = services.journal.plan(plan_id)
    assert plan.state == "failed", plan.detail
    return Killed(config, services, plan_id, host, services.journal.migrations(plan_id))


def revive_and_reconcile(lab: Lab, killed: Killed) -> tuple[Services, dict[str, str]]:
    """Start the stopped libvirtd again and a new actioner on the journal: its reconcile must leave
    the journal honest with the same rows. Returns the new services and the placement."""
    lab.start_libvirtd(killed.host)
    _client, services = restart(killed.config, killed.services)
    after = services.journal.migrations(killed.plan_id)
    placement = assert_journal_honest(lab, after)
    assert [(r.id, r.domain) for r in after] == [(r.id, r.domain) for r in killed.rows]
    return services, placement


def test_destination_libvirtd_killed_while_the_chunk_migrates_to_it(loaded_lab, revive, tmp_path):
    lab = loaded_lab

    def destination(flight: dict[str, Any]) -> str:
        (host,) = {entry["destination"] for entry in flight.values()}
        return host

    killed = kill_libvirtd_mid_plan(lab, tmp_path, destination)
    states = {r.domain: r.state for r in killed.rows if r.domain in CHUNK}
    assert states != dict.fromkeys(CHUNK, "done")
    services, placement = revive_and_reconcile(lab, killed)
    assert all(placement[d] == SOURCE for d in CHUNK), placement
    services.close()


def test_source_libvirtd_killed_mid_plan(loaded_lab, revive, tmp_path):
    lab = loaded_lab
    killed = kill_libvirtd_mid_plan(lab, tmp_path, lambda _flight: SOURCE)
    services, placement = revive_and_reconcile(lab, killed)
    assert len({placement[d] for d in CHUNK}) == 1
    services.close()


def test_a_destination_unreachable_at_the_recheck_skips_its_chunks_only(
    fresh_lab, revive, tmp_path
):
    lab = fresh_lab
    config = write_config(lab, tmp_path, overloaded="none")
    client, services = run_app(config)
    executor = services.worker.executor
    original = executor.precheck
    killed: list[str] = []

    def precheck(plan_id, group, snapshot, own_moves):
        # The second chunk step's destination vanishes between planning and its re-check.
        if own_moves and not killed:
            killed.append(group[0].destination)
            lab.stop_libvirtd(group[0].destination)
        return original(plan_id, group, snapshot, own_moves)

    executor.precheck = precheck
    response = client.post(f"/api/v1/drain/{SOURCE}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202
    plan_id = response.get_json()["queued_plan"]
    services.worker.drain_queue(timeout=300)
    assert killed, "the plan had a single chunk step"
    (dead,) = killed
    plan = services.journal.plan(plan_id)
    rows = services.journal.migrations(plan_id)
    by_step: dict[int, list[MigrationRow]] = {}
    for row in rows:
        by_step.setdefault(row.step, []).append(row)
    for step, members in by_step.items():
        states = {r.state for r in members}
        if step == 0:
            assert states == {"done"}, members
        elif members[0].destination == dead:
            assert states == {"skipped"}, members
            assert all(r.reason == f"precondition: host {dead} unreachable" for r in members)
        else:
            assert states == {"done"}, members  # the other destination still takes its chunks
    assert plan.state == "executed", plan.detail
    assert f"host {dead} unreachable" in plan.detail
    lab.start_libvirtd(dead)
    _client, services = restart(config, services)
    after = services.journal.migrations(plan_id)
    assert [(r.id, r.state) for r in after] == [(r.id, r.state) for r in rows]
    assert_journal_honest(lab, after)
    services.close()
