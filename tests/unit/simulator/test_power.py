"""The power model, CloudSim's SLA metrics and energy in the replay, on hand-computed cases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from tests.simulator_fixtures import Scripted, uniform_cluster
from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.simulator.cluster import Cluster, ClusterSpec, HostGroup, build_cluster
from virtbalance.simulator.engine import replay
from virtbalance.simulator.migration import MIB, CostModel
from virtbalance.simulator.pabfd import PowerTable
from virtbalance.simulator.power import ML110_G4, ML110_G5, PowerModel, kwh
from virtbalance.simulator.sla import SlaTotals
from virtbalance.simulator.state import ClusterView, Move
from virtbalance.simulator.traces import GIB, synthetic

STEP = 300.0


def test_power_is_interpolated_between_the_ten_percent_points():
    assert ML110_G4.power(0.0) == 86.0
    assert ML110_G4.power(1.0) == 117.0
    # 25%: halfway between 92.6 (20%) and 96 (30%).
    assert ML110_G4.power(0.25) == pytest.approx(94.3)
    # 93%: 133 + 0.3 x (135 - 133).
    assert ML110_G5.power(0.93) == pytest.approx(133.6)
    # Demand above capacity draws full power; an emptied host nothing.
    assert ML110_G5.power(1.7) == 135.0
    assert ML110_G5.host_power(0.5, empty=True) == 0.0
    assert ML110_G5.host_power(0.5, empty=False) == 116.0


def test_power_tables_are_checked():
    with pytest.raises(ValueError, match="11 points"):
        PowerModel("short", (1.0, 2.0))
    with pytest.raises(ValueError, match="must not fall"):
        PowerModel("falls", (10.0,) * 10 + (5.0,))


def test_kwh():
    assert kwh(1000.0, 3600.0) == 1.0
    assert kwh(120.0, 300.0) == pytest.approx(0.01)


def test_sla_totals_pool_hosts_and_domains():
    totals = SlaTotals()
    # Host A active three intervals, short of CPU in two; host B off (not counted) though asked more.
    totals.add_host(300.0, requested=2.5, allocated=2.0, active=True)  # demand above capacity
    totals.add_host(300.0, requested=2.0, allocated=2.0, active=True)  # exactly full: no violation
    totals.add_host(300.0, requested=1.5, allocated=1.2, active=True)  # a domain above its core
    totals.add_host(300.0, requested=9.0, allocated=2.0, active=False)
    assert totals.slatah == pytest.approx(2 / 3)
    # A domain of 1 core migrating 30 s loses 10%: 3 core-seconds of 600 asked for.
    totals.requested = 600.0
    totals.add_migration(1.0, 30.0)
    assert totals.degraded == pytest.approx(3.0)
    assert totals.pdm == pytest.approx(0.005)
    assert totals.slav == pytest.approx(2 / 3 * 0.005)
    assert SlaTotals().slatah == 0.0 and SlaTotals().pdm == 0.0


def test_replay_energy_sla_and_an_emptied_host_drawing_nothing():
    # h0 (G4, 2 CPUs) holds a (1 core) and b (0.5); h1 (G5, 2 CPUs) holds c (2.4, above capacity).
    # a moves to h1 at step 0; with CloudSim's model it copies 600 MiB at 62.5 MiB/s: 9.6 s.
    workload = synthetic(
        0.0,
        STEP,
        [("a", 1, 600 * MIB, [1.0] * 3), ("b", 1, MIB, [0.5] * 3), ("c", 1, MIB, [2.4] * 3)],
    )
    cluster = uniform_cluster(
        {"a": "h0", "b": "h0", "c": "h1"}, cpus=2.0, host_power={"h0": ML110_G4, "h1": ML110_G5}
    )
    cost = CostModel(bandwidth=62.5 * MIB, dirty_per_core=0.0, overhead_cores=0.0, concurrent=True)
    script = {0: [Move("a", "h1")], 1: [Move("b", "h1")]}
    result = replay(workload, cluster, Scripted(script), Policy(), cost=cost)
    m = result.metrics
    # Step 0: h0 at 75% (108 + 0.5 x 4 = 110 W), h1 at 120% (135 W). Step 1: h0 has b, and a for
    # the 9.6 s of its copy: (0.5 + 9.6 / 300) / 2 = 26.6%, 92.6 + 0.66 x 3.4 = 94.844 W; h1 full.
    # Step 2: h0 is empty (0 W), h1 full.
    watts = (110.0 + 135.0) + (94.844 + 135.0) + 135.0
    assert m.energy_kwh == pytest.approx(kwh(watts, STEP))
    # Five active host-intervals, h1 saturated in all three.
    assert m.sla.slatah == pytest.approx(3 / 5)
    # a loses 10% of 1 core for 9.6 s; b (1 MiB) for 0.016 s of 0.5 core; asked: 3.9 cores x 900 s.
    degraded = 0.1 * 1.0 * 9.6 + 0.1 * 0.5 * (1 / 62.5)
    assert m.sla.pdm == pytest.approx(degraded / (3.9 * 900.0))
    assert [r.duration for r in result.history] == [pytest.approx(9.6), pytest.approx(0.016)]
    document = m.to_dict()
    assert document["energy_kwh"] == round(kwh(watts, STEP), 3)
    assert document["slatah_pct"] == 60.0


def test_no_power_model_reports_no_energy():
    workload = synthetic(0.0, STEP, [("a", 1, GIB, [1.0])])
    cluster = build_cluster(workload.vms, ClusterSpec(hosts=1, cpus=2, chunk_share=0.0))
    assert replay(workload, cluster, Scripted({}), Policy()).metrics.energy_kwh is None


def test_power_models_per_group_and_for_the_cluster():
    spec = ClusterSpec(
        groups=(HostGroup(1, 4.0, GIB, "ml110-g4"), HostGroup(2, 8.0, GIB)), power="ml110-g5"
    )
    assert spec.power_models() == {"host0": ML110_G4, "host1": ML110_G5, "host2": ML110_G5}
    assert HostGroup.parse("2x4x8xml110-g4") == HostGroup(2, 4.0, 8 * GIB, "ml110-g4")
    with pytest.raises(ValidationError) as caught:
        ClusterSpec.from_mapping(
            {
                "power": "toaster",
                "groups": [{"hosts": 1, "cpus": 2, "memory_gib": 1, "power": "kettle"}],
            }
        )
    assert list(caught.value.problems) == [
        "power: must be one of ml110-g4, ml110-g5, got 'toaster'",
        "groups[0].power: must be one of ml110-g4, ml110-g5, got 'kettle'",
    ]


def test_pabfd_picks_the_least_power_rise_within_the_threshold():
    # Three G5 hosts of 5 CPUs: idle, at 40%, at 70%. A VM of 1 CPU (20%): the idle host, priced at
    # its 0% figure, rises 93.7 -> 101 (+7.3 W); the one at 40% 110 -> 121 (+11); the one at 70%
    # would reach 90%, above the threshold.
    table = PowerTable([5.0] * 3, [5.0] * 3, [ML110_G5] * 3)
    used = np.array([0.0, 2.0, 3.5])
    allowed = np.ones(3, dtype=np.bool_)
    assert table.best(1.0, used, allowed, 0.8) == 0
    allowed[0] = False
    assert table.best(1.0, used, allowed, 0.8) == 1
    allowed[1] = False
    assert table.best(1.0, used, allowed, 0.8) is None
    # An idle host takes a VM above the threshold (CloudSim's rule), never above its capacity.
    allowed[0] = True
    assert table.best(4.5, used, allowed, 0.8) == 0
    assert table.best(5.5, used, allowed, 0.8) is None


def test_pabfd_prices_a_decision_from_the_power_measured_before_it():
    # Two G5 hosts of 5 CPUs: host 0 measured 10% (97 W) and received 0.5 CPU earlier in this
    # decision (now 20%), host 1 measured 40% (110 W). A VM of 0.5 CPU: from the updated power, host 0
    # rises 101 -> 105 (+4) and host 1 110 -> 116 (+6); from what each measured before the decision,
    # host 0 costs 105 - 97 = +8, so CloudSim puts it on host 1.
    table = PowerTable([5.0] * 2, [5.0] * 2, [ML110_G5] * 2)
    used = np.array([1.0, 2.0])
    allowed = np.ones(2, dtype=np.bool_)
    assert table.best(0.5, used, allowed, 0.8) == 0
    measured = table.power(np.array([0.5, 2.0]))
    assert list(measured) == pytest.approx([97.0, 110.0])
    assert table.best(0.5, used, allowed, 0.8, measured) == 1


def test_pabfd_needs_a_core_that_takes_the_demand():
    # A G4 (2 x 1.86) and a G5 (2 x 2.66), both idle: 2 CPUs fit either host, but only the G5's core.
    table = PowerTable([3.72, 5.32], [1.86, 2.66], [ML110_G4, ML110_G5])
    used = np.zeros(2)
    allowed = np.ones(2, dtype=np.bool_)
    assert table.best(2.0, used, allowed, 0.8) == 1
    allowed[1] = False
    assert table.best(2.0, used, allowed, 0.8) is None
    assert table.best(1.8, used, allowed, 0.8) == 0


def test_domains_are_capped_at_their_cores_for_power_and_sla():
    # CloudSim's cores: a G4 host of 2 x 1.86 CPUs runs a 1-vCPU domain asking 2.5 at one core (1.86).
    # Step 0: a alone: the host runs 1.86 of 3.72 (50%: 102 W) and is short of CPU (SLATAH). Step 1:
    # a asks 1.5 and b 1.0: both within a core, 2.5 of 3.72 (67.2%: 106 + 0.72 x 2 = 107.44 W).
    workload = synthetic(0.0, STEP, [("a", 1, MIB, [2.5, 1.5]), ("b", 1, MIB, [0.0, 1.0])])
    cluster = Cluster(
        host_names=("h0",),
        host_cpus={"h0": 3.72},
        host_memory={"h0": 64 * GIB},
        networks={},
        placement={"a": "h0", "b": "h0"},
        host_power={"h0": ML110_G4},
        host_core={"h0": 1.86},
    )
    m = replay(workload, cluster, Scripted({}), Policy()).metrics
    assert m.energy_kwh == pytest.approx(kwh(102.0 + (106.0 + 2.0 * (2.5 / 3.72 * 10 - 6)), STEP))
    assert m.sla.slatah == pytest.approx(0.5)
    # Without cores the same host runs a whole: 2.5 of 3.72 at step 0 too, never short of CPU.
    plain = replay(
        workload, Cluster(**{**cluster.__dict__, "host_core": {}}), Scripted({}), Policy()
    ).metrics
    assert plain.sla.slatah == 0.0


def test_a_deleted_vm_leaves_its_host_off():
    # a (on h0) is deleted at step 1, after that step is counted: h0 draws at steps 0 and 1, then
    # nothing; the policy sees a gone from step 1's decision on.
    workload = synthetic(0.0, STEP, [("a", 1, MIB, [1.0, 0.0, 0.0]), ("b", 1, MIB, [1.0] * 3)])
    workload = replace(workload, vms=(replace(workload.vms[0], end=1), workload.vms[1]))
    cluster = uniform_cluster(
        {"a": "h0", "b": "h1"}, cpus=2.0, host_power=dict.fromkeys(("h0", "h1"), ML110_G4)
    )
    seen: list[tuple[str, ...]] = []

    class Watch(Scripted):
        def decide(self, view: ClusterView) -> Sequence[Move]:
            seen.append(tuple(sorted(view.placement)))
            return ()

    m = replay(workload, cluster, Watch({}), Policy()).metrics
    # h0: 50% (102 W) then 0% (86 W); h1 at 50% throughout.
    assert m.energy_kwh == pytest.approx(kwh(102.0 + 86.0 + 3 * 102.0, STEP))
    assert m.sla.active_seconds == 5 * STEP
    assert seen == [("a", "b"), ("b",), ("b",)]


def test_cloudsims_slatah_also_counts_a_destination_while_a_vm_arrives():
    totals = SlaTotals()
    totals.add_host(300.0, requested=1.0, allocated=1.0, active=True, arriving=20.0)
    totals.add_host(300.0, requested=3.0, allocated=2.0, active=True, arriving=20.0)  # counted once
    totals.add_host(300.0, requested=1.0, allocated=1.0, active=False, arriving=20.0)
    assert totals.slatah == pytest.approx(300.0 / 600.0)
    assert totals.slatah_cloudsim == pytest.approx(320.0 / 600.0)
    # In the replay: a (600 MiB) moves from h0 to h1 at step 0 and copies for 9.6 s of step 1; no
    # host is ever short of CPU, so only CloudSim's count sees it: 9.6 s of 6 x 300 s active.
    workload = synthetic(0.0, STEP, [("a", 1, 600 * MIB, [0.5] * 3), ("b", 1, MIB, [0.5] * 3)])
    cluster = uniform_cluster(
        {"a": "h0", "b": "h1"}, cpus=2.0, host_power=dict.fromkeys(("h0", "h1"), ML110_G4)
    )
    cost = CostModel(bandwidth=62.5 * MIB, dirty_per_core=0.0, overhead_cores=0.0, concurrent=True)
    m = replay(workload, cluster, Scripted({0: [Move("a", "h1")]}), Policy(), cost=cost).metrics
    # a is placed on h1 from step 1 on (its copy counted on h0 as load, h0 holding no domain is off):
    # active host-steps are h0 at 0 and h1 at 0, 1, 2.
    assert m.sla.active_seconds == 4 * STEP
    assert m.sla.slatah == 0.0
    assert m.sla.slatah_cloudsim == pytest.approx(9.6 / (4 * STEP))
    assert m.to_dict()["slatah_cloudsim_pct"] == round(100 * 9.6 / m.sla.active_seconds, 4)
