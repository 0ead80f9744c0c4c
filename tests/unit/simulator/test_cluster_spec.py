"""The simulation file's cluster and migration sections: what they accept, and the overrides' checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from virtbalance.errors import ValidationError
from virtbalance.simulator.cluster import ClusterSpec, HostGroup, build_cluster
from virtbalance.simulator.config import Simulation, parse_simulation
from virtbalance.simulator.migration import MIB, CostModel
from virtbalance.simulator.traces import GIB, synthetic


def test_the_documented_sections_read_into_their_values():
    simulation = parse_simulation(
        {
            "cluster": {
                "hosts": 10,
                "cpus": 48,
                "memory_gib": 256,
                "chunk_share": 0.2,
                "seed": 1,
                "fill": "auto",
            },
            "migration": {
                "enabled": True,
                "bandwidth_gib": 1,
                "dirty_mib_per_core": 16,
                "overhead_cores": 0.25,
            },
        },
        "sim.yaml",
    )
    assert simulation.cluster == ClusterSpec(hosts=10, cpus=48.0, memory_bytes=256 * GIB)
    assert simulation.migration == CostModel()


def test_fractional_gib_and_mib_are_scaled_and_memory_is_whole_bytes():
    spec = ClusterSpec.from_mapping(
        {
            "memory_gib": 1.3,
            "fill": 1,
            "groups": [{"hosts": 2, "cpus": 4, "memory_gib": 0.5, "power": "ml110-g4"}],
        }
    )
    assert spec.memory_bytes == int(1.3 * GIB) and spec.fill == 1.0
    assert spec.groups == (HostGroup(2, 4.0, GIB // 2, "ml110-g4"),)
    cost = CostModel.from_mapping({"bandwidth_gib": 0.125, "dirty_mib_per_core": 1.5})
    assert (cost.bandwidth, cost.dirty_per_core) == (GIB / 8, 1.5 * MIB)
    assert CostModel.from_mapping(cost.to_mapping()) == cost
    assert cost.to_mapping() == {
        "enabled": True,
        "bandwidth_gib": 0.125,
        "dirty_mib_per_core": 1.5,
        "overhead_cores": 0.25,
        "concurrent": False,
    }


def test_every_problem_of_the_sections_names_its_path_once():
    with pytest.raises(ValidationError) as caught:
        parse_simulation(
            {
                "cluster": {"chunk_min": 5, "chunk_max": 4, "fill": "full", "groups": []},
                "migration": [1],
            },
            "sim.yaml",
        )
    assert caught.value.problems == (
        "cluster.fill: expected a number or auto, got 'full'",
        "cluster.groups: expected a non-empty list (groups of hosts, cpus, memory_gib)",
        "cluster.chunk_max: must not be below chunk_min 5, got 4",
        "migration: expected a mapping, got list",
    )


def test_overrides_of_a_read_section_are_checked_like_the_file():
    # The command line replaces fields of what the file gave; the same declared checks apply.
    cluster = replace(
        ClusterSpec(), hosts=0, memory_bytes=0, groups=(HostGroup(1, 2.0, GIB, "toaster"),)
    )
    migration = replace(CostModel(), bandwidth=-GIB)
    simulation = replace(Simulation(), cluster=cluster, migration=migration)
    assert simulation.problems(require_path=False) == [
        "cluster.hosts: must be at least 1, got 0",
        "cluster.memory_gib: must be positive, got 0.0",
        "cluster.groups[0].power: must be one of ml110-g4, ml110-g5, got 'toaster'",
        "migration.bandwidth_gib: must be positive, got -1.0",
    ]
    workload = synthetic(0.0, 300.0, [("a", 1, GIB, [1.0])])
    with pytest.raises(ValidationError) as caught:
        build_cluster(workload.vms, replace(ClusterSpec(), chunk_share=1.5))
    assert caught.value.problems == ("chunk_share: must be a share in [0, 1], got 1.5",)
