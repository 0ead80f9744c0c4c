"""The notification cadence the simulator gives HostsImbalanced: Alertmanager's route and the journal's settle."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.simulator_fixtures import uniform_cluster
from virtbalance.durations import parse_duration
from virtbalance.policy import Policy
from virtbalance.simulator.engine import replay
from virtbalance.simulator.migration import CostModel
from virtbalance.simulator.notifications import BALANCE_ROUTE, Cadence, Route
from virtbalance.simulator.policies.virtbalance import VirtbalanceParams, VirtbalancePolicy
from virtbalance.simulator.traces import GIB, synthetic

ALERTMANAGER = Path(__file__).resolve().parents[3] / "deploy" / "alertmanager.yml"
STEP = 300.0
SETTLE = Policy().host_settle  # 10m
ROUTE = BALANCE_ROUTE  # group_wait 1m, group_interval 5m, repeat 30m


def plans(firing: list[bool], ends: dict[int, float] | None = None) -> list[int]:
    """The steps (5 minutes apart) at which the alert's notifications get a plan.

    ``ends``: the step of a plan -> how long after it the plan is over (default: at once).
    """
    cadence = Cadence(ROUTE, SETTLE)
    planned, pending = [], None
    for index, fires in enumerate(firing):
        now = index * STEP
        if pending is not None and now >= pending:
            cadence.ended(pending)
            pending = None
        if cadence.due(now, fires, now + STEP):
            planned.append(index)
            pending = now + (ends or {}).get(index, 0.0)
    return planned


def test_the_route_timers_are_the_actioner_routes_in_deploy_alertmanager_yml():
    routes = yaml.safe_load(ALERTMANAGER.read_text())["route"]["routes"]
    (balance,) = [r for r in routes if r.get("matchers") == ['alertname = "HostsImbalanced"']]
    assert (
        Route(
            parse_duration(balance["group_wait"]),
            parse_duration(balance["group_interval"]),
            parse_duration(balance["repeat_interval"]),
        )
        == BALANCE_ROUTE
    )
    params = VirtbalanceParams()
    assert params.balance_route() == BALANCE_ROUTE


def test_a_still_firing_alert_plans_at_once_then_once_per_repeat_interval():
    assert ROUTE.repeat_after() == 1800.0
    # The first notification (group_wait after the firing starts) falls in the first step; then every
    # 30 minutes: steps 0, 6, 12, 18; never in between.
    assert plans([True] * 20) == [0, 6, 12, 18]


def test_the_repeat_waits_for_the_first_flush_after_repeat_interval():
    # Flushes every 7 minutes: a 30-minute repeat goes out at the fifth, 35 minutes after the last.
    assert Route(60.0, 420.0, 1800.0).repeat_after() == 2100.0
    assert Route(60.0, 0.0, 1800.0).repeat_after() == 1800.0


def test_an_alert_that_resolves_and_fires_again_plans_at_once():
    firing = [True] * 3 + [False] + [True] * 4
    # Step 4 is a new startsAt: its first notification plans, though the last plan was 20 minutes ago.
    assert plans(firing) == [0, 4]


def test_a_follow_up_comes_only_host_settle_after_the_last_plan_ended():
    # The plan at step 0 runs 25 minutes: the repeat at step 6 (30m) is 5 minutes after its end, inside
    # the settle window, and dropped; the next repeat (step 12) is 35 minutes after it: a plan.
    assert plans([True] * 14, ends={0: 1500.0}) == [0, 12]
    # A plan over 20 minutes after it began: the repeat at 30m is exactly host_settle later: a plan.
    assert plans([True] * 8, ends={0: 1200.0}) == [0, 6]


def test_a_repeat_while_the_plan_still_runs_gets_no_plan():
    # The plan at step 0 runs 40 minutes: the repeat at 30m finds it running (not over), dropped; at 60m
    # it ended 20 minutes before: a plan.
    assert plans([True] * 14, ends={0: 2400.0}) == [0, 12]


def test_a_follow_up_is_never_sooner_than_host_settle_after_the_last_plan():
    # Whatever the plan's length, every follow-up starts at least host_settle after the last plan's end.
    for length in range(0, 4000, 300):
        cadence = Cadence(ROUTE, SETTLE)
        end = None
        for index in range(60):
            now = index * STEP
            if end is not None and now >= end:
                cadence.ended(end)
            if cadence.due(now, True, now + STEP):
                if end is not None:
                    assert now - end >= SETTLE - STEP  # judged at the notification, in its step
                end = now + length


def test_virtbalance_plans_balance_on_the_cadence_not_every_step():
    # Two hosts of 10 CPUs: h0 at 80% (one domain of 8 cores, too big to level), h1 at 20%. The spread
    # never closes, HostsImbalanced fires at 30m and stays: balance plans at 30m, 60m, 90m only.
    steps = 24
    workload = synthetic(
        0.0,
        STEP,
        [("a", 8, 4 * GIB, [7.9] * steps), ("d", 4, 4 * GIB, [2.0] * steps)],
    )
    cluster = uniform_cluster({"a": "h0", "d": "h1"}, cpus=10.0)
    policy = Policy()
    plugin = VirtbalancePolicy(VirtbalanceParams(), policy)
    replay(workload, cluster, plugin, policy, cost=CostModel(enabled=False))
    fires = round(policy.balance_for / STEP)
    expected = len(range(fires, steps, round(ROUTE.repeat_after() / STEP)))
    assert plugin.balances == expected == 3


@pytest.mark.parametrize("value", ["2m", 120])
def test_the_route_timers_are_settings_of_the_plug_in(value: str | int):
    plugin = VirtbalancePolicy.build({"balance_repeat_interval": value}, Policy())
    assert plugin.params.balance_repeat_interval == 120.0
    assert plugin.cadence.route.repeat_after() == 300.0  # the next 5-minute flush
