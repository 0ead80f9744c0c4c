"""Policy plug-ins: XenGuard against the thesis's chunk experiment, chunk splits on a seeded run."""

from __future__ import annotations

import random

import pytest

from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.simulator.cluster import ClusterSpec, build_cluster
from virtbalance.simulator.engine import replay
from virtbalance.simulator.policies import build_plugins
from virtbalance.simulator.policies.drs import spread
from virtbalance.simulator.policies.xenguard import ChunkMove, XenGuardParams, XenGuardPolicy
from virtbalance.simulator.state import ClusterView
from virtbalance.simulator.traces import synthetic

MB = 1024 * 1024


def thesis_view() -> ClusterView:
    """Mevåg 2007, section 5.3: project ft3 on node0 (94.6% CPU), node1 at 30.6%, node3 at 0.4%.

    node2 had failed and is absent. Memory totals and free figures are the thesis's; the ten VMs
    form chunk #1 (h1-h3 on lan21, 64 MB each) and chunk #2 (lan11 and lan12 joined by north,
    32 MB each). Dom0's compile load is host load no VM carries.
    """
    networks = {
        "h1": ("lan21",),
        "h2": ("lan21",),
        "h3": ("lan21",),
        "home": ("lan11",),
        "fly": ("lan11",),
        "away": ("lan11",),
        "north": ("lan11", "lan12"),
        "east": ("lan12",),
        "south": ("lan12",),
        "west": ("lan12",),
    }
    memory = {n: (64 if n.startswith("h") and n != "home" else 32) * MB for n in networks}
    cpu = dict.fromkeys(networks, 0.003)
    cpu["h2"], cpu["home"] = 0.00286752124916157, 0.00316418524360976
    total = {"node0": 959.62109375, "node1": 959.62109375, "node3": 1007.55859375}
    free = {"node0": 267.2109375, "node1": 265.390625, "node3": 315.77734375}
    hosts = ("node0", "node1", "node3")
    return ClusterView(
        time=0.0,
        step=0,
        step_seconds=300.0,
        host_names=hosts,
        host_cpus=dict.fromkeys(hosts, 1.0),
        host_memory={h: int(total[h] * MB) for h in hosts},
        placement=dict.fromkeys(networks, "node0"),
        domains_by_host={"node0": list(networks), "node1": [], "node3": []},
        cpu=cpu,
        memory=memory,
        vcpus=dict.fromkeys(networks, 1),
        networks=networks,
        host_cpu_used={
            "node0": 0.945633182636372,
            "node1": 0.306271051415965,
            "node3": 0.00402908858640055,
        },
        host_memory_used={h: int((total[h] - free[h]) * MB) for h in hosts},
        firing=frozenset(),
        history=(),
    )


def test_xenguard_reproduces_the_thesis_chunk_experiment():
    decisions = XenGuardPolicy(XenGuardParams()).evacuate(thesis_view())
    # Pass 1 (low mark 0.1): chunk #1 (192 MB) -> node3 (315 MB free); chunk #2 (224 MB) no longer
    # fits node3 (123 MB left). Passes at 0.2 and 0.3 find only node3. At 0.4 node1 (30.6%) joins
    # and takes chunk #2 with its 265 MB free.
    assert decisions == [
        ChunkMove(("h1", "h2", "h3"), "node0", "node3", 0.1),
        ChunkMove(("away", "east", "fly", "home", "north", "south", "west"), "node0", "node1", 0.4),
    ]


def test_xenguard_decide_moves_every_member_and_nothing_below_high():
    view = thesis_view()
    moves = XenGuardPolicy(XenGuardParams()).decide(view)
    assert {m.domain: m.destination for m in moves} == {
        **dict.fromkeys(("h1", "h2", "h3"), "node3"),
        **dict.fromkeys(("away", "east", "fly", "home", "north", "south", "west"), "node1"),
    }
    # With high above node0's 94.6%, XenGuard sees nothing to do.
    assert XenGuardPolicy(XenGuardParams(high=0.95)).decide(view) == []


