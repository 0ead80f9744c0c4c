"""The loop with VictoriaMetrics and vmalert in place of Prometheus, on the real lab.

exporter -> VictoriaMetrics -> vmalert -> Alertmanager -> actioner (usage from VictoriaMetrics'
query API) -> live migration of the whole chunk -> the alert resolves.
"""

from __future__ import annotations

import time

import requests
import yaml

from tests.e2e.conftest import (
    HOST,
    IDLE,
    OVERLOAD,
    scenario_chunks,
    set_loads,
    wait_for,
)
from virtbalance.actioner.prometheus_demand import prometheus_cpu
from virtbalance.contract import ALERT_OVERLOAD, RECORD_CPU
from virtbalance.lab import Lab
from virtbalance.lab.demo.actioner_view import ActionerReader
from virtbalance.lab.demo.stack import Backend, Timings, start, stop


def test_vmalert_fires_and_the_actioner_moves_the_chunk_with_usage_from_victoriametrics(lab: Lab):
    lab.reset()
    # Nothing of a Prometheus stack may be left to notify Alertmanager: every alert here is vmalert's.
    lab.stop_monitoring()
    stack = start(
        lab,
        backend=Backend.VICTORIAMETRICS,
        timings=Timings(repeat_interval="15s"),
        # No libvirt fallback: a plan can only be made from the usage VictoriaMetrics answers.
        actioner_settings={"prometheus": {"fallback_to_libvirt": False}},
    )
    try:
        assert stack.rules_url != stack.prometheus_url
        config = yaml.safe_load((stack.state_dir / "actioner.yml").read_text(encoding="utf-8"))
        assert config["prometheus"]["url"] == stack.prometheus_url
        with_prometheus = f"http://127.0.0.1:{lab.names.prometheus_port}/-/ready"
        try:
            requests.get(with_prometheus, timeout=2)
            raise AssertionError(f"a Prometheus answers at {with_prometheus}")
        except requests.ConnectionError:
            pass
        alertmanager = stack.alertmanager
        for (
            silence
        ) in alertmanager.active_silences():  # Alertmanager keeps silences across restarts
            alertmanager.expire_silence(str(silence["id"]))
        metrics = stack.prometheus
        wait_for(
            "a CPU ratio for every host in VictoriaMetrics",
            lambda: set(metrics.by_host(RECORD_CPU)) >= set(stack.hosts),
            timeout=90,
        )
        rules = requests.get(f"{stack.rules_url}/api/v1/rules", timeout=5).json()
        groups = {g["name"] for g in rules["data"]["groups"]}
        assert {"virtbalance-host", "virtbalance-health"} <= groups

        set_loads(lab, OVERLOAD)
        policy = stack.policy
        wait_for(
            "vmalert to fire the overload alert",
            lambda: any(
                a.state == "firing" and a.labels.get("host") == HOST
                for a in metrics.alerts(ALERT_OVERLOAD)
            ),
            timeout=policy.rate_window + policy.overload_for + 60,
        )
        # The actioner's own client reads the loaded guests' demand through VictoriaMetrics.
        demand = prometheus_cpu(stack.prometheus_url, 5.0)(policy.rate_window)
        assert {"ops1", "cache1", "cache2"} <= set(demand)
        assert demand["ops1"] > 0.3  # its dial is at 44% of a core
        notified = wait_for(
            "Alertmanager to hold vmalert's alert",
            lambda: [
                a for a in alertmanager.alerts(ALERT_OVERLOAD) if a.labels.get("host") == HOST
            ],
            timeout=30,
        )
        assert notified[0].labels["resource"] == "cpu"
        actioner = ActionerReader(stack.actioner_url, stack.token)
        plan = wait_for(
            "a finished plan that moved something",
            lambda: next(
                (p for p in actioner.plans() if p.finished and p.migrations and HOST in p.hosts),
                None,
            ),
            timeout=180,
        )
        assert {m.state for m in plan.migrations} == {"done"}, plan
        moved = {m.domain for m in plan.migrations}
        assert {m.source for m in plan.migrations} == {HOST}
        # Chunks move whole, to one destination, or not at all (which guests go depends on how much
        # CPU the shared machine leaves the other hosts: the cache chunk, or worker1 alone).
        chunks = scenario_chunks(lab)
        for chunk in chunks:
            assert moved & set(chunk) in (set(), set(chunk)), (chunk, plan)
            destinations = {m.destination for m in plan.migrations if m.domain in chunk}
            assert len(destinations) <= 1, (chunk, plan)
        assert "ops1" not in moved  # pinned
        placement = lab.placement()  # every domain active on exactly one host
        for chunk in chunks:
            assert len({placement[d] for d in chunk}) == 1, (chunk, placement)
        wait_for(
            "vmalert to resolve the overload alert",
            lambda: not [a for a in metrics.alerts(ALERT_OVERLOAD) if a.labels.get("host") == HOST],
            timeout=policy.rate_window + 90,
        )
        # The relieved host stays relieved: no second plan moves anything more from it.
        time.sleep(float(stack.timings.group_interval.rstrip("s")) * 2)
        acting = [p for p in actioner.plans() if p.migrations]
        assert [p.id for p in acting] == [plan.id]
    finally:
        set_loads(lab, IDLE)
        stop(stack)
        lab.stop_monitoring()
        lab.reset()
