"""HostsImbalanced in the simulator: the rule's spread and ``for``, and virtbalance's balance plans on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

import virtbalance.simulator.policies.virtbalance as virtbalance_plugin
from virtbalance.planner import plan as real_plan
from virtbalance.policy import Policy
from virtbalance.simulator.alerting import imbalanced
from virtbalance.simulator.cluster import Cluster
from virtbalance.simulator.engine import replay
from virtbalance.simulator.migration import CostModel
from virtbalance.simulator.policies.base import PolicyPlugin
from virtbalance.simulator.policies.virtbalance import VirtbalanceParams, VirtbalancePolicy
from virtbalance.simulator.state import ClusterView, Move
from virtbalance.simulator.traces import GIB, synthetic

STEP = 300.0
POLICY = Policy()  # balance_spread 15%, balance_for 30m: six 5-minute evaluations after the first
FIRES_AT = round(POLICY.balance_for / STEP)


def evaluate(spreads: list[Sequence[float]], policy: Policy = POLICY) -> list[bool]:
    """Whether the alert fires at each evaluation of hosts at these CPU ratios, 5 minutes apart."""
    since: float | None = None
    fired = []
    for index, ratios in enumerate(spreads):
        since, fires = imbalanced(since, ratios, index * STEP, policy)
        fired.append(fires)
    return fired


def test_a_spread_above_balance_spread_fires_after_balance_for_not_before():
    fired = evaluate([[0.50, 0.34]] * 10)  # a spread of 16%
    assert FIRES_AT == 6
    assert not any(fired[:FIRES_AT])
    assert all(fired[FIRES_AT:])


def test_a_spread_at_or_below_balance_spread_never_fires():
    assert not any(evaluate([[0.50, 0.36]] * 20))  # 14%
    assert not any(evaluate([[0.625, 0.5, 0.5625]] * 20))  # 12.5%, exact in binary
    # 15% exactly (0.5 - 0.35 is not exact in binary: take a policy whose spread is exact).
    exact = POLICY.replace(balance_spread=0.125)
    assert not any(evaluate([[0.625, 0.5]] * 20, exact))


def test_one_evaluation_inside_the_spread_restarts_the_for():
    wide, narrow = [0.80, 0.20], [0.55, 0.45]
    fired = evaluate([wide] * 5 + [narrow] + [wide] * 8)
    # Pending again from evaluation 6: fires at 6 + 6.
    assert fired.index(True) == 12
    assert evaluate([wide] * 8 + [narrow])[-3:] == [True, True, False]


def test_no_host_or_one_host_has_no_spread():
    assert not any(evaluate([[]] * 10))
    assert not any(evaluate([[0.95]] * 10))


def test_balance_for_zero_fires_at_the_first_wide_evaluation():
    assert evaluate([[0.9, 0.1]] * 2, POLICY.replace(balance_for="0s")) == [True, True]


class Recorder(PolicyPlugin):
    """Moves nothing; keeps what the engine said about HostsImbalanced at each step."""

    name: ClassVar[str] = "recorder"
    chunk_aware: ClassVar[bool] = True

    def __init__(self) -> None:
        self.seen: list[bool] = []

    def decide(self, view: ClusterView) -> Sequence[Move]:
        self.seen.append(view.imbalanced)
        return ()

    def parameters(self) -> dict[str, Any]:
        return {}


# Two hosts of 10 CPUs: h0 at 70% (below cpu_high: no overload), h1 at 30%; a spread of 40%.
def _workload(steps: int = 12, h0: Sequence[float] = (3.0, 2.0, 2.0)):
    return synthetic(
        0.0,
        STEP,
        [
            ("a", 4, 4 * GIB, [h0[0]] * steps),
            ("b", 4, 1 * GIB, [h0[1]] * steps),
            ("c", 4, 2 * GIB, [h0[2]] * steps),
            ("d", 4, 4 * GIB, [3.0] * steps),
        ],
    )


def _cluster() -> Cluster:
    hosts = ("h0", "h1")
    return Cluster(
        host_names=hosts,
        host_cpus=dict.fromkeys(hosts, 10.0),
        host_memory=dict.fromkeys(hosts, 64 * GIB),
        networks={},
        placement={"a": "h0", "b": "h0", "c": "h0", "d": "h1"},
    )


def test_the_engine_evaluates_the_alert_at_every_step():
    recorder = Recorder()
    replay(_workload(), _cluster(), recorder, POLICY, cost=CostModel(enabled=False))
    assert recorder.seen == [False] * FIRES_AT + [True] * (12 - FIRES_AT)


def test_hosts_without_domains_are_out_of_the_spread():
    # Every domain on h0 (70%), h1 empty (off): one awake host, no spread.
    cluster = _cluster()
    cluster.placement["d"] = "h0"
    workload = _workload(h0=(2.0, 1.0, 1.0))
    recorder = Recorder()
    replay(workload, cluster, recorder, POLICY, cost=CostModel(enabled=False))
    assert not any(recorder.seen)


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str, frozenset[str] | None]]:
    """Record every call of the real planner from the plug-in: (snapshot time, mode, relieve_hosts)."""
    calls: list[tuple[float, str, frozenset[str] | None]] = []

    def recording(snapshot: Any, policy: Policy, mode: Any, **kwargs: Any) -> Any:
        calls.append((snapshot.time, mode.kind, kwargs.get("relieve_hosts")))
        return real_plan(snapshot, policy, mode, **kwargs)

    monkeypatch.setattr(virtbalance_plugin, "plan", recording)
    return calls


def test_virtbalance_plans_balance_for_the_cluster_once_the_alert_fires(
    monkeypatch: pytest.MonkeyPatch,
):
    calls = _recording(monkeypatch)
    plugin = VirtbalancePolicy(VirtbalanceParams(), POLICY)
    result = replay(_workload(), _cluster(), plugin, POLICY, cost=CostModel(enabled=False))
    # The alert names no host: balance mode for the whole cluster, when it fires and not before.
    assert calls[0] == (FIRES_AT * STEP, "balance", None)
    assert plugin.balances == 1
    # The real planner's balance: "b" (2 cores, the least memory of the two that level the hosts) to
    # h1, both at 50%; the alert then ends and nothing more moves.
    assert [(r.domain, r.source, r.destination) for r in result.history] == [("b", "h0", "h1")]
    assert result.history[0].time == pytest.approx(FIRES_AT * STEP)
    assert result.metrics.overloaded_host_steps == 0
    assert {mode for _, mode, _ in calls} == {"balance"}


def test_without_the_alert_virtbalance_leaves_an_uneven_cluster_alone(
    monkeypatch: pytest.MonkeyPatch,
):
    calls = _recording(monkeypatch)
    never = POLICY.replace(balance_spread=1.0)
    result = replay(
        _workload(),
        _cluster(),
        VirtbalancePolicy(VirtbalanceParams(), never),
        never,
        cost=CostModel(enabled=False),
    )
    assert result.history == []
    assert calls == []


def test_relief_comes_first_and_balance_after_it(monkeypatch: pytest.MonkeyPatch):
    # h0 at 85% (a, b, c and e: 3 + 2 + 2 + 1.5 cores), h1 at 10%. HostChronicallyHot fires at step 1
    # (one evaluation of one above cpu_high, pending at step 0, hot_for 5m): relief to cpu_target moves
    # "b" (2 cores, the least memory). h0 at 65% and h1 at 30% are still 35% apart: HostsImbalanced
    # fires at step 6, and balance moves "c" (h0 45%, h1 50%; "e" would level them as well, with more
    # memory to copy).
    calls = _recording(monkeypatch)
    steps = 12
    workload = synthetic(
        0.0,
        STEP,
        [
            ("a", 4, 4 * GIB, [3.0] * steps),
            ("b", 4, 1 * GIB, [2.0] * steps),
            ("c", 4, 2 * GIB, [2.0] * steps),
            ("e", 4, 3 * GIB, [1.5] * steps),
            ("d", 4, 4 * GIB, [1.0] * steps),
        ],
    )
    cluster = _cluster()
    cluster.placement["e"] = "h0"
    plugin = VirtbalancePolicy(VirtbalanceParams(), POLICY)
    result = replay(workload, cluster, plugin, POLICY, cost=CostModel(enabled=False))
    assert calls == [(STEP, "relieve", frozenset({"h0"})), (FIRES_AT * STEP, "balance", None)]
    assert [(r.time, r.domain, r.source, r.destination) for r in result.history] == [
        (STEP, "b", "h0", "h1"),
        (FIRES_AT * STEP, "c", "h0", "h1"),
    ]
    assert (plugin.plans, plugin.balances) == (1, 1)
    assert result.metrics.overloaded_host_steps == 2
