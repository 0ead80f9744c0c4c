"""Consolidation on the lab: HostUnderutilized empties a real host, the mark survives an actioner restart,
and relief wakes the host only when no awake host has the room."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.actioner.test_lab import (
    CHUNK,
    SOURCE,
    TOKEN,
    assert_whole_cluster_sane,
    firing,
    loaded_lab,  # noqa: F401 - the fixture, shared with the other lab tests
    post,
    run_app,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.lab]


def config_with(lab, tmp_path: Path, cpus: dict[str, float], **kwargs) -> Path:
    """The lab actioner config with these declared CPU capacities (the journal stays in tmp_path)."""
    path = write_config(lab, tmp_path, **kwargs)
    data = yaml.safe_load(path.read_text())
    for name, value in cpus.items():
        data["hosts"][name]["cpus"] = value
    path.write_text(yaml.safe_dump(data))
    return path


def underutilized(hosts: list[str]) -> dict:
    """A HostUnderutilized notification for ``hosts`` (one group, as Alertmanager sends it)."""
    body = firing(hosts[0])
    template = body["alerts"][0]
    alerts = []
    for host in hosts:
        alert = firing(host)["alerts"][0]
        alert["labels"] = {**template["labels"], "alertname": "HostUnderutilized", "host": host}
        alerts.append(alert)
    body["alerts"] = alerts
    body["groupKey"] = '{}:{alertname="HostUnderutilized"}'
    body["groupLabels"] = {"alertname": "HostUnderutilized"}
    body["commonLabels"] = {"alertname": "HostUnderutilized"}
    return body


def emptied_gauge(client) -> dict[str, float]:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).get_data(
        as_text=True
    )
    out = {}
    for line in text.splitlines():
        if line.startswith("virtbalance_host_emptied{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('"')[1]] = float(value)
    return out


def test_consolidation_empties_a_host_that_stays_marked_across_a_restart_until_relief_wakes_it(
    loaded_lab,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    lab = loaded_lab
    roomy = {h.name: 16.0 for h in lab.hosts}
    client, services = run_app(config_with(lab, tmp_path, roomy))
    before = assert_whole_cluster_sane(lab)
    on_hv3 = sorted(d for d, h in before.items() if h == "hv3")
    response = post(client, underutilized(["hv1", "hv2", "hv3"]))
    plan_id = response.get_json()["queued_plans"]["consolidate"]
    services.worker.drain_queue(timeout=300)
    plan = services.journal.plan(plan_id)
    assert (plan.mode, plan.state) == ("consolidate", "executed"), plan.detail
    # hv3 has the least memory to move: its three guests leave (anti-affinity decides where).
    placement = assert_whole_cluster_sane(lab)
    assert not [d for d, h in placement.items() if h == "hv3"], placement
    moved = {m.domain: (m.destination, m.state) for m in services.journal.migrations(plan_id)}
    assert sorted(moved) == on_hv3
    assert moved["worker2"] == ("hv1", "done")  # worker1 (same anti-affinity key) is on hv2
    assert moved["batch3"] == ("hv2", "done")  # batch2 is on hv1
    assert "emptied hv3 (may be powered off)" in plan.detail
    assert emptied_gauge(client) == {"hv1": 0.0, "hv2": 0.0, "hv3": 1.0}
    services.close()

    # A new actioner process on the same journal: hv3 is still marked. hv1 is overloaded (0.1 CPU
    # declared: out of reach of the targets, so relief is partial) and hv2 has no room (0.5 CPU): only
    # hv3 can take hv1's chunk, so relief wakes it.
    tight = {SOURCE: 0.1, "hv2": 0.5, "hv3": 16.0}
    client, services = run_app(config_with(lab, tmp_path, tight, policy={"host_settle": "0s"}))
    assert emptied_gauge(client) == {"hv1": 0.0, "hv2": 0.0, "hv3": 1.0}
    assert set(services.journal.emptied_hosts()) == {"hv3"}
    relief_id = post(client, firing(SOURCE)).get_json()["queued_plans"]["relieve"]
    services.worker.drain_queue(timeout=300)
    relief = services.journal.plan(relief_id)
    assert relief.state == "executed", relief.detail  # with hv1 unresolved: partial relief
    rows = services.journal.migrations(relief_id)
    assert {r.domain for r in rows} == set(CHUNK)
    assert all(r.destination == "hv3" and r.state == "done" for r in rows)
    assert all(r.reason.startswith("waking hv3 (emptied; relief needs its room)") for r in rows)
    placement = assert_whole_cluster_sane(lab)
    assert all(placement[d] == "hv3" for d in CHUNK)
    # Something landed on hv3: it is no longer emptied.
    assert emptied_gauge(client) == {"hv1": 0.0, "hv2": 0.0, "hv3": 0.0}
    assert services.journal.emptied_hosts() == {}
    services.close()


def imbalanced() -> dict:
    """A HostsImbalanced notification: one alert for the cluster, no host label."""
    body = firing(SOURCE)
    alert = body["alerts"][0]
    alert["labels"] = {"alertname": "HostsImbalanced", "resource": "cpu", "severity": "info"}
    body["alerts"] = [alert]
    body["groupKey"] = '{}:{alertname="HostsImbalanced"}'
    body["groupLabels"] = {"alertname": "HostsImbalanced"}
    body["commonLabels"] = dict(alert["labels"])
    return body


def test_hosts_imbalanced_runs_the_balance_mode_and_moves_the_whole_chunk(
    loaded_lab,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    lab = loaded_lab
    # hv1 (1 CPU) carries the loaded chunk, about 0.9 cores: above cpu_target (65%), which balance
    # needs to act; hv2 and hv3 (16 CPUs) idle: a spread above balance_spread (15%). hv1's other
    # guests are pinned, so narrowing it means the chunk.
    cpus = {SOURCE: 1.0, "hv2": 16.0, "hv3": 16.0}
    client, services = run_app(config_with(lab, tmp_path, cpus))
    answer = post(client, imbalanced()).get_json()
    assert answer["ignored"] == []
    plan_id = answer["queued_plans"]["balance"]
    services.worker.drain_queue(timeout=300)
    plan = services.journal.plan(plan_id)
    assert (plan.mode, plan.hosts, plan.state) == ("balance", (), "executed"), plan.detail
    rows = services.journal.migrations(plan_id)
    assert {r.domain for r in rows} == set(CHUNK)
    (destination,) = {r.destination for r in rows}
    assert destination != SOURCE
    assert all(r.state == "done" and r.reason.startswith("balance: cpu spread") for r in rows)
    placement = assert_whole_cluster_sane(lab)
    assert all(placement[d] == destination for d in CHUNK)
    # Balance empties nothing on purpose: no host is marked.
    assert emptied_gauge(client) == {"hv1": 0.0, "hv2": 0.0, "hv3": 0.0}
    services.close()
