"""The actioner killed between Finish and Confirm, made to happen every time rather than by luck of timing.

With client-driven migration the actioner itself calls Confirm on the source after the destination's
Finish has started the guest. The test drops exactly that call on its way to the source's libvirtd
(an iptables match on the RPC header's program and procedure): every other call goes through, so
the destination runs the guest and the actioner waits on a Confirm that never arrives. Then the actioner
is killed; libvirt leaves the source paused with no job, as documented, and the test checks that it
did. A restarted actioner must finish the move from proof, or, when the destination does not answer,
leave the domain paused, journal it ambiguous, raise the metric, and resolve it once the destination is
back.
"""

from __future__ import annotations

import gc
import signal
import sqlite3
from pathlib import Path

import libvirt
import pytest
import requests
import yaml

from tests.integration.actioner.test_lab import (
    CHUNK,
    REPO,
    SOURCE,
    TOKEN,
    assert_whole_cluster_sane,
    loaded_lab,
    post_firing,
    write_config,
)
from tests.integration.confirm_faults import (
    confirm_never_arrives,
    copy_of,
    ports_to,
    reset_connections,
)
from tests.waiting import wait_until
from virtbalance.lab.actioner_process import ensure_stopped, start_actioner, wait_healthy

pytestmark = [pytest.mark.integration, pytest.mark.lab]
__all__ = ["loaded_lab"]  # the fixture, imported for use here

DESTINATION = "hv3"


def _rows(journal: Path) -> list[tuple[str, str, str, str, str]]:
    with sqlite3.connect(journal) as db:
        return db.execute(
            "SELECT domain, source, destination, state, kind FROM migrations ORDER BY id"
        ).fetchall()


def _kill_between_finish_and_confirm(lab, tmp_path: Path) -> tuple[Path, Path, str]:
    """Run the chunk's move, kill the actioner after Finish and before Confirm: (config, journal, domain)."""
    config = write_config(
        lab,
        tmp_path,
        peer2peer=False,
        max_concurrent=1,
        max_concurrent_per_host=1,
        bandwidth_mib_per_s=16,
        recheck_interval="2s",
    )
    data = yaml.safe_load(config.read_text())
    url = f"http://{data['webhook']['listen']}"
    journal = Path(data["journal"]["path"])
    log = tmp_path / "actioner.log"
    source_address = lab.host(SOURCE).address
    process = start_actioner(config, log, REPO)

    def arrived() -> str | None:
        for name in CHUNK:
            if (copy_of(lab, DESTINATION, name) or (0,))[0] == libvirt.VIR_DOMAIN_RUNNING:
                return name
        return None

    seen: list[object] = []

    def stranded() -> bool:
        copy = copy_of(lab, SOURCE, domain)
        job = lab.connection(SOURCE).lookupByName(domain).jobInfo()[0] if copy else None
        seen[:] = [copy, job]
        paused = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION, True, True)
        return copy == paused and job == libvirt.VIR_DOMAIN_JOB_NONE

    try:
        wait_healthy(url, process, 120)
        with confirm_never_arrives(source_address):
            post_firing(url)
            # Finish has started the guest there; the actioner now waits on a Confirm that never comes
            domain = wait_until(f"a chunk member running on {DESTINATION}", arrived, timeout=180)
            ports = ports_to(process.pid, source_address)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            # As libvirt documents for a client lost after Finish, the source then waits, paused,
            # with no job.
            reset_connections(ports, source_address)
            wait_until(f"{domain} left paused on {SOURCE} without a job", stranded, 60, 0.2)
    except AssertionError as exc:
        libvirtd_log = (lab.state_dir / "hosts" / SOURCE / "libvirtd.log").read_text()[-2500:]
        raise AssertionError(
            f"{exc}; (state, reason, active, persistent), job: {seen}; {SOURCE}'s libvirtd said: "
            f"{libvirtd_log}"
        ) from None
    finally:
        ensure_stopped(process)
    assert copy_of(lab, DESTINATION, domain) == (
        libvirt.VIR_DOMAIN_RUNNING,
        libvirt.VIR_DOMAIN_RUNNING_MIGRATED,
        True,
        True,
    )
    return config, journal, domain


