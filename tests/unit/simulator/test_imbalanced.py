"""HostsImbalanced in the simulator: the rule's spread and ``for``, and virtbalance's balance plans on it."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

import virtbalance.simulator.policies.virtbalance as virtbalance_plugin
from tests.simulator_fixtures import uniform_cluster
from virtbalance.forecast import window_points
from virtbalance.planner import plan as real_plan
from virtbalance.policy import Policy
from virtbalance.simulator.alerting import imbalanced, window_mean
from virtbalance.simulator.cluster import Cluster
from virtbalance.simulator.engine import Result, replay
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
    fired = evaluate([[0.70, 0.54]] * 10)  # a spread of 16%, the busiest above cpu_target
    assert FIRES_AT == 6
    assert not any(fired[:FIRES_AT])
    assert all(fired[FIRES_AT:])


def test_a_spread_at_or_below_balance_spread_never_fires():
    assert not any(evaluate([[0.70, 0.56]] * 20))  # 14%
    assert not any(evaluate([[0.875, 0.75, 0.8125]] * 20))  # 12.5%, exact in binary
    # 15% exactly (0.7 - 0.55 is not exact in binary: take a policy whose spread is exact).
    exact = POLICY.replace(balance_spread=0.125)
    assert not any(evaluate([[0.875, 0.75]] * 20, exact))


def test_a_spread_whose_busiest_host_is_at_or_below_cpu_target_never_fires():
    assert not any(evaluate([[0.60, 0.10]] * 20))  # 50% apart, no host near overload
    assert not any(evaluate([[0.65, 0.10]] * 20))  # at cpu_target: not above it
    assert evaluate([[0.66, 0.10]] * 10)[FIRES_AT:] == [True] * (10 - FIRES_AT)
    lower = POLICY.replace(cpu_target=0.55, cpu_low=0.1)
    assert evaluate([[0.60, 0.10]] * 10, lower)[FIRES_AT:] == [True] * (10 - FIRES_AT)


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
# ``swing``: "a" and "c" trade that many cores every step (a up when c is down), h0's sum unchanged.
def _workload(steps: int = 12, h0: Sequence[float] = (3.0, 2.0, 2.0), swing: float = 0.0):
    def swinging(base: float, sign: int) -> list[float]:
        return [base + sign * swing * (1 if step % 2 == 0 else -1) for step in range(steps)]

    return synthetic(
        0.0,
        STEP,
        [
            ("a", 4, 4 * GIB, swinging(h0[0], 1)),
            ("b", 4, 1 * GIB, [h0[1]] * steps),
            ("c", 4, 2 * GIB, swinging(h0[2], -1)),
            ("d", 4, 4 * GIB, [3.0] * steps),
        ],
    )


def _cluster() -> Cluster:
    return uniform_cluster({"a": "h0", "b": "h0", "c": "h0", "d": "h1"}, cpus=10.0)


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
    # a and c swing by a core: h0 stays at 70%, but its domains at their recent peaks (4 + 2 + 3
    # cores, 90%) would overload it: balancing buys headroom there.
    workload = _workload(swing=1.0)
    result = replay(workload, _cluster(), plugin, POLICY, cost=CostModel(enabled=False))
    # The alert names no host: balance mode for the whole cluster, when it fires and not before.
    assert calls[0] == (FIRES_AT * STEP, "balance", None)
    assert plugin.balances == 1
    # The real planner's balance: "b" (2 cores, the one move that levels the hosts on their hourly
    # averages) to h1, both at 50%; the alert then ends and nothing more moves.
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
    # "b" (2 cores, the least memory). The hosts' hourly averages still hold the two steps before it
    # (h0 (2 x 85% + 5 x 65%) / 7 = 70.7% at step 6, h1 24.3%): HostsImbalanced fires at step 6 and
    # balance runs, after relief. It judges the averages of the domains each host runs now: h0 65%,
    # at cpu_target, so nothing is worth moving.
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
        (STEP, "b", "h0", "h1")
    ]
    assert (plugin.plans, plugin.balances) == (1, 1)
    assert result.metrics.overloaded_host_steps == 2


def test_window_mean_averages_the_points_there_are_up_to_the_window():
    window: deque[float] = deque()
    assert window_mean(window, 0.6, 3) == pytest.approx(0.6)  # a host one evaluation old
    assert window_mean(window, 0.2, 3) == pytest.approx(0.4)
    assert window_mean(window, 0.4, 3) == pytest.approx(0.4)
    # The 0.6 leaves the window.
    assert window_mean(window, 0.9, 3) == pytest.approx(0.5)
    assert list(window) == pytest.approx([0.2, 0.4, 0.9])
    assert window_points(POLICY.balance_window, STEP) == 12
    assert window_points(0.0, STEP) == 1  # balance_window 0: the last sample


def averaged(samples: list[Sequence[float]], window: float) -> list[list[float]]:
    """Each host's ratio averaged over ``window`` at each evaluation, as the engine feeds the rule."""
    points = window_points(window, STEP)
    windows: list[deque[float]] = [deque() for _ in samples[0]]
    return [
        [window_mean(w, r, points) for w, r in zip(windows, ratios, strict=True)]
        for ratios in samples
    ]


