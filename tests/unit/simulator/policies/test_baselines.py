"""The mcollective, LiveMigrationSpec and DRS plug-ins on small hand-made clusters."""

from __future__ import annotations

from tests.simulator_fixtures import cluster_view
from virtbalance.simulator.policies.drs import DrsParams, DrsPolicy
from virtbalance.simulator.policies.livemigrationspec import (
    LiveMigrationSpecParams,
    LiveMigrationSpecPolicy,
)
from virtbalance.simulator.policies.mcollective import McollectiveParams, McollectivePolicy
from virtbalance.simulator.state import ClusterView, Move

GIB = 1024**3


def view(
    at: float, hosts: dict[str, list[tuple[str, float]]], cpus: float = 4.0, memory: int = 16 * GIB
) -> ClusterView:
    """Hosts with their (domain, cores) lists; every domain 2 GiB."""
    placement = {d: h for h, ds in hosts.items() for d, _ in ds}
    cpu = {d: c for ds in hosts.values() for d, c in ds}
    domain_memory = dict.fromkeys(placement, 2 * GIB)
    return cluster_view(
        placement,
        cpu,
        domain_memory,
        tuple(hosts),
        host_cpus=cpus,
        host_memory=memory,
        at=at,
        vcpus=2,
    )


LOADED = {
    "a": [("x", 2.0), ("y", 1.5)],  # 0.875
    "b": [("z", 2.2)],  # 0.55: above max_load_candidate 0.5
    "c": [("w", 0.4)],  # 0.1
}


def test_mcollective_waits_max_over_then_moves_the_busiest_vm_to_a_candidate():
    policy = McollectivePolicy(McollectiveParams(interval=300.0, max_over=600.0))
    assert policy.decide(view(0.0, LOADED)) == []
    assert policy.decide(view(300.0, LOADED)) == []
    # Over for 600 s at the third poll: x (2 cores) goes to c, the only host below 0.5.
    assert policy.decide(view(600.0, LOADED)) == [Move("x", "c", "mcollective over load_threshold")]
    # The over-time restarts after a move.
    assert policy.decide(view(900.0, LOADED)) == []


def test_mcollective_polls_every_interval_and_respects_max_vm_per_host():
    policy = McollectivePolicy(McollectiveParams(interval=900.0, max_over=0.0, max_vm_per_host=1))
    # c already has one VM: no candidate at all.
    assert policy.decide(view(0.0, LOADED)) == []
    # Between polls nothing is looked at.
    assert policy.decide(view(300.0, {**LOADED, "c": []})) == ()


def test_livemigrationspec_tries_the_next_hungriest_when_the_first_fits_nowhere():
    hosts = {"a": [("big", 3.0), ("small", 0.5)], "b": [("v", 2.0)]}
    policy = LiveMigrationSpecPolicy(LiveMigrationSpecParams(sustain=0.0))
    # big (3 cores) would put b at 1.25; small fits (0.625).
    assert policy.decide(view(0.0, hosts)) == [Move("small", "b", "livemigrationspec most hungry")]


def test_drs_lowers_the_spread_and_stops_within_tolerance():
    hosts = {"a": [("x", 1.6), ("y", 1.2)], "b": [("z", 0.4)]}
    # Ratios 0.7 and 0.1 (spread 0.3). Moving y gives 0.4/0.4 (spread 0); moving x gives 0.3/0.5.
    assert DrsPolicy(DrsParams(max_moves=4)).decide(view(0.0, hosts)) == [
        Move("y", "b", "drs lower spread")
    ]
    assert DrsPolicy(DrsParams(tolerance=0.35)).decide(view(0.0, hosts)) == []
