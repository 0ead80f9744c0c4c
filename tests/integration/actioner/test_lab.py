"""The actioner against the lab: real libvirt hosts, real live migrations, a real Alertmanager for freezes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import pytest
import requests
import yaml

from tests.actioner_fixtures import payload
from virtbalance.actioner.app import create_app
from virtbalance.actioner.config import load_config
from virtbalance.actioner.runtime import build_services
from virtbalance.domain_metadata import NAMESPACE, PREFIX, Placement
from virtbalance.lab.actioner_process import ensure_stopped, start_actioner, wait_healthy
from virtbalance.lab.demo.clients import Alertmanager
from virtbalance.lab.demo.stack import actioner_hosts
from virtbalance.lab.hosts import private_bridge_commands
from virtbalance.lab.state import read_state

pytestmark = [pytest.mark.integration, pytest.mark.lab]
log = logging.getLogger(__name__)

CHUNK = ("app1", "db1", "web1")  # lan11+lan12 on hv1 in the default scenario
SOURCE = "hv1"
TOKEN = "lab-webhook-token"
REPO = Path(__file__).resolve().parents[3]


def write_config(
    lab, tmp_path: Path, *, overloaded: str = SOURCE, policy=None, **execution
) -> Path:
    """An actioner config for the lab. ``overloaded`` gets a tiny declared capacity (0.1 CPU), the other
    hosts 16 CPUs, so the real guests' CPU use decides the plan even on a busy shared machine."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    base_policy = yaml.safe_load((REPO / "alerting-rules" / "policy-lab.yaml").read_text())
    data: dict[str, Any] = {
        "hosts": actioner_hosts(lab.hosts, lambda h: 0.1 if h.name == overloaded else 16),
        "policy": {**base_policy, **(policy or {})},
        "journal": {"path": str(tmp_path / "journal.sqlite")},
        "webhook": {"token_file": str(token), "listen": f"127.0.0.1:{free_port()}"},
        "prometheus": {"fallback_sample_interval": "1s"},
        "execution": {"migration_timeout": "90s", **execution},
    }
    path = tmp_path / "actioner.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port_reusable(port: int, timeout: float = 90) -> None:
    """The lab probes a monitoring port with a plain bind, which fails while the previous server's closed
    connections sit in TIME_WAIT (up to 60 s after an earlier test stopped it): wait them out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(2)
    raise AssertionError(f"127.0.0.1:{port} stayed busy")


def running_alertmanager(lab) -> str:
    """The lab's Alertmanager without silences, started if it is not running (these tests use its API).

    Alertmanager keeps silences in its data directory across restarts, so one a failed test left
    would freeze this test's plans: each is expired here, and the log names it.
    """
    url = (read_state(lab.state_dir) or {}).get("alertmanager")
    if not (url and Alertmanager(url).ready()):
        wait_port_reusable(lab.names.alertmanager_port)
        url = lab.start_alertmanager("http://127.0.0.1:9/unused")
    expire_silences(str(url))
    return str(url)


def expire_silences(url: str) -> None:
    """Expire every active silence of the Alertmanager at ``url``, naming each in the log."""
    for left in Alertmanager(url).active_silences():
        log.warning("expiring silence %s left in the lab's Alertmanager: %s", left["id"], left)
        Alertmanager(url).expire_silence(str(left["id"]))


def firing(host: str) -> dict[str, Any]:
    """The recorded Alertmanager notification, re-labelled for ``host`` as a fresh overload."""
    body = payload("firing_hv1")
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    alert = body["alerts"][0]
    alert["labels"]["host"] = host
    alert["startsAt"] = now
    alert["fingerprint"] = hashlib.sha256(f"{host}{now}".encode()).hexdigest()[:16]
    body["groupKey"] = f'{{}}:{{alertname="HostSustainedOverload", host="{host}"}}'
    body["groupLabels"]["host"] = host
    body["commonLabels"]["host"] = host
    return body


@pytest.fixture
def loaded_lab(fresh_lab):
    """hv1's chunk under load, and hv1's independent guests pinned (placement metadata), so relieving hv1
    means moving the chunk whatever the idle guests' CPU noise on this shared machine."""
    fresh_lab.set_load("web1", 45)
    fresh_lab.set_load("app1", 45)
    pinned = [d for d in fresh_lab.scenario.domains if d.host == SOURCE and d.name not in CHUNK]
    for spec in pinned:
        set_placement(fresh_lab, spec.name, Placement(spec.group, spec.anti_affinity, pinned=True))
    yield fresh_lab
    for spec in pinned:
        set_placement(fresh_lab, spec.name, Placement(spec.group, spec.anti_affinity, spec.pinned))


