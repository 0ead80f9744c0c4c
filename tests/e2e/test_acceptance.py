"""Acceptance: the whole loop in the lab, asserted phase by phase on one recorded run (see conftest.py)."""

from __future__ import annotations

import itertools
import statistics

import pytest

from tests.e2e.conftest import HOST, RebalancedStack, Record
from virtbalance.contract import ALERT_OVERLOAD

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.lab]


@pytest.fixture(scope="module")
def run(rebalanced_stack: RebalancedStack) -> Record:
    return rebalanced_stack.record


@pytest.fixture(scope="module")
def cpu_high(rebalanced_stack: RebalancedStack) -> float:
    return rebalanced_stack.stack.policy.cpu_high


def test_no_alert_while_the_load_stays_under_the_threshold(run, cpu_high):
    run.require("calm", "freeze")
    calm = run.samples_between("calm", "freeze")
    assert len(calm) >= 20, "too few Prometheus samples in the calm phase"
    assert max(s.cpu[HOST] for s in calm) < cpu_high, (
        f"lab CPU group: {run.cpu_group} (without it the machine's load counts as demand)"
    )
    assert all(HOST not in s.alerts for s in calm), "an alert (even pending) under the threshold"


def test_a_spike_shorter_than_for_does_not_fire(run):
    run.require("spike", "calm")
    spike = run.samples_between("spike", "calm")
    assert spike, "no samples during the spike"
    states = {s.alerts.get(HOST) for s in spike}
    assert "firing" not in states
    print(f"spike: alert states seen {sorted(str(x) for x in states)}")


def test_the_sustained_overload_fires_after_for(run, rebalanced_stack):
    run.require("overload", "firing")
    policy = rebalanced_stack.stack.policy
    assert run.firing_at is not None
    # It cannot fire before the load was raised and had held above the threshold for `for:`.
    assert run.firing_at - run.phases["overload"] >= policy.overload_for


def test_a_freeze_silence_prevents_every_migration(run):
    run.require("freeze", "unfreeze")
    assert run.frozen_plans, "the actioner made no plan while frozen"
    assert all(p.outcome == "frozen" for p in run.frozen_plans), [
        (p.id, p.outcome, p.detail) for p in run.frozen_plans
    ]
    assert not [m for p in run.frozen_plans for m in p.migrations if m.state == "done"]
    frozen = [
        placement
        for at, placement in run.placements
        if run.phases["freeze"] <= at < run.phases["unfreeze"]
    ]
    assert frozen
    assert all(p == frozen[0] for p in frozen), "a domain moved while migrations were frozen"


def test_expiring_the_silence_lets_the_next_notification_act(run, rebalanced_stack):
    run.require("unfreeze", "migrating")
    start = run.first_migration_start
    assert start is not None, "nothing migrated after the silence expired"
    assert start >= run.phases["unfreeze"]
    repeat = float(rebalanced_stack.stack.timings.repeat_interval.rstrip("s"))
    assert start - run.phases["unfreeze"] <= repeat + 15


def test_the_whole_chunk_moved_together_off_the_overloaded_host(run):
    run.require("moved")
    moved = [m for m in run.migrations if m.state == "done"]
    assert moved, [(m.domain, m.state, m.error) for m in run.migrations]
    assert all(m.state == "done" for m in run.migrations)
    assert {m.source for m in moved} == {HOST}
    assert len({m.destination for m in moved}) == 1
    assert {m.domain for m in moved} == {"cache1", "cache2"}, (
        "only the whole cache chunk relieves hv2"
    )
    destination = moved[0].destination
    assert all(run.final_placement[m.domain] == [destination] for m in moved)