def test_xenguard_low_cap_stops_the_low_mark():
    # Capped at 0.3, the low mark never passes node1's 30.6%: chunk #2 stays.
    decisions = XenGuardPolicy(XenGuardParams(low_cap=0.3)).evacuate(thesis_view())
    assert [d.destination for d in decisions] == ["node3"]


def bursty_workload(vms: int, steps: int, seed: int):
    rng = random.Random(seed)
    series = []
    for index in range(vms):
        base = rng.uniform(0.1, 0.8)
        values, burst = [], 0
        for _ in range(steps):
            if burst == 0 and rng.random() < 0.02:
                burst = rng.randint(6, 30)
            values.append(base + (rng.uniform(2.0, 3.5) if burst else 0.0))
            burst = max(0, burst - 1)
        series.append((f"vm{index:02d}", 4, (2 + index % 3) * 1024**3, values))
    return synthetic(0.0, 300.0, series)


def test_chunk_aware_policies_never_split_a_seeded_run():
    workload = bursty_workload(24, 400, seed=3)
    spec = ClusterSpec(hosts=4, cpus=12, memory_bytes=64 * 1024**3, chunk_share=0.5, seed=5)
    cluster = build_cluster(workload.vms, spec)
    chunk_members = {m for members in cluster.chunks().values() for m in members}
    assert len(cluster.chunks()) >= 3
    policy = Policy()
    plugins = build_plugins(["none", "virtbalance", "xenguard", "livemigrationspec"], {}, policy)
    results = {p.name: replay(workload, cluster, p, policy, record_series=False) for p in plugins}
    for name in ("virtbalance", "xenguard"):
        metrics = results[name].metrics
        assert metrics.chunk_aware
        assert metrics.migrations > 0
        # Chunks did move, whole.
        assert any(r.domain in chunk_members for r in results[name].history)
        assert metrics.chunk_splits == 0
    # The same run splits chunks under a policy that does not know them: the count can fail.
    assert results["livemigrationspec"].metrics.chunk_splits > 0
    assert (
        results["virtbalance"].metrics.overloaded_host_steps
        < results["none"].metrics.overloaded_host_steps
    )


def test_virtbalance_plugin_respects_barriers_in_the_replay():
    workload = bursty_workload(24, 400, seed=3)
    spec = ClusterSpec(hosts=4, cpus=12, memory_bytes=64 * 1024**3, chunk_share=0.5, seed=5)
    cluster = build_cluster(workload.vms, spec)
    policy = Policy().replace(vm_cooldown="2h", max_migrations_per_hour=3)
    (plugin,) = build_plugins(["virtbalance"], {}, policy)
    history = replay(workload, cluster, plugin, policy, record_series=False).history
    assert history
    last: dict[str, float] = {}
    for record in history:
        if record.domain in last:
            assert record.time - last[record.domain] >= 7200.0
        last[record.domain] = record.time
        in_hour = [r for r in history if record.time - 3600.0 < r.time <= record.time]
        assert len(in_hour) <= 3


def test_drs_spread_and_unknown_parameters_listed():
    assert spread([0.5, 0.5]) == 0.0
    assert spread([0.0, 1.0]) == pytest.approx(0.5)
    with pytest.raises(ValidationError) as caught:
        build_plugins(
            ["drs", "xenguard", "nope"],
            {"drs": {"tolerance": "x", "bogus": 1}, "xenguard": {"high": -1}},
            Policy(),
        )
    problems = caught.value.problems
    assert any(p.startswith("nope: unknown policy") for p in problems)
    assert any(p.startswith("policies.drs.tolerance: expected a number") for p in problems)
    assert any(p.startswith("policies.drs.bogus: unknown parameter") for p in problems)
    assert any(p.startswith("policies.xenguard.high: must not be negative") for p in problems)