def set_placement(lab, domain: str, placement: Placement) -> None:
    dom = lab.connection(lab.placement()[domain]).lookupByName(domain)
    dom.setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        placement.to_xml(),
        PREFIX,
        NAMESPACE,
        libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG,
    )


def assert_whole_cluster_sane(lab) -> dict[str, str]:
    """Every domain runs exactly once, is persistent only where it runs, and no chunk is split."""
    placement = lab.placement()  # raises unless every domain runs on exactly one host
    for name, host in placement.items():
        for other in lab.hosts:
            try:
                dom = lab.connection(other.name).lookupByName(name)
            except libvirt.libvirtError:
                continue
            assert other.name == host, f"{name} also defined on {other.name}"
            assert dom.isPersistent(), f"{name} has no persistent definition on {host}"
            assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING, f"{name} on {host}: {dom.state()}"
    assert len({placement[d] for d in CHUNK}) == 1, f"chunk split: {placement}"
    return placement


def run_app(config_path: Path):
    config = load_config(config_path)
    services = build_services(config, start=False)
    app = create_app(config, services=services)
    return app.test_client(), services


def post(client, body):
    return client.post("/api/v1/alerts", json=body, headers={"Authorization": f"Bearer {TOKEN}"})


def post_firing(url: str, host: str = SOURCE) -> None:
    """A fresh overload of ``host`` sent to a running actioner process over HTTP, as Alertmanager does."""
    response = requests.post(
        f"{url}/api/v1/alerts",
        json=firing(host),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text


def test_firing_alert_moves_the_whole_chunk_then_cooldown_blocks_a_second_move(
    loaded_lab, tmp_path
):
    fresh_lab = loaded_lab
    client, services = run_app(write_config(fresh_lab, tmp_path))
    response = post(client, firing(SOURCE))
    assert response.status_code == 200
    plan_id = response.get_json()["queued_plan"]
    services.worker.drain_queue(timeout=300)
    plan = services.journal.plan(plan_id)
    assert plan.state == "executed", plan.detail
    moves = services.journal.migrations(plan_id)
    moved = {m.domain: (m.source, m.destination, m.state) for m in moves}
    assert set(CHUNK) <= set(moved), moved
    destinations = {moved[d][1] for d in CHUNK}
    assert len(destinations) == 1 and SOURCE not in destinations
    assert all(moved[d] == (SOURCE, *destinations, "done") for d in CHUNK)
    placement = assert_whole_cluster_sane(fresh_lab)
    (destination,) = destinations
    assert all(placement[d] == destination for d in CHUNK)
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(
        as_text=True
    )
    assert 'virtbalance_plans_total{outcome="executed"} 1.0' in metrics
    assert "virtbalance_chunk_split_seconds_count 1.0" in metrics
    services.close()

    # Now the chunk's new host is the overloaded one (and host_settle is off, so only the VM
    # cooldown stands in the way): the chunk must stay where it is.
    config = write_config(fresh_lab, tmp_path, overloaded=destination, policy={"host_settle": "0s"})
    client, services = run_app(config)
    second = post(client, firing(destination)).get_json()["queued_plan"]
    services.worker.drain_queue(timeout=300)
    again = services.journal.plan(second)
    assert not {m.domain for m in services.journal.migrations(second)} & set(CHUNK)
    assert "vm_cooldown" in again.detail, again.detail
    placement = assert_whole_cluster_sane(fresh_lab)
    assert all(placement[d] == destination for d in CHUNK)
    services.close()


def test_a_silence_on_one_member_freezes_the_whole_chunk(loaded_lab, tmp_path):
    fresh_lab = loaded_lab
    url = running_alertmanager(fresh_lab)
    now = dt.datetime.now(dt.UTC)
    silence = requests.post(
        f"{url}/api/v2/silences",
        json={
            "matchers": [
                {
                    "name": "alertname",
                    "value": "VirtBalanceMigration",
                    "isRegex": False,
                    "isEqual": True,
                },
                {"name": "domain", "value": "db1", "isRegex": False, "isEqual": True},
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + dt.timedelta(minutes=10)).isoformat(),
            "createdBy": "test",
            "comment": "database maintenance",
        },
        timeout=10,
    )
    silence.raise_for_status()
    silence_id = silence.json()["silenceID"]
    try:
        config = write_config(fresh_lab, tmp_path)
        data = yaml.safe_load(config.read_text())
        data["alertmanager"] = {"url": url}
        config.write_text(yaml.safe_dump(data))
        client, services = run_app(config)
        plan_id = post(client, firing(SOURCE)).get_json()["queued_plan"]
        services.worker.drain_queue(timeout=300)
        plan = services.journal.plan(plan_id)
        assert plan.state in ("frozen", "unresolved"), plan.detail
        assert silence_id in plan.detail
        assert not {m.domain for m in services.journal.migrations(plan_id)} & set(CHUNK)
        placement = assert_whole_cluster_sane(fresh_lab)
        assert all(placement[d] == SOURCE for d in CHUNK)
        services.close()
    finally:
        requests.delete(f"{url}/api/v2/silence/{silence_id}", timeout=10)


def _conflicting_definition(lab, host: str, domain: str) -> None:
    """Define an inactive domain of the same name but another UUID on ``host``: libvirt then refuses
    the incoming migration of ``domain`` there, a real failure in the middle of a chunk."""
    source = lab.connection(lab.placement()[domain]).lookupByName(domain)
    root = ET.fromstring(source.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    root.find("uuid").text = str(uuid.uuid4())
    lab.connection(host).defineXML(ET.tostring(root, encoding="unicode"))


def test_a_failed_member_rolls_the_chunk_back(loaded_lab, tmp_path):
    fresh_lab = loaded_lab
    others = [h.name for h in fresh_lab.hosts if h.name != SOURCE]
    for host in others:
        _conflicting_definition(fresh_lab, host, "db1")
    try:
        client, services = run_app(write_config(fresh_lab, tmp_path))
        plan_id = post(client, firing(SOURCE)).get_json()["queued_plan"]
        services.worker.drain_queue(timeout=300)
        plan = services.journal.plan(plan_id)
        assert plan.state == "failed", plan.detail
        rows = services.journal.migrations(plan_id)
        states = {m.domain: m.state for m in rows if m.kind == "move"}
        assert states["db1"] == "failed"
        assert states["web1"] == "rolled_back" and states["app1"] == "rolled_back", states
        # each move back is a journaled migration of its own
        back = sorted(
            (m.domain, m.source, m.destination, m.state) for m in rows if m.kind == "rollback"
        )
        assert [(d, t, state) for d, _s, t, state in back] == [
            ("app1", SOURCE, "done"),
            ("web1", SOURCE, "done"),
        ]
        metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(
            as_text=True
        )
        assert 'virtbalance_migrations_total{result="rolled_back"} 2.0' in metrics
        services.close()
    finally:
        for host in others:
            dom = fresh_lab.connection(host).lookupByName("db1")
            if not dom.isActive():
                dom.undefine()
    placement = fresh_lab.placement()
    assert all(placement[d] == SOURCE for d in CHUNK), placement
    for d in CHUNK:
        assert fresh_lab.connection(SOURCE).lookupByName(d).isPersistent()


def _journal_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT id, plan_id, domain, source, destination, state FROM migrations ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize(
    "peer2peer",
    [False, True],
    ids=[
        "client-driven (libvirt aborts the orphaned job)",
        "peer2peer (the job outlives the actioner)",
    ],
)
def test_killing_the_actioner_mid_migration_leaves_every_domain_once_and_repeats_nothing(
    loaded_lab, tmp_path, peer2peer
):
    fresh_lab = loaded_lab
    # A bandwidth cap stretches the migration so the kill lands inside it.
    config = write_config(fresh_lab, tmp_path, bandwidth_mib_per_s=2, peer2peer=peer2peer)
    data = yaml.safe_load(config.read_text())
    url = f"http://{data['webhook']['listen']}"
    journal = Path(data["journal"]["path"])
    log = tmp_path / "actioner.log"
    process = start_actioner(config, log, REPO)
    try:
        wait_healthy(url, process, 120)
        post_firing(url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(row[5] == "running" for row in _journal_rows(journal)):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"no migration started: {log.read_text()[-3000:]}")
        time.sleep(1.0)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        before = _journal_rows(journal)
        assert any(row[5] == "running" for row in before)

        process = start_actioner(config, log, REPO)
        wait_healthy(url, process, 120)
        # a clean stop (systemd's SIGTERM) ends the process with 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        ensure_stopped(process)
    after = _journal_rows(journal)
    placement = assert_whole_cluster_sane(fresh_lab)
    assert not any(row[5] in ("running", "planned") for row in after), after
    # No move was started again: the same move rows; the restart may only have added journaled
    # rollbacks (a chunk found split is made whole on its source).
    assert [r[:5] for r in after[: len(before)]] == [r[:5] for r in before]
    added = after[len(before) :]
    assert all(r[4] == SOURCE for r in added), added
    done = [r for r in after if r[5] == "done"]
    assert len({r[2] for r in done}) == len(done)
    for _id, _plan, domain, source, destination, state in after:
        expected = destination if state == "done" else source
        assert placement[domain] == expected, (domain, state, placement)
    with sqlite3.connect(journal) as db:
        states = [r[0] for r in db.execute("SELECT state FROM plans")]
    assert states == ["interrupted"]
    assert os.path.getsize(log) > 0


def _bridge_settings(lab, host: str, bridge: str) -> tuple[str, str] | None:
    """(stp_state, forward_delay) of a bridge inside a lab host, None when it does not exist."""
    shown = lab.run_in_host(
        host,
        [
            "cat",
            f"/sys/class/net/{bridge}/bridge/stp_state",
            f"/sys/class/net/{bridge}/bridge/forward_delay",
        ],
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        return None
    stp, delay = shown.stdout.split()
    return stp, delay


@pytest.fixture
def bridgeless_lab(loaded_lab):
    """The chunk's private bridges removed from every other host; put back as the lab made them after."""
    lab = loaded_lab
    others = [h.name for h in lab.hosts if h.name != SOURCE]
    bridges = ("lan11", "lan12")
    for host in others:
        for bridge in bridges:
            assert lab.run_in_host(host, ["ip", "link", "del", bridge]).returncode == 0
    yield lab, others
    lab.reset()  # the chunk back on hv1 before its bridges are touched again
    for host in others:
        conn = lab.connection(host)
        for bridge in bridges:
            try:
                network = conn.networkLookupByName(f"vb-{bridge}")
                network.destroy()
                network.undefine()
            except libvirt.libvirtError:
                pass
            if _bridge_settings(lab, host, bridge) is None:
                for argv in private_bridge_commands(bridge):
                    assert lab.run_in_host(host, ["ip", *argv]).returncode == 0


def test_missing_bridges_make_destinations_ineligible_unless_managed(bridgeless_lab, tmp_path):
    lab, others = bridgeless_lab
    unmanaged = tmp_path / "unmanaged"
    unmanaged.mkdir()
    client, services = run_app(write_config(lab, unmanaged, manage_bridges=False))
    plan_id = post(client, firing(SOURCE)).get_json()["queued_plan"]
    services.worker.drain_queue(timeout=300)
    plan = services.journal.plan(plan_id)
    assert plan.state == "unresolved", plan.detail
    assert all(f"{h} not eligible: lan11, lan12 missing on {h}" in plan.detail for h in others)
    assert services.journal.migrations(plan_id) == []
    services.close()

    client, services = run_app(write_config(lab, tmp_path))  # manage_bridges defaults to on
    plan_id = post(client, firing(SOURCE)).get_json()["queued_plan"]
    services.worker.drain_queue(timeout=300)
    plan = services.journal.plan(plan_id)
    assert plan.state == "executed", plan.detail
    placement = assert_whole_cluster_sane(lab)
    destination = placement["web1"]
    assert destination in others
    # created through libvirt with STP off and no forward delay: guests talk as soon as they land
    assert _bridge_settings(lab, destination, "lan11") == ("0", "0")
    assert _bridge_settings(lab, destination, "lan12") == ("0", "0")
    services.close()


def _virtbalance_json(command: str, *args: str) -> Any:
    """What ``virtbalance COMMAND --json ARGS`` (the repository's venv) prints; it must exit 0."""
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "virtbalance"), command, "--json", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_status_and_vms_read_the_live_cluster(lab, tmp_path):
    config = write_config(lab, tmp_path)
    data = _virtbalance_json("status", "--config", str(config))
    placement = lab.placement()
    assert data["unreachable"] == []
    assert {r["host"]: r["domains"] for r in data["hosts"]} == {
        h.name: sum(1 for host in placement.values() if host == h.name) for h in lab.hosts
    }
    assert {r["host"]: r["cpus"] for r in data["hosts"]}[SOURCE] == 0.1
    rows = _virtbalance_json("vms", "--config", str(config), f"{SOURCE}/*", "*cache*")["domains"]
    expected = {d for d, h in placement.items() if h == SOURCE} | {"cache1", "cache2"}
    assert {r["domain"] for r in rows} == expected
    chunks = {r["domain"]: r["chunk"] for r in rows}
    assert chunks["cache1"] == chunks["cache2"] == "group:cache"


def test_announced_moves_can_be_vetoed_by_silencing_them(loaded_lab, tmp_path):
    lab = loaded_lab
    url = running_alertmanager(lab)
    config = write_config(lab, tmp_path)
    data = yaml.safe_load(config.read_text())
    data["alertmanager"] = {"url": url, "announce": True, "announce_delay": "6s"}
    config.write_text(yaml.safe_dump(data))
    client, services = run_app(config)
    plan_id = post(client, firing(SOURCE)).get_json()["queued_plan"]
    worker = threading.Thread(target=services.worker.drain_queue, kwargs={"timeout": 300})
    worker.start()
    announced: list[dict[str, Any]] = []
    silence_id = None
    try:
        deadline = time.monotonic() + 60
        while not announced and time.monotonic() < deadline:
            alerts = requests.get(
                f"{url}/api/v2/alerts",
                params={"filter": 'alertname="VirtBalanceMigration"'},
                timeout=5,
            ).json()
            announced = [a for a in alerts if a["labels"].get("domain") in CHUNK]
            time.sleep(0.2)
        row = services.journal.plan(plan_id)
        assert {a["labels"]["domain"] for a in announced} == set(CHUNK), (row.state, row.detail)
        assert {a["labels"]["source"] for a in announced} == {SOURCE}
        # The operator vetoes the web tier's move: the chunk (all three) must stay.
        now = dt.datetime.now(dt.UTC)
        silence_id = requests.post(
            f"{url}/api/v2/silences",
            json={
                "matchers": [
                    {"name": "alertname", "value": "VirtBalanceMigration", "isRegex": False},
                    {"name": "domain", "value": "web1", "isRegex": False},
                ],
                "startsAt": now.isoformat(),
                "endsAt": (now + dt.timedelta(minutes=5)).isoformat(),
                "createdBy": "operator",
                "comment": "not now",
            },
            timeout=5,
        ).json()["silenceID"]
        worker.join(300)
        assert not worker.is_alive()
        plan = services.journal.plan(plan_id)
        assert plan.state == "frozen", plan.detail
        assert silence_id in plan.detail
        assert {m.state for m in services.journal.migrations(plan_id)} == {"skipped"}
        placement = assert_whole_cluster_sane(lab)
        assert all(placement[d] == SOURCE for d in CHUNK)
        # the announcement is withdrawn once the plan ended
        still = requests.get(
            f"{url}/api/v2/alerts",
            params={"filter": 'alertname="VirtBalanceMigration"', "silenced": "true"},
            timeout=5,
        ).json()
        assert [
            a
            for a in still
            if a["status"]["state"] != "suppressed" and a["labels"]["domain"] in CHUNK
        ] == []
    finally:
        worker.join(300)
        if silence_id:
            requests.delete(f"{url}/api/v2/silence/{silence_id}", timeout=5)
        services.close()


def test_plan_live_plans_against_the_lab_without_moving_anything(lab, tmp_path):
    config = write_config(lab, tmp_path)
    before = lab.placement()
    plan = _virtbalance_json("plan", "--live", "--config", str(config))
    assert plan["mode"] == "relieve"
    # only hv1 is declared small enough to be overloaded; every move leaves it, to a real host
    assert all(m["source"] == SOURCE for m in plan["migrations"]), plan
    assert all(before[m["domain"]] == SOURCE for m in plan["migrations"])
    assert {h["name"] for h in plan["hosts_after"]} == {h.name for h in lab.hosts}
    assert lab.placement() == before


def test_a_migration_over_its_timeout_is_aborted_and_the_chunk_stays_running(loaded_lab, tmp_path):
    lab = loaded_lab
    # At 1 MiB/s even the mostly-zero memory of a 64 MiB TCG guest (about a second of data) cannot move
    # within 300 ms: every member's job is aborted at the first progress poll after the timeout.
    # client-driven: with peer-to-peer the source's own libvirtd may finish a job before the abort
    config = write_config(
        lab, tmp_path, bandwidth_mib_per_s=1, migration_timeout="300ms", peer2peer=False
    )
    client, services = run_app(config)
    plan_id = post(client, firing(SOURCE)).get_json()["queued_plan"]
    started = time.monotonic()
    services.worker.drain_queue(timeout=300)
    plan = services.journal.plan(plan_id)
    assert plan.state == "failed", plan.detail
    rows = services.journal.migrations(plan_id)
    assert {r.domain for r in rows} == set(CHUNK)
    assert {r.state for r in rows} == {"failed"}
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(
        as_text=True
    )
    assert 'virtbalance_migrations_total{result="timeout"} 3.0' in metrics
    assert time.monotonic() - started < 120
    placement = assert_whole_cluster_sane(lab)
    assert all(placement[d] == SOURCE for d in CHUNK)
    services.close()


def test_drain_empties_a_host_but_its_pinned_guest(fresh_lab, tmp_path):
    lab = fresh_lab
    client, services = run_app(write_config(lab, tmp_path, overloaded="none"))
    response = client.post("/api/v1/drain/hv2", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202
    plan_id = response.get_json()["queued_plan"]
    services.worker.drain_queue(timeout=300)
    plan = services.journal.plan(plan_id)
    # ops1 is pinned by its placement metadata: the drain moves everything else and says what stayed
    assert plan.state == "executed", plan.detail
    assert "ops1" in plan.detail
    placement = assert_whole_cluster_sane(lab)
    assert [d for d, h in placement.items() if h == "hv2"] == ["ops1"]
    assert placement["cache1"] == placement["cache2"] != "hv2"  # the group chunk moved as one
    services.close()
