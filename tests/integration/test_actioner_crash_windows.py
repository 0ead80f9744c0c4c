"""The actioner killed between Finish and Confirm, made to happen every time rather than by luck of timing.

With client-driven migration the actioner itself calls Confirm on the source after the destination's
Finish has started the guest. The test lets the migration run, and as soon as the source shows the
migration job it drops every packet the actioner sends to the source's libvirtd (the source's replies
still arrive): Perform's answer reaches the actioner, Finish on the destination goes through, and
Confirm never arrives. Once the destination runs the guest, the actioner is killed; libvirt then leaves
the source paused with no job, as documented, and the test checks that it did. A restarted actioner
must finish the move from proof, or, when the destination does not answer, leave the domain paused,
journal it ambiguous, raise the metric, and resolve it once the destination is back.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
import requests
import yaml

from tests.integration.test_actioner_lab import (
    CHUNK,
    SOURCE,
    TOKEN,
    _start_actioner,
    _wait_healthy,
    assert_whole_cluster_sane,
    firing,
    loaded_lab,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.lab]
__all__ = ["loaded_lab"]  # the fixture, imported for use here

DESTINATION = "hv3"


def _rows(journal: Path) -> list[tuple[str, str, str, str, str]]:
    with sqlite3.connect(journal) as db:
        return db.execute(
            "SELECT domain, source, destination, state, kind FROM migrations ORDER BY id"
        ).fetchall()


def _actioner_ports(pid: int, address: str) -> list[int]:
    """Local ports of the actioner's TCP connections to ``address``'s libvirtd."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", "dst", f"{address}:16509"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ports = []
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[2]  # Recv-Q Send-Q Local:Port Peer:Port Process
            ports.append(int(local.rsplit(":", 1)[1]))
    return ports


@contextlib.contextmanager
def _drop_requests(ports: list[int], address: str) -> Iterator[None]:
    """Drop what these local ports send to ``address``'s libvirtd; its answers still come in."""
    rules = [
        ["OUTPUT", "-p", "tcp", "-d", address, "--dport", "16509", "--sport", str(p), "-j", "DROP"]
        for p in ports
    ]
    for rule in rules:
        subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D", *rule], check=False)


def _copy(lab, host: str, domain: str) -> tuple[int, int, bool, bool] | None:
    """(state, reason, active, persistent) of ``domain`` on ``host``, None when it is not there."""
    try:
        dom = lab.connection(host).lookupByName(domain)
    except libvirt.libvirtError:
        return None
    state, reason = dom.state()
    return state, reason, bool(dom.isActive()), bool(dom.isPersistent())


def _wait(what: str, predicate, timeout: float = 120.0, poll: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


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
    process = _start_actioner(config, log)
    try:
        _wait_healthy(url, process)
        response = requests.post(
            f"{url}/api/v1/alerts",
            json=firing(SOURCE),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert response.status_code == 200

        def migrating() -> str | None:
            """A member whose memory is being sent: Perform has been asked for (the job itself is
            there from Begin on, when the actioner still has to ask the source for more)."""
            for name in CHUNK:
                with contextlib.suppress(libvirt.libvirtError):
                    stats = lab.connection(SOURCE).lookupByName(name).jobStats(0)
                    if stats.get("memory_processed", 0) > 0:
                        return name
            return None

        domain = _wait("memory of a member being sent from the source", migrating, timeout=180)
        with _drop_requests(_actioner_ports(process.pid, source_address), source_address):
            _wait(
                f"{domain} running on {DESTINATION}",
                lambda: (_copy(lab, DESTINATION, domain) or (0,))[0] == libvirt.VIR_DOMAIN_RUNNING,
            )
            process.send_signal(signal.SIGKILL)
            process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    # what libvirt documents for a client lost after Finish: the source waits, paused, with no job
    _wait(
        f"{domain} left paused by the migration on {SOURCE} without a job",
        lambda: (
            _copy(lab, SOURCE, domain)
            == (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION, True, True)
            and lab.connection(SOURCE).lookupByName(domain).jobInfo()[0]
            == libvirt.VIR_DOMAIN_JOB_NONE
        ),
        timeout=60,
        poll=0.2,
    )
    assert _copy(lab, DESTINATION, domain) == (
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
    process = _start_actioner(config, log)
    try:
        _wait_healthy(url, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
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
    lab.disconnect(DESTINATION)
    process = _start_actioner(config, log)
    try:
        try:
            _wait_healthy(url, process, timeout=240)
            # left exactly as it was: paused on the source, journaled ambiguous, alerting
            assert _copy(lab, SOURCE, domain)[:2] == (
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
        _wait(
            "the recheck to resolve the ambiguous domain",
            lambda: not any(state == "ambiguous" for *_x, state, _k in _rows(journal)),
            timeout=180,
            poll=1.0,
        )
        _wait(
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
        if process.poll() is None:
            process.kill()
            process.wait(10)
    _expect_move_finished_then_chunk_made_whole(lab, journal, domain)


def _host(lab, domain: str) -> str | None:
    hosts = lab.running_hosts()[domain]
    return hosts[0] if len(hosts) == 1 else None
