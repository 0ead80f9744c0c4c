"""Relieve's packing: the capacity bound, the backtracking packer, and the repair step built on them."""

from __future__ import annotations

import pytest

from tests.unit.test_planner_properties import check_invariants
from virtbalance.plan import Mode
from virtbalance.planner import plan
from virtbalance.planner.exact import solve_relieve
from virtbalance.planner.instances import generate, tight
from virtbalance.planner.model import build_model
from virtbalance.planner.outcome import Outcome
from virtbalance.planner.packing import Allowance, pack
from virtbalance.planner.placement import Placer
from virtbalance.planner.relieve import _full_relief, prepare
from virtbalance.planner.repack import repack
from virtbalance.planner.rooms import Rooms
from virtbalance.policy import Policy

LIFTED = Policy().replace(max_migrations=100_000, max_per_host=100_000, plan_solver="greedy")


def test_rooms_rule_out_large_demands_that_only_the_largest_room_could_hold():
    rooms = Rooms.of([3.49, 1.46, 0.83, 0.7], [100.0] * 4)
    # 3.12 and 1.65 both need the one room above 1.46: together 4.77 > 3.49.
    assert not rooms.admits([0.4, 1.65, 3.12], [1.0, 1.0, 1.0])
    # 3.12 and 1.4 fit the two largest rooms, 0.83 and 0.7 the two others.
    assert rooms.admits([0.7, 0.83, 1.4, 3.12], [1.0] * 4)
    # 0.84 no longer fits the 0.83 room: three demands of 5.36 for the rooms of 3.49 and 1.46.
    assert not rooms.admits([0.7, 0.84, 1.4, 3.12], [1.0] * 4)
    # Memory is bounded the same way, on its own.
    assert not rooms.admits([0.1], [160.0])
    assert not rooms.admits([0.1] * 5, [81.0] * 5)  # 405 for 400 in all
    assert Rooms.of([], []).admits([], [])
    assert not Rooms.of([], []).admits([0.1], [1.0])


def _start(seed: int) -> tuple[Outcome, dict]:
    snapshot = generate(seed, tight(seed))
    model = build_model(snapshot, LIFTED, frozenset(), None)
    outcome = Outcome(model, Placer(model))
    needs, _ = prepare(outcome, None)
    return outcome, needs


def test_pack_places_the_optimal_sets_where_least_loaded_placement_cannot():
    # Seed 88 (11 receivers): the 17 chunks of the optimum's sets do not place least loaded first
    # (either order of place_all); the packer finds destinations for all of them.
    snapshot = generate(88, tight(88))
    optimum = solve_relieve(snapshot, LIFTED, time_limit=30, workers=1)
    assert optimum.feasible and optimum.optimal
    outcome, needs = _start(88)
    units = {u.key: u for name in needs for u in outcome.model.units[name]}
    chosen = [units[source, chunk] for source, chunk, _ in optimum.moves]
    assert outcome.placer.place_all(chosen) is None
    allowance = Allowance(10_000)
    placed = pack(outcome.placer, chosen, allowance=allowance)
    assert placed is not None and allowance.left < 10_000
    assert sorted(u.key for u, _ in placed) == sorted(u.key for u in chosen)
    for _, name in outcome.placer.order:
        host = outcome.model.hosts[name]
        mine = [u for u, d in placed if d == name]
        assert host.cpu_peak + sum(u.cpu_peak for u in mine) <= outcome.placer.cpu_room[name]
        assert host.memory_used + sum(u.memory for u in mine) <= outcome.placer.memory_room[name]
        keys = [k for u in mine for k in u.anti_affinity]
        assert len(keys) == len(set(keys))
        assert not set(keys) & {k for k, n in host.anti_affinity.items() if n > 0}
    # The same input gives the same placement; no allowance left, no placement.
    assert pack(outcome.placer, chosen) == placed
    assert pack(outcome.placer, chosen, allowance=Allowance(0)) is None


def test_pack_refuses_what_exceeds_the_rooms():
    outcome, needs = _start(88)
    everything = [u for name in needs for u in outcome.model.units[name] if not u.blocked]
    assert pack(outcome.placer, everything) is None
    assert pack(outcome.placer, []) == []


@pytest.mark.parametrize("seed", [26, 82])
def test_repack_relieves_the_host_the_greedy_placement_left_without_room(seed):
    # Each host's set placed on what the hosts before it left: one host finds no set that places.
    # Packed together anew, every host gets its set, at the optimum's memory.
    snapshot = generate(seed, tight(seed))
    optimum = solve_relieve(snapshot, LIFTED, time_limit=30, workers=1)
    assert optimum.feasible and optimum.optimal
    outcome, needs = _start(seed)
    for name, need in needs.items():
        _full_relief(outcome, outcome.model.hosts[name], need)
    assert set(outcome.by_source) < set(needs)
    repack(outcome, needs)
    assert set(outcome.by_source) == set(needs)
    assert outcome.moved_memory == optimum.memory_bytes
    result = plan(snapshot, LIFTED)
    assert not result.unresolved
    check_invariants(snapshot, LIFTED, Mode("relieve"), frozenset(), result)
    memory = {d.name: d.memory_bytes for d in snapshot.domains}
    assert sum(memory[m.domain] for m in result.migrations) == optimum.memory_bytes