def test_the_average_keeps_alternating_bursts_from_firing_and_a_lasting_spread_fires_later():
    # Two hosts whose load swaps every 35 minutes (seven evaluations): 90% and 50%, a sample spread of
    # 40% that holds long enough to fire the rule on the last sample (pending 30m at the 7th).
    period = [[0.9, 0.5]] * 7 + [[0.5, 0.9]] * 7
    bursts = [[0.7, 0.7]] * 12 + period * 4
    assert any(evaluate(bursts, POLICY.replace(balance_window="0s")))
    # Averaged over 1h (12 evaluations), once the window holds only bursts, the hosts stay within
    # 40% x 2/12 (two evaluations more of one phase than of the other); at the warm-up's edge the
    # first burst fills 7 of the 12 points (40% x 7/12), for fewer than 30m: never fires.
    spreads = [max(r) - min(r) for r in averaged(bursts, 3600.0)]
    assert max(spreads[24:]) == pytest.approx(0.4 * 2 / 12)
    assert max(spreads) == pytest.approx(0.4 * 7 / 12)
    assert not any(evaluate(averaged(bursts, 3600.0)))
    # A lasting spread of 40% from evaluation 12: the average passes 15% once 5 of its 12 points hold
    # it (40% x 5/12 = 16.7%, at evaluation 16), and the rule fires 30m later, at evaluation 22.
    lasting = [[0.7, 0.7]] * 12 + [[0.9, 0.5]] * 20
    fired = evaluate(averaged(lasting, 3600.0))
    assert fired.index(True) == 16 + FIRES_AT
    assert evaluate(lasting, POLICY.replace(balance_window="0s")).index(True) == 12 + FIRES_AT


# Two hosts of 20 CPUs. "a" on h0 and "b" on h1 burst to 8 cores in turn, 35 minutes each (after an
# hour at 1 core); each host also runs six steady 1-core domains. In a burst the busy host is at 70%
# (above cpu_target), the other at 35%: a sample spread of 35% that lasts 35 minutes, while the
# hosts' hourly averages stay near 52% and within 35% x 2/12 of each other.
HALF = 7  # evaluations per burst
STEADY = 6  # steady 1-core domains per host
# The steady domains wobble in pairs (each host's sum unchanged): at their peaks together the busy host
# would be at (8 + 6 x 1.5) / 20 = 85%, so balancing it buys headroom (virtbalance.planner.balance).
WOBBLE = 0.5


def _wobbling(index: int, steps: int) -> list[float]:
    """1 core on average, half a core up and down every step, the next domain the other way."""
    return [1.0 + WOBBLE * (-1) ** (index + step) for step in range(steps)]


def _bursts(cycles: int):
    warm = [1.0] * 12
    on, off = [8.0] * HALF, [1.0] * HALF
    a = warm + (on + off) * cycles
    b = warm + (off + on) * cycles
    domains = [("a", 8, 4 * GIB, a), ("b", 8, 4 * GIB, b)]
    domains += [(f"s{i}", 2, 1 * GIB, _wobbling(i, len(a))) for i in range(STEADY)]
    domains += [(f"t{i}", 2, 1 * GIB, _wobbling(i, len(a))) for i in range(STEADY)]
    hosts = ("h0", "h1")
    placement = {"a": "h0", "b": "h1"} | {f"s{i}": "h0" for i in range(STEADY)}
    placement |= {f"t{i}": "h1" for i in range(STEADY)}
    cluster = Cluster(
        host_names=hosts,
        host_cpus=dict.fromkeys(hosts, 20.0),
        host_memory=dict.fromkeys(hosts, 64 * GIB),
        networks={},
        placement=placement,
    )
    return synthetic(0.0, STEP, domains), cluster


def test_on_the_last_sample_balance_moves_steady_domains_round_and_the_average_leaves_them():
    workload, cluster = _bursts(cycles=8)  # 10h20m

    def run(policy: Policy) -> Result:
        return replay(
            workload,
            cluster,
            VirtbalancePolicy(VirtbalanceParams(), policy),
            policy,
            cost=CostModel(enabled=False),
        )

    churn = run(POLICY.replace(balance_window="0s"))
    moves = [(round(r.time / STEP), r.domain, r.source, r.destination) for r in churn.history]
    # h0's first burst fires the alert 30m in (evaluation 18): one steady domain goes to h1 (h0 at
    # cpu_target). The bursts keep the spread wide, so it never resolves: in h1's burst, with s0 beside
    # its own six, h1 is above cpu_high every other evaluation (the wobble), and the re-sent
    # notification's plan (24) takes a steady domain back to h0. From then on each host's recent peak
    # leaves no room for a domain's peak: no destination, balance is stuck.
    assert moves == [(18, "s0", "h0", "h1"), (24, "t0", "h1", "h0")]
    assert churn.metrics.flaps == 0
    calm = run(POLICY)
    assert calm.history == []
    # The moves bought overload: three of h1's evaluations in its first burst; the average none.
    assert churn.metrics.overloaded_host_steps == 3
    assert calm.metrics.overloaded_host_steps == 0
