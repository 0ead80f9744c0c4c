"""The replay engine on hand-computed cases: overload, alert timing, migration cost, flaps, splits."""

from __future__ import annotations

import pytest

from tests.simulator_fixtures import Scripted, uniform_cluster
from virtbalance.policy import Policy
from virtbalance.simulator.alerting import sustained
from virtbalance.simulator.cluster import Cluster, ClusterSpec, build_cluster
from virtbalance.simulator.engine import replay
from virtbalance.simulator.migration import CostModel
from virtbalance.simulator.policies.livemigrationspec import (
    LiveMigrationSpecParams,
    LiveMigrationSpecPolicy,
)
from virtbalance.simulator.policies.none import NoneParams, NonePolicy
from virtbalance.simulator.state import Move
from virtbalance.simulator.traces import GIB, synthetic

STEP = 300.0
# Instantaneous migrations: the hand-computed cases below are about timing and counting.
FREE = CostModel(enabled=False)


def three_hosts(
    placement: dict[str, str], networks: dict[str, tuple[str, ...]] | None = None
) -> Cluster:
    return uniform_cluster(
        placement, cpus=4.0, hosts=("h0", "h1", "h2"), memory=16 * GIB, networks=networks
    )


def test_sustained_fires_after_for_and_resets():
    since, fires = sustained(None, True, 0.0, 600.0)
    assert (since, fires) == (0.0, False)
    since, fires = sustained(since, True, 300.0, 600.0)
    assert (since, fires) == (0.0, False)
    since, fires = sustained(since, True, 600.0, 600.0)
    assert (since, fires) == (0.0, True)
    assert sustained(since, False, 900.0, 600.0) == (None, False)
    assert sustained(None, True, 900.0, 0.0) == (900.0, True)


WORKLOAD = synthetic(
    0.0,
    STEP,
    [
        ("a", 2, 2 * GIB, [2.0] * 6),
        ("b", 2, 4 * GIB, [1.5] * 6),
        ("c", 1, 1 * GIB, [1.0] * 6),
    ],
)
START = {"a": "h0", "b": "h0", "c": "h1"}


def test_none_on_three_hosts_counts_every_overloaded_step():
    result = replay(WORKLOAD, three_hosts(START), NonePolicy(NoneParams()), Policy())
    m = result.metrics
    # h0 carries 3.5 of 4 cores (0.875 > 0.75) at all 6 steps: 6 of 18 host-steps.
    assert m.overloaded_host_steps == 6
    assert m.overloaded_host_time_pct == pytest.approx(100 * 6 / 18)
    assert m.worst_cpu_ratio == pytest.approx(0.875)
    # The alert (for 10m at 5m steps) fires from the third overloaded step on: steps 2..5.
    assert m.alert_host_steps == 4
    assert (m.migrations, m.migrated_bytes, m.flaps, m.chunk_splits) == (0, 0, 0, 0)
    assert list(result.host_series["h0"]) == [0.875] * 6
    assert list(result.host_series["h2"]) == [0.0] * 6


def test_livemigrationspec_on_three_hosts_hand_computed():
    plugin = LiveMigrationSpecPolicy(LiveMigrationSpecParams(high=0.75, sustain=600.0))
    result = replay(WORKLOAD, three_hosts(START), plugin, Policy(), cost=FREE)
    m = result.metrics
    # Sustained at step 2 (600 s): the hungriest VM, a (2 cores), goes to the idle h2 (0 + 2 of 4 = 0.5);
    # it ends at once and counts on h2 from step 3, so h0 is overloaded at steps 0, 1, 2 only.
    assert [(r.time, r.domain, r.source, r.destination) for r in result.history] == [
        (600.0, "a", "h0", "h2")
    ]
    assert m.overloaded_host_steps == 3
    assert m.overloaded_host_time_pct == pytest.approx(100 * 3 / 18)
    assert m.worst_cpu_ratio == pytest.approx(0.875)
    assert m.migrations == 1
    assert m.migrated_gib == pytest.approx(2.0)
    # 1 migration / 3 VMs / (6 steps * 300 s = 1/48 day) = 16 per VM per day.
    assert m.migrations_per_vm_per_day == pytest.approx(16.0)
    assert list(result.host_series["h0"]) == [0.875] * 3 + [0.375] * 3
    assert list(result.host_series["h2"]) == [0.0] * 3 + [0.5] * 3
    assert m.alert_host_steps == 1


