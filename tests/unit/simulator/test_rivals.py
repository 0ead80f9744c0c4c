"""Which policies come close to virtbalance's overload cut, and are then compared on migrations."""

from __future__ import annotations

from virtbalance.simulator.engine import Metrics, Result
from virtbalance.simulator.report import RIVAL_POINTS, rivals


def result(policy: str, overloaded_steps: int, migrations: int = 0) -> Result:
    """A policy's result over 10 hosts x 100 steps: ``overloaded_steps`` of the 1,000 host-steps over."""
    metrics = Metrics(
        policy,
        chunk_aware=True,
        hosts=10,
        vms=40,
        steps=100,
        days=1.0,
        overloaded_host_steps=overloaded_steps,
        migrations=migrations,
    )
    return Result(metrics, {}, [])


def test_cuts_are_of_the_none_policys_overload_and_close_means_within_the_points():
    assert RIVAL_POINTS == 10.0
    results = [
        result("none", 200),
        result("virtbalance", 20, migrations=5),  # 90% of none's overload removed
        result("drs", 40, migrations=9),  # 80%: exactly 10 points short, still close
        result("xenguard", 42),  # 79%: more than 10 points short
    ]
    ours, cut, others = rivals(results)
    assert (ours.policy, ours.migrations) == ("virtbalance", 5)
    assert cut == 90.0
    assert [(r.name, round(r.cut, 6), r.close) for r in others] == [
        ("drs", 80.0, True),
        ("xenguard", 79.0, False),
    ]
    assert others[0].metrics.migrations == 9


def test_without_overload_in_the_baseline_every_cut_is_zero_and_close():
    _ours, cut, others = rivals([result("none", 0), result("virtbalance", 0), result("drs", 0)])
    assert cut == 0.0
    assert [(r.name, r.cut, r.close) for r in others] == [("drs", 0.0, True)]