def test_every_chunk_is_on_one_host_at_every_poll(run):
    run.require("spike", "resolved")
    polls = run.placements
    assert not run.poll_errors, run.poll_errors[:5]
    assert polls[0][0] <= run.phases["spike"] and polls[-1][0] >= run.phases["resolved"]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(polls)]
    # At least one poll a second (a loaded 2-core machine may delay a single poll a little).
    assert statistics.quantiles(gaps, n=20)[-1] <= 1.0, max(gaps)
    # A poll can wait on a libvirtd busy with a migration's switchover; what matters is that no
    # migration fits between two polls unseen, so the longest gap is shorter than the shortest move.
    durations = [m.duration for m in run.migrations if m.duration is not None]
    assert durations, "the run migrated nothing"
    assert max(gaps) < min(durations), (max(gaps), min(durations))
    assert run.chunks, "the scenario has chunks"
    for at, placement in polls:
        for domain in run.domains:
            assert placement[domain], f"{domain} ran nowhere at {at:.1f}"
        for chunk in run.chunks:
            common = set.intersection(*(set(placement[d]) for d in chunk))
            assert common, f"chunk {chunk} split at {at:.1f}: {[placement[d] for d in chunk]}"


def test_the_overloaded_host_ends_under_cpu_high(run, cpu_high):
    run.require("resolved")
    after = [s for s in run.samples if s.at >= run.phases["resolved"]]
    assert after
    assert after[-1].cpu[HOST] < cpu_high


def test_no_destination_goes_over_cpu_high(run, cpu_high):
    run.require("moved")
    destinations = {m.destination for m in run.migrations}
    assert destinations
    for sample in run.samples:
        for host in destinations:
            assert sample.cpu[host] <= cpu_high, (host, sample)


def test_the_cooldown_prevents_a_second_wave_while_rates_lag(run, cpu_high):
    run.require("moved", "resolved", "end")
    # Right after the move, Prometheus's 30 s rates still showed the host overloaded ...
    lagging = [
        s
        for s in run.samples
        if run.phases["moved"] <= s.at < run.phases["resolved"] and s.alerts.get(HOST) == "firing"
    ]
    assert lagging, "the alert resolved at once: the lag the cooldown guards against did not occur"
    assert run.second_wave_cpu is not None and run.second_wave_cpu > cpu_high
    # ... and a new notification then planned nothing: the settle and cooldown barriers held.
    wave = run.second_wave
    assert wave is not None
    assert wave.migrations == (), [(m.domain, m.state) for m in wave.migrations]
    assert wave.outcome in ("unresolved", "empty"), (wave.outcome, wave.detail)
    print(f"second wave: {wave.outcome}: {wave.detail}")
    # Exactly one plan moved anything, and only the one chunk.
    acting = [p for p in run.plans if p.migrations]
    assert len(acting) == 1, [(p.id, p.outcome, len(p.migrations)) for p in run.plans]
    assert len(run.migrations) == 2
    assert run.cooldowns_after_move.get("host", 0) + run.cooldowns_after_move.get("vm", 0) > 0


def test_the_alert_resolves(run, rebalanced_stack):
    run.require("resolved")
    assert run.resolved_at is not None
    active = [
        a
        for a in rebalanced_stack.stack.alertmanager.alerts(ALERT_OVERLOAD)
        if a.labels.get("host") == HOST and a.state == "active"
    ]
    assert not active


def test_every_domain_runs_exactly_once(run):
    assert set(run.final_placement) == set(run.domains)
    assert {d: h for d, h in run.final_placement.items() if len(h) != 1} == {}


def test_persistent_definitions_are_where_the_domains_run(run):
    for domain, hosts in run.final_placement.items():
        assert run.persistent[domain] == {hosts[0]: True}, (domain, run.persistent[domain])


def test_time_from_firing_to_first_migration_is_reported(run):
    run.require("firing", "unfreeze", "migrating")
    start = run.first_migration_start
    assert run.firing_at is not None and start is not None
    acting = next(p for p in run.plans if p.migrations)
    print(
        f"\nEND TO END: alert firing -> first migration start {start - run.firing_at:.1f}s "
        f"(includes {run.phases['unfreeze'] - run.firing_at:.1f}s frozen); "
        f"silence expired -> migration start {start - run.phases['unfreeze']:.1f}s; "
        f"notification accepted -> migration start {start - acting.created_at:.1f}s"
    )
    assert start - acting.created_at < 30
