"""The actioner with the real monitoring stack: Alertmanager delivering to its webhook, Prometheus feeding
its snapshot from the lab's exporters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.actioner_fixtures import OVERLOAD_ALERT, serve_actioner
from tests.integration.actioner.test_lab import wait_port_reusable, write_config
from virtbalance.actioner.config import load_config
from virtbalance.actioner.libvirt_hosts import HostPool
from virtbalance.actioner.snapshot_builder import SnapshotBuilder

pytestmark = [pytest.mark.integration, pytest.mark.lab]


@pytest.fixture
def served_actioner(lab, tmp_path):
    """The real app (dry run: this test is about delivery) served by waitress in a thread."""
    with serve_actioner(write_config(lab, tmp_path, dry_run=True)) as (url, services):
        yield url, services, tmp_path / "token"
    assert not services.worker.alive


def test_alertmanager_deliveries_and_repeats_make_one_plan(lab, served_actioner):
    url, services, token_file = served_actioner
    lab.stop_monitoring()  # an Alertmanager left by another test routes elsewhere
    wait_port_reusable(lab.names.alertmanager_port)
    am = lab.start_alertmanager(
        f"{url}/api/v1/alerts",
        token_file=Path(token_file),
        group_wait="1s",
        group_interval="1s",
        repeat_interval="2s",
    )
    try:
        # Prometheus re-sends a firing alert every evaluation; so does this loop.
        deadline = time.monotonic() + 60
        delivered = 0.0
        while time.monotonic() < deadline:
            requests.post(
                f"{am}/api/v2/alerts", json=[OVERLOAD_ALERT], timeout=5
            ).raise_for_status()
            headers = {"Authorization": f"Bearer {Path(token_file).read_text().strip()}"}
            metrics = requests.get(f"{url}/metrics", headers=headers, timeout=5).text
            delivered = _sample(metrics, 'virtbalance_webhook_requests_total{code="200"}')
            if delivered >= 3:
                break
            time.sleep(1)
        assert delivered >= 3, "Alertmanager did not deliver (and repeat) the notification"
        plans = services.journal.plans()
        assert len(plans) == 1, [(p.id, p.state) for p in plans]
        assert plans[0].hosts == ("hv1",)
        # dry run: whatever the plan, nothing moved
        deadline = time.monotonic() + 60
        while services.journal.plan(plans[0].id).state in ("queued", "running"):
            assert time.monotonic() < deadline, "the plan did not finish"
            time.sleep(0.5)
        assert services.journal.plan(plans[0].id).state in ("dry_run", "empty", "unresolved")
        assert {m.state for m in services.journal.migrations(plans[0].id)} <= {"skipped"}
        assert _sample(metrics, 'virtbalance_webhook_requests_total{code="401"}') == 0
    finally:
        lab.stop_monitoring()


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not exported")


def test_snapshot_cpu_comes_from_prometheus_scraping_the_exporters(lab, tmp_path):
    lab.reset()
    lab.set_load("web1", 45)
    try:
        lab.stop_monitoring()
        wait_port_reusable(lab.names.prometheus_port)
        prometheus = lab.start_prometheus(scrape_interval="1s", evaluation_interval="1s")
        path = write_config(lab, tmp_path)
        text = path.read_text().replace("prometheus:\n", f"prometheus:\n  url: {prometheus}\n", 1)
        path.write_text(text)
        config = load_config(path)
        assert config.prometheus.url == prometheus
        pool = HostPool(config)
        builder = SnapshotBuilder(config, pool)
        # rate() looks back policy.rate_window (30 s in the lab policy): wait until that window holds
        # only samples taken after the load was set, as the actioner's snapshot after an alert would.
        time.sleep(config.policy.rate_window + 5)
        view = builder.build()
        sampled = builder.sample_libvirt(view.facts)
        pool.close()
        assert view.cpu_source == "prometheus"
        cpu = {d.name: d.cpu_used for d in view.snapshot.domains}
        assert set(cpu) == set(lab.placement())
        # web1 spins its dial, the batch guests idle: Prometheus must see the difference, and agree
        # with libvirt's own cpu.time read directly (loosely: the windows differ, the machine is shared).
        idle = max(cpu[d] for d in ("batch1", "batch2", "batch3"))
        assert cpu["web1"] > 2 * idle, cpu
        assert abs(cpu["web1"] - sampled["web1"]) < max(0.05, 0.5 * sampled["web1"]), (
            cpu["web1"],
            sampled["web1"],
        )
    finally:
        lab.stop_monitoring()
        lab.reset()
