"""Consolidation end to end on the night lab: exporters -> Prometheus (HostUnderutilized) -> Alertmanager
(a route with active_time_intervals) -> actioner -> consolidate plan -> live migration -> emptied host.
Once with the route's interval active (a host is emptied), once with it inactive (nothing moves)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from tests.lab_fixtures import spare_lab_id
from virtbalance.contract import ALERT_UNDERUTILIZED
from virtbalance.lab import Lab
from virtbalance.lab.demo.actioner_view import ActionerReader
from virtbalance.lab.demo.night import emptied_hosts, night_summary, watch_night
from virtbalance.lab.demo.run import wait_for_metrics
from virtbalance.lab.demo.stack import start, stop
from virtbalance.lab.monitoring import NO_NIGHT

pytestmark = [pytest.mark.e2e, pytest.mark.lab]

HOSTS = {"hv1", "hv2", "hv3"}
MUTED = "Notifications not sent, route is not within active time"


@pytest.fixture
def lab_id() -> int:
    """A lab id of its own: the night scenario must not replace the session's lab under later tests."""
    return spare_lab_id()


def test_inside_the_night_interval_consolidation_empties_hv3(lab_id):
    # The night demo's steps (lab.demo.run._night), with the stack stopped by the test.
    lab = Lab.up("night", lab_id)
    stack = None
    out = io.StringIO()
    try:
        stack = start(lab, consolidate=True)
        wait_for_metrics(stack, timeout=120.0, out=out)
        reader = ActionerReader(stack.actioner_url, stack.token)
        story = watch_night(lab, stack.prometheus, reader, out, timeout=600.0)
        assert story.emptied == ("hv3",), out.getvalue()
        placement = lab.placement()
        # hv3's only guest left; hv2 kept its guests (mail2 may not share a host with web1).
        assert "hv3" not in placement.values(), placement
        assert placement["mail2"] == "hv2" and placement["cron3"] in ("hv1", "hv2")
        assert story.plan is not None and [m.domain for m in story.plan.migrations] == ["cron3"]
        text = night_summary(story, stack.hosts)
        assert "hv3 runs nothing now: it could be powered off" in text
        rows = text.split("state\n", 1)[1].split("\n\n", 1)[0].splitlines()
        states = {row.split()[0]: row.split("  ")[-1].strip() for row in rows}
        assert states == {
            "hv1": "running",
            "hv2": "running",
            "hv3": "emptied: could be powered off",
        }
    finally:
        if stack is not None:
            stop(stack)
        lab.down()


def test_outside_the_interval_the_alert_fires_and_nothing_moves(lab_id):
    lab = Lab.up("night", lab_id)
    stack = None
    try:
        stack = start(lab, consolidate=True, night=NO_NIGHT)
        before = lab.placement()
        log = Path(lab.state_dir) / "alertmanager" / "alertmanager.log"
        deadline = time.monotonic() + 600
        held: int | None = None
        while True:
            firing = {
                a.labels.get("host")
                for a in stack.prometheus.alerts(ALERT_UNDERUTILIZED)
                if a.state == "firing"
            }
            muted = log.read_text().count(MUTED)
            # Once every host fires, wait for one more flush that the interval held back.
            if held is None and firing == HOSTS:
                held = muted
            elif held is not None and muted > held:
                break
            assert time.monotonic() < deadline, (firing, muted)
            time.sleep(2.0)
        reader = ActionerReader(stack.actioner_url, stack.token)
        assert [p.id for p in reader.plans() if p.mode == "consolidate"] == []
        assert emptied_hosts(reader) == ()
        assert lab.placement() == before
    finally:
        if stack is not None:
            stop(stack)
        lab.down()
