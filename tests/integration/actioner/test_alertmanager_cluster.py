"""An Alertmanager pair in cluster mode before the real actioner: one plan per alert, silences shared."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.actioner_fixtures import OVERLOAD_ALERT, serve_actioner
from tests.integration.actioner.test_lab import expire_silences, wait_port_reusable, write_config
from virtbalance.lab.demo.clients import Alertmanager

pytestmark = [pytest.mark.integration, pytest.mark.lab]


def _alert() -> dict[str, Any]:
    """The alert as a rule evaluator sends it: with its start (Prometheus sends the same to every
    Alertmanager; without it each instance would stamp its own, making two alert instances)."""
    started = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {**OVERLOAD_ALERT, "startsAt": started}


def _config(lab, tmp_path: Path, alertmanager_url: str | None) -> Path:
    """The actioner's config (dry run); its silences come from ``alertmanager_url``."""
    path = write_config(lab, tmp_path, dry_run=True)
    data = yaml.safe_load(path.read_text())
    if alertmanager_url is not None:
        data["alertmanager"] = {"url": alertmanager_url}
    path.write_text(yaml.safe_dump(data))
    return path


def first_url(lab) -> str:
    """The pair's first instance: the lab's own Alertmanager port."""
    return f"http://127.0.0.1:{lab.names.alertmanager_port}"


def _pair(lab, webhook: str, token_file: Path) -> tuple[str, str]:
    lab.stop_monitoring()  # an Alertmanager left by another test routes elsewhere
    for port in (lab.names.alertmanager_port, lab.names.alertmanager_peer_port):
        wait_port_reusable(port)
    first, second = lab.start_alertmanager_pair(
        webhook,
        token_file=token_file,
        group_wait="1s",
        group_interval="1s",
        repeat_interval="2s",
    )
    # Both see each other before anything is sent: gossip is what this test is about.
    deadline = time.monotonic() + 30
    while True:
        peers = [
            len(requests.get(f"{url}/api/v2/status", timeout=5).json()["cluster"]["peers"])
            for url in (first, second)
        ]
        if peers == [2, 2]:
            return first, second
        assert time.monotonic() < deadline, f"the pair did not form: peers {peers}"
        time.sleep(0.5)


def _plans_settled(services, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while True:
        plans = services.journal.plans()
        if plans and all(
            services.journal.plan(p.id).state not in ("queued", "running") for p in plans
        ):
            return [services.journal.plan(p.id) for p in plans]
        assert time.monotonic() < deadline, "no plan finished"
        time.sleep(0.5)


def _deliveries(url: str, token_file: Path) -> float:
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    text = requests.get(f"{url}/metrics", headers=headers, timeout=5).text
    for line in text.splitlines():
        if line.startswith('virtbalance_webhook_requests_total{code="200"} '):
            return float(line.split()[-1])
    raise AssertionError("virtbalance_webhook_requests_total not exported")


def test_both_instances_of_the_pair_receive_the_alert_and_the_actioner_makes_one_plan(
    lab, tmp_path
):
    token_file = tmp_path / "token"
    with serve_actioner(_config(lab, tmp_path, None)) as (url, services):
        try:
            first, second = _pair(lab, f"{url}/api/v1/alerts", token_file)
            # Two Prometheus replicas send every alert to every Alertmanager; so does this loop.
            alert = _alert()
            deadline = time.monotonic() + 60
            while (delivered := _deliveries(url, token_file)) < 3:
                assert time.monotonic() < deadline, f"only {delivered:g} deliveries"
                for am in (first, second):
                    requests.post(f"{am}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
                time.sleep(1)
            for am in (first, second):
                held = [a.labels["host"] for a in Alertmanager(am).alerts("HostSustainedOverload")]
                assert held == ["hv1"], (am, held)
            plans = _plans_settled(services)
            assert len(plans) == 1, [(p.id, p.state) for p in plans]
            assert plans[0].hosts == ("hv1",)
            assert plans[0].state in ("dry_run", "empty", "unresolved")
        finally:
            lab.stop_monitoring()


def test_a_silence_made_on_one_instance_freezes_moves_when_the_actioner_asks_the_other(
    lab, tmp_path
):
    lab.reset()
    second_url = f"http://127.0.0.1:{lab.names.alertmanager_peer_port}"
    token_file = tmp_path / "token"
    with serve_actioner(_config(lab, tmp_path, second_url)) as (url, services):
        try:
            first, second = _pair(lab, f"{url}/api/v1/alerts", token_file)
            assert second == second_url
            for am in (first, second):  # Alertmanager keeps silences across restarts
                for silence in Alertmanager(am).active_silences():
                    Alertmanager(am).expire_silence(str(silence["id"]))
            silence = Alertmanager(first).add_silence(
                {"alertname": "VirtBalanceMigration"},
                duration=3600,
                comment="cluster test: freeze everything",
                now=time.time(),
            )
            deadline = time.monotonic() + 30
            while silence not in {str(s["id"]) for s in Alertmanager(second).active_silences()}:
                assert time.monotonic() < deadline, "the silence did not reach the second instance"
                time.sleep(0.5)
            # hv1 declares 0.1 CPU (write_config): without the freeze the planner would move its guests.
            requests.post(f"{first}/api/v2/alerts", json=[_alert()], timeout=5).raise_for_status()
            plans = _plans_settled(services)
            assert plans[0].state == "frozen", [(p.id, p.state, p.detail) for p in plans]
            assert services.journal.migrations(plans[0].id) == []
            assert lab.placement() == {d.name: d.host for d in lab.scenario.domains}
        finally:
            # Alertmanager keeps silences in its data directory, which the lab's next Alertmanager
            # reuses: an hour-long freeze of every move left there would freeze the next tests' plans.
            for am in (first_url(lab), second_url):
                if Alertmanager(am).ready():
                    expire_silences(am)
            lab.stop_monitoring()
