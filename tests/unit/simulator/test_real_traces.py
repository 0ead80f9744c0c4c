"""The loaders and a replay on the real traces in ../shared/traces (read in place, a few files only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.simulator_fixtures import simulate
from virtbalance.policy import Policy
from virtbalance.simulator.cluster import ClusterSpec, build_cluster
from virtbalance.simulator.engine import replay
from virtbalance.simulator.policies import build_plugins
from virtbalance.simulator.traces import GIB, load_bitbrains, load_planetlab

# ../shared/traces beside the checkout, or wherever VIRTBALANCE_TRACES points (a worktree elsewhere).
TRACES = Path(
    os.environ.get("VIRTBALANCE_TRACES", Path(__file__).resolve().parents[4] / "shared" / "traces")
)
BITBRAINS = TRACES / "bitbrains-rnd-2013-7"
PLANETLAB = TRACES / "planetlab" / "20110303"

pytestmark = pytest.mark.skipif(
    not BITBRAINS.is_dir(), reason=f"the shared traces are not at {TRACES} on this machine"
)


def test_bitbrains_real_files_load_onto_the_month_grid():
    workload = load_bitbrains(BITBRAINS, limit=12, strict=True)
    assert [vm.name for vm in workload.vms] == [str(i) for i in range(1, 13)]
    # July 2013 in five-minute steps; "Timestamp [ms]" read as seconds puts the start on 2013-06-30/07-01.
    assert 1372550400 <= workload.start <= 1372636800
    assert 8600 <= workload.steps <= 8700
    first = workload.vms[0]
    assert first.vcpus == 2
    # 1.csv's first row: 1.5% of 2 cores.
    assert first.cpu[0] == pytest.approx(0.03)
    assert all(0.0 <= value <= vm.vcpus for vm in workload.vms for value in vm.cpu)
    assert all(vm.memory_bytes >= GIB for vm in workload.vms)


def test_planetlab_real_day():
    workload = load_planetlab(PLANETLAB, limit=20, strict=True)
    assert len(workload.vms) == 20
    assert workload.steps == 288


def test_virtbalance_relieves_real_load_without_splitting_chunks():
    # The first week of 60 VMs peaks at 162 cores: 4 hosts of 58 CPUs keep the cluster below 75%.
    workload = load_bitbrains(BITBRAINS, limit=60).window(0, 7 * 288)
    spec = ClusterSpec(hosts=4, cpus=58, memory_bytes=256 * GIB, chunk_share=0.3, seed=2)
    cluster = build_cluster(workload.vms, spec)
    policy = Policy()
    none, ours = (
        replay(workload, cluster, plugin, policy, record_series=False).metrics
        for plugin in build_plugins(["none", "virtbalance"], {}, policy)
    )
    assert none.overloaded_host_steps > 0
    assert ours.migrations > 0
    assert ours.overloaded_host_steps < none.overloaded_host_steps / 10
    assert ours.chunk_splits == 0
    assert ours.flaps == 0


AUGUST = TRACES / "bitbrains-rnd-2013-8"


@pytest.mark.skipif(not AUGUST.is_dir(), reason=f"{AUGUST} is not on this machine")
def test_bitbrains_next_month_loads_with_memory_that_follows_the_trace():
    workload = load_bitbrains(AUGUST, limit=12, strict=True)
    assert [vm.name for vm in workload.vms] == [str(i) for i in range(1, 13)]
    # August 2013: 1.csv starts at 1375308176 (2013-07-31 22:02 UTC), on the 5-minute grid.
    assert workload.start == 1375308000.0
    assert 8600 <= workload.steps <= 8700
    first = workload.vms[0]
    assert first.vcpus == 2
    # 1.csv's first row: 12.77% of 2 cores; 1308620 KB in use (above the 1 GiB floor).
    assert first.cpu[0] == pytest.approx(0.12766666 * 2, rel=1e-6)
    assert first.memory is not None
    assert first.memory[0] == pytest.approx(1308620.0 * 1024)
    assert len(first.memory) == workload.steps
    # The footprint a host must hold is the largest use; every step is within it and above 1 GiB.
    assert all(
        GIB <= value <= vm.memory_bytes + 1 for vm in workload.vms for value in vm.memory or ()
    )


@pytest.mark.skipif(not AUGUST.is_dir(), reason=f"{AUGUST} is not on this machine")
def test_simulate_cli_on_the_next_month_reports_the_diagnosis(tmp_path, capsys):
    printed, document = simulate(
        tmp_path,
        capsys,
        *("--traces", str(AUGUST), "--limit", "30", "--host-groups", "2x8x64,1x16x128"),
        *("--bandwidth-gib", "2", "--policies", "none,virtbalance"),
    )
    assert "why virtbalance did not relieve an overload at once:" in printed
    setup = document["setup"]
    assert setup["cluster"]["hosts"] == 3
    assert setup["cluster"]["groups"] == [
        {"hosts": 2, "cpus": 8.0, "memory_gib": 64.0},
        {"hosts": 1, "cpus": 16.0, "memory_gib": 128.0},
    ]
    assert setup["migration"]["bandwidth_gib"] == 2.0
    none, ours = document["policies"]
    assert "diagnosis" not in none
    diagnosis = ours["diagnosis"]
    # Every overloaded host-step has exactly one cause.
    assert (
        sum(c["host_steps"] for c in diagnosis["causes"].values()) == ours["overloaded_host_steps"]
    )
    assert diagnosis["relieved"] + diagnosis["unrelieved"] == diagnosis["stretches"]
    assert ours["overloaded_host_steps"] < none["overloaded_host_steps"]
    assert ours["chunk_splits"] == 0
