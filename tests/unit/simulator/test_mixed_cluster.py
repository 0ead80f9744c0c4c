"""Mixed clusters: host groups of different sizes, parsed, validated, and filled by ratio."""

from __future__ import annotations

import pytest

from virtbalance.errors import ValidationError
from virtbalance.simulator.cluster import ClusterSpec, HostGroup, build_cluster
from virtbalance.simulator.traces import GIB, synthetic


def test_groups_from_the_file_and_the_flag():
    spec = ClusterSpec.from_mapping(
        {
            "groups": [
                {"hosts": 2, "cpus": 32, "memory_gib": 128},
                {"hosts": 1, "cpus": 64, "memory_gib": 512},
            ]
        }
    )
    assert spec.host_names == ("host0", "host1", "host2")
    assert spec.sizes() == [(32.0, 128 * GIB), (32.0, 128 * GIB), (64.0, 512 * GIB)]
    assert HostGroup.parse("5x64x512") == HostGroup(5, 64.0, 512 * GIB)
    with pytest.raises(ValueError, match=r"HOSTSxCPUSxGIB\[xPOWER\] like 5x32x128, got '5x64'"):
        HostGroup.parse("5x64")


def test_bad_groups_are_each_named():
    with pytest.raises(ValidationError) as caught:
        ClusterSpec.from_mapping(
            {
                "groups": [
                    {"hosts": 0, "cpus": 32, "memory_gib": 128},
                    {"hosts": 1, "cpus": 32},
                    {"hosts": 1.5, "cpus": 32, "memory_gib": 1},
                ]
            }
        )
    assert list(caught.value.problems) == [
        "groups[0].hosts: must be at least 1, got 0",
        "groups[1].memory_gib: missing",
        "groups[2].hosts: expected a whole number, got 1.5",
    ]


def test_first_fit_fills_every_host_to_the_same_share_of_its_own_memory():
    # 12 domains of 8 GiB = 96 GiB on 64 + 64 + 256 GiB (25%): auto fill is 30%, so each small host
    # takes 19.2 GiB (2 domains) and the big one the rest: every host near a quarter of its memory.
    workload = synthetic(0.0, 300.0, [(f"vm{i:02d}", 2, 8 * GIB, [1.0]) for i in range(12)])
    spec = ClusterSpec(
        groups=(HostGroup(2, 16.0, 64 * GIB), HostGroup(1, 64.0, 256 * GIB)), chunk_share=0.0
    )
    cluster = build_cluster(workload.vms, spec)
    counts = {h: sum(1 for p in cluster.placement.values() if p == h) for h in cluster.host_names}
    assert counts == {"host0": 2, "host1": 2, "host2": 8}
    assert cluster.host_cpus == {"host0": 16.0, "host1": 16.0, "host2": 64.0}
    assert cluster.host_memory["host2"] == 256 * GIB
