"""The demo's choice of host and guest loads."""

from __future__ import annotations

import pytest

from virtbalance.lab.demo.overload import choose_overload, script_for
from virtbalance.lab.scenario import MAX_TOTAL_LOAD_PERCENT, load_scenario

CHUNKS = {
    "hv1": {"lan1": ["a1", "a2"], "lan2": ["b1", "b2", "b3"], "domain:x": ["x"]},
    "hv2": {"lan3": ["c1", "c2"], "domain:y": ["y"]},
    "hv3": {"domain:z": ["z"]},
}
CPUS = {"hv1": 2.0, "hv2": 2.0, "hv3": 2.0}


def test_picks_the_host_with_most_chunks_and_loads_chunks_evenly():
    overload = choose_overload(CHUNKS, CPUS, ratio=0.9)
    assert overload.host == "hv1"
    # 0.9 * 2 CPUs = 180% split over two chunks: 90% per chunk, spread over its members.
    assert overload.loads == {"a1": 45, "a2": 45, "b1": 30, "b2": 30, "b3": 30}
    assert "x" not in overload.loads
    assert overload.ratio == pytest.approx(0.9)


def test_each_loaded_chunk_alone_fits_under_the_target_elsewhere():
    overload = choose_overload(CHUNKS, CPUS, ratio=0.92)
    for members in CHUNKS["hv1"].values():
        if len(members) > 1:
            chunk_cores = sum(overload.loads[d] for d in members) / 100
            assert chunk_cores / CPUS["hv2"] <= 0.65
            assert (overload.cores - chunk_cores) / CPUS["hv1"] <= 0.65


def test_one_chunk_only_spreads_the_load_over_every_domain():
    overload = choose_overload(CHUNKS, CPUS, ratio=0.9, host="hv2")
    assert overload.loads == {"c1": 60, "c2": 60, "y": 60}


def test_refuses_a_load_one_vcpu_per_guest_cannot_give():
    with pytest.raises(ValueError, match="more than one busy vCPU"):
        choose_overload(CHUNKS, {"hv3": 4.0}, ratio=0.9, host="hv3")


def test_unknown_host_is_an_error():
    with pytest.raises(ValueError, match="runs no domain"):
        choose_overload(CHUNKS, CPUS, ratio=0.9, host="hv9")


def test_shipped_scripts_fit_the_lab_budget_and_overload_their_host():
    for name in ("default", "thesis-ft"):
        scenario = load_scenario(name)
        cpus = {h.name: h.cpus for h in scenario.hosts}
        script = script_for(name, {}, cpus, ratio=0.9)
        placement = {d.name: d.host for d in scenario.domains} | script.gather
        loads = {d.name: d.load for d in scenario.domains} | script.overload.loads
        assert set(script.overload.loads) <= set(placement), name
        assert all(placement[d] == script.overload.host for d in script.overload.loads), name
        assert sum(loads.values()) <= MAX_TOTAL_LOAD_PERCENT, name
        on_host = sum(v for d, v in loads.items() if placement[d] == script.overload.host)
        # Clearly over the lab's cpu_high (75%) even when a shared machine steals a little.
        assert on_host / 100 / cpus[script.overload.host] >= 0.85, name