def _expect_move_finished_then_chunk_made_whole(lab, journal: Path, domain: str) -> None:
    placement = assert_whole_cluster_sane(lab)
    assert {placement[d] for d in CHUNK} == {SOURCE}
    rows = _rows(journal)
    moves = {d: state for d, _s, _t, state, kind in rows if kind == "move"}
    # the move that libvirt completed is journaled as completed, then undone as a journaled rollback
    assert moves[domain] == "rolled_back", rows
    assert (domain, DESTINATION, SOURCE, "done", "rollback") in rows
    assert all(state == "failed" for d, state in moves.items() if d != domain), rows
    assert not any(state in ("running", "planned", "ambiguous") for *_x, state, _k in rows)


def test_a_kill_between_finish_and_confirm_is_finished_from_proof(loaded_lab, tmp_path):
    config, journal, domain = _kill_between_finish_and_confirm(loaded_lab, tmp_path)
    log = tmp_path / "actioner.log"
    url = f"http://{yaml.safe_load(config.read_text())['webhook']['listen']}"
    process = start_actioner(config, log, REPO)
    try:
        wait_healthy(url, process, 120)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        ensure_stopped(process)
    _expect_move_finished_then_chunk_made_whole(loaded_lab, journal, domain)
    text = log.read_text()
    # judged from proof: the paused source was destroyed beside the running copy, never resumed
    assert f"{domain}: keep (runs on {DESTINATION}" in text
    assert f"{domain}: resume (" not in text


def test_a_silent_destination_at_restart_leaves_the_source_paused_until_it_answers(
    loaded_lab, tmp_path
):
    lab = loaded_lab
    config, journal, domain = _kill_between_finish_and_confirm(lab, tmp_path)
    log = tmp_path / "actioner.log"
    url = f"http://{yaml.safe_load(config.read_text())['webhook']['listen']}"
    # A libvirt connection dropped above is closed by its __del__, which sends a close call to its
    # host: collected while the destination is cut off, it would block this test until TCP gives up
    # (seen once: the garbage collector ran inside wait_healthy). Collect it while the host answers.
    gc.collect()
    lab.disconnect(DESTINATION)
    process = start_actioner(config, log, REPO)
    try:
        try:
            wait_healthy(url, process, 240)
            # left exactly as it was: paused on the source, journaled ambiguous, alerting
            assert copy_of(lab, SOURCE, domain)[:2] == (
                libvirt.VIR_DOMAIN_PAUSED,
                libvirt.VIR_DOMAIN_PAUSED_MIGRATION,
            )
            metrics = requests.get(
                f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
            ).text
            assert f'virtbalance_domain_ambiguous{{domain="{domain}"}} 1.0' in metrics
            with sqlite3.connect(journal) as db:
                (seen,) = db.execute(
                    "SELECT seen FROM ambiguous WHERE domain=?", (domain,)
                ).fetchone()
            assert f"{DESTINATION}: did not answer" in seen
            assert f"{SOURCE}: paused by a migration (persistent)" in seen
        finally:
            lab.reconnect(DESTINATION)
        # the periodic recheck proves it once the destination answers, and makes the chunk whole
        wait_until(
            "the recheck to resolve the ambiguous domain",
            lambda: not any(state == "ambiguous" for *_x, state, _k in _rows(journal)),
            timeout=180,
            poll=1.0,
        )
        wait_until(
            "the chunk whole again",
            lambda: (
                all(row[3] != "running" for row in _rows(journal))
                and len({_host(lab, d) for d in CHUNK}) == 1
            ),
            timeout=180,
            poll=1.0,
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        ensure_stopped(process)
    _expect_move_finished_then_chunk_made_whole(lab, journal, domain)


def _host(lab, domain: str) -> str | None:
    hosts = lab.running_hosts()[domain]
    return hosts[0] if len(hosts) == 1 else None
