"""The migration cost model's arithmetic, and what a migration costs both hosts in the replay."""

from __future__ import annotations

import pytest

from tests.simulator_fixtures import Scripted, uniform_cluster
from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.simulator.cluster import Cluster
from virtbalance.simulator.config import parse_simulation
from virtbalance.simulator.engine import replay
from virtbalance.simulator.migration import GIB, MIB, CostModel
from virtbalance.simulator.state import Move
from virtbalance.simulator.traces import synthetic

STEP = 300.0
COST = CostModel()  # 1 GiB/s per pair, 16 MiB/s dirtied per busy core, 0.25 cores of copying


def test_transfer_is_the_memory_plus_what_is_dirtied_while_it_is_copied():
    # 4 GiB copied at 1 GiB/s takes 4 s; 2 busy cores dirty 32 MiB/s meanwhile: 128 MiB more.
    assert COST.transfer_bytes(4 * GIB, 2.0, GIB) == 4 * GIB + 128 * MIB
    # At half the bandwidth the copy takes twice as long, so twice as much is dirtied.
    assert COST.transfer_bytes(4 * GIB, 2.0, GIB / 2) == 4 * GIB + 256 * MIB
    assert COST.transfer_bytes(4 * GIB, 0.0, GIB) == 4 * GIB


def test_one_migration_alone_on_its_pair():
    assert COST.wave([(4 * GIB, 2.0)]) == [pytest.approx(4.125)]


def test_concurrent_migrations_share_the_pair_and_speed_up_when_one_ends():
    # Idle 2 GiB and 4 GiB domains at 0.5 GiB/s each: the first ends at 4 s; the second, alone for
    # its last 2 GiB at 1 GiB/s, at 6 s (the pair moved 6 GiB in 6 s).
    assert COST.wave([(2 * GIB, 0.0), (4 * GIB, 0.0)]) == [pytest.approx(4.0), pytest.approx(6.0)]
    # With dirty memory the shared rate also lengthens each one's dirty round.
    ends = COST.wave([(2 * GIB, 1.0), (2 * GIB, 1.0)])
    # Each copies 2 GiB at 0.5 GiB/s (4 s), dirtying 16 MiB/s: 64 MiB more; both end together.
    assert ends == [pytest.approx((4 * GIB + 128 * MIB) / GIB)] * 2


def test_a_chunk_larger_than_the_per_host_cap_moves_in_waves():
    members = [(GIB, 0.0)] * 5
    spans = COST.chunk(members, per_host=4)
    # Four together on 1 GiB/s: 4 s; the fifth starts when they end and takes 1 s alone.
    assert spans == [(0.0, pytest.approx(4.0))] * 4 + [(pytest.approx(4.0), pytest.approx(5.0))]


def test_disabled_costs_nothing():
    free = CostModel(enabled=False)
    assert free.chunk([(8 * GIB, 4.0)] * 3, per_host=4) == [(0.0, 0.0)] * 3


def test_settings_are_validated_with_every_problem():
    assert (
        CostModel.from_mapping({"bandwidth_gib": 10, "overhead_cores": 0.5}).bandwidth == 10 * GIB
    )
    with pytest.raises(ValidationError) as caught:
        CostModel.from_mapping({"bandwidth_gib": 0, "dirty_mib_per_core": -1, "speed": 1})
    assert list(caught.value.problems) == [
        "bandwidth_gib: must be positive, got 0",
        "dirty_mib_per_core: must not be negative, got -1",
        "speed: unknown key 'speed' (known: enabled, bandwidth_gib, dirty_mib_per_core,"
        " overhead_cores, concurrent)",
    ]
    simulation = parse_simulation({"migration": {"enabled": False}}, "sim.yaml")
    assert simulation.migration.enabled is False


def two_hosts() -> Cluster:
    return uniform_cluster({"a": "h0", "b": "h0", "c": "h1"}, cpus=4.0)


def test_source_keeps_the_load_and_the_copying_while_the_destination_carries_it_too():
    # a: 2 cores, 30 GiB. Decided at step 0, it migrates during step 1's interval: 30 GiB at 1 GiB/s
    # plus 2 cores x 16 MiB/s x 30 s = 960 MiB dirtied: 30.9375 s of the 300 s step.
    workload = synthetic(
        0.0,
        STEP,
        [("a", 2, 30 * GIB, [2.0] * 3), ("b", 1, GIB, [1.0] * 3), ("c", 1, GIB, [0.5] * 3)],
    )
    result = replay(workload, two_hosts(), Scripted({0: [Move("a", "h1")]}), Policy(), cost=COST)
    seconds = 30.9375
    share = seconds / STEP
    (record,) = result.history
    assert (record.time, record.duration) == (pytest.approx(seconds), pytest.approx(seconds))
    h0, h1 = result.host_series["h0"], result.host_series["h1"]
    assert h0[1] == pytest.approx((1.0 + share * (2.0 + 0.25)) / 4)
    assert h1[1] == pytest.approx((0.5 + 2.0) / 4)
    assert (h0[2], h1[2]) == (pytest.approx(0.25), pytest.approx(0.625))
    assert result.metrics.migration_seconds == pytest.approx(seconds)


def test_chunks_run_one_after_another_and_nothing_is_decided_while_they_run():
    # Two 600 GiB domains to different hosts, one after the other from step 0: a (idle) copies for
    # 600 s; b (1 core: 16 MiB/s dirtied, 9.375 GiB more) waits for it, then copies for 609.375 s.
    workload = synthetic(
        0.0,
        STEP,
        [("a", 1, 600 * GIB, [0.0] * 8), ("b", 1, 600 * GIB, [1.0] * 8), ("c", 1, GIB, [0.0] * 8)],
    )
    cluster = uniform_cluster(
        {"a": "h0", "b": "h0", "c": "h1"}, cpus=4.0, hosts=("h0", "h1", "h2"), memory=2048 * GIB
    )
    script = {0: [Move("a", "h1"), Move("b", "h2")], 2: [Move("c", "h0")], 5: [Move("c", "h2")]}
    result = replay(workload, cluster, Scripted(script), Policy(), cost=COST)
    b_ends = 600.0 + 609.375
    # The step-2 move is never asked for: the executor is busy until b ends (step 5 decides again).
    assert [(r.domain, r.time, r.duration) for r in result.history] == [
        ("a", pytest.approx(600.0), pytest.approx(600.0)),
        ("b", pytest.approx(b_ends), pytest.approx(609.375)),
        ("c", pytest.approx(1500.0 + 1.0), pytest.approx(1.0)),
    ]
    h0, h2 = result.host_series["h0"], result.host_series["h2"]
    # Step 1 (0-300 s): a copies (0.25 cores on h0); b waits, its load still on h0, not yet on h2.
    assert (h0[1], h2[1]) == (pytest.approx((1.0 + 0.25) / 4), pytest.approx(0.0))
    # Step 3 (600-900 s): b copies: on h0 with the copying, and on h2 too.
    assert (h0[3], h2[3]) == (pytest.approx((1.0 + 0.25) / 4), pytest.approx(1.0 / 4))
    # Step 5 (1200-1500 s): b ends 9.375 s into it.
    share = 9.375 / STEP
    assert h0[5] == pytest.approx(share * 1.25 / 4)
    assert h2[5] == pytest.approx(1.0 / 4)