def test_move_takes_effect_next_step_and_memory_is_checked():
    script = {
        0: [Move("a", "h1")],
        1: [Move("b", "nowhere"), Move("c", "h1"), Move("a", "h1")],
    }
    plugin = Scripted(script)
    result = replay(WORKLOAD, three_hosts(START), plugin, Policy(), cost=FREE)
    # Step 1: "nowhere" is unknown, c is already on h1, a is already on h1 (moved at step 1).
    assert result.metrics.rejected_moves == 3
    assert [(r.time, r.domain, r.destination) for r in result.history] == [(0.0, "a", "h1")]
    assert list(result.host_series["h0"])[:2] == [0.875, 0.375]


def test_move_refused_when_destination_memory_is_full():
    cluster = Cluster(
        host_names=("h0", "h1"),
        host_cpus={"h0": 4.0, "h1": 4.0},
        host_memory={"h0": 16 * GIB, "h1": 5 * GIB},
        networks={},
        placement={"a": "h0", "b": "h0", "c": "h1"},
    )
    # c takes 1 GiB of h1's 5: a (2 GiB) fits, then b (4 GiB) no longer does.
    plugin = Scripted({0: [Move("a", "h1"), Move("b", "h1")]})
    result = replay(WORKLOAD, cluster, plugin, Policy())
    assert result.metrics.rejected_moves == 1
    assert [r.domain for r in result.history] == ["a"]


def test_flaps_counted_on_a_constructed_history():
    day = 86400.0
    # 12-hour steps: a goes h0->h1->h0 within 12 h (flap); b goes h0->h1, back after 36 h (no flap);
    # c goes h1->h2->h0->h1 (a tour, not A->B->A: no flap).
    workload = synthetic(
        0.0,
        day / 2,
        [(n, 1, GIB, [0.1] * 10) for n in ("a", "b", "c")],
    )
    script = {
        0: [Move("a", "h1"), Move("b", "h1"), Move("c", "h2")],
        1: [Move("a", "h0"), Move("c", "h0")],
        2: [Move("c", "h1")],
        3: [Move("b", "h0")],
    }
    result = replay(
        workload, three_hosts({"a": "h0", "b": "h0", "c": "h1"}), Scripted(script), Policy()
    )
    assert result.metrics.migrations == 7
    assert result.metrics.flaps == 1


def test_chunk_split_counted_once_per_split_and_again_after_rejoining():
    networks = {"a": ("lan1",), "b": ("lan1",), "c": ()}
    script = {
        0: [Move("a", "h2")],  # splits lan1
        1: [Move("b", "h2")],  # rejoins it
        2: [Move("b", "h1")],  # splits it again
    }
    result = replay(WORKLOAD, three_hosts(START, networks), Scripted(script), Policy())
    assert result.metrics.chunk_splits == 2


def test_seeded_cluster_places_chunks_whole_and_uses_every_host():
    workload = synthetic(
        0.0, STEP, [(f"vm{i}", 2, (1 + i % 4) * GIB, [0.5] * 3) for i in range(40)]
    )
    spec = ClusterSpec(hosts=4, cpus=16, memory_bytes=64 * GIB, chunk_share=0.5, seed=7)
    cluster = build_cluster(workload.vms, spec)
    chunks = cluster.chunks()
    assert len(chunks) >= 4
    for members in chunks.values():
        assert 2 <= len(members) <= 4
        assert len({cluster.placement[m] for m in members}) == 1
    assert set(cluster.placement.values()) == set(spec.host_names)
    # Same seed, same chunks; another seed, other chunks.
    assert build_cluster(workload.vms, spec).networks == cluster.networks
    other = build_cluster(
        workload.vms, ClusterSpec(hosts=4, cpus=16, memory_bytes=64 * GIB, chunk_share=0.5, seed=8)
    )
    assert other.networks != cluster.networks
