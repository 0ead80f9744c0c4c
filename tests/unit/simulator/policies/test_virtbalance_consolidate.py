"""virtbalance-consolidate in the replay: hosts without domains are emptied, woken only when relief needs them."""

from __future__ import annotations

from tests.simulator_fixtures import cluster_view
from virtbalance.policy import Policy
from virtbalance.simulator.policies import build_plugins
from virtbalance.simulator.state import ClusterView
from virtbalance.simulator.traces import GIB

HOSTS = ("h0", "h1", "h2")


def view(placement: dict[str, str], cpu: dict[str, float]) -> ClusterView:
    """Three hosts of 10 CPUs; h0 overloaded and its alert firing; what runs no domain is off."""
    memory = dict.fromkeys(placement, GIB)
    return cluster_view(
        placement, cpu, memory, HOSTS, host_cpus=10.0, at=600.0, firing=frozenset({"h0"})
    )


def relief(
    placement: dict[str, str], cpu: dict[str, float], name: str = "virtbalance-consolidate"
) -> list[tuple[str, str, str]]:
    (plugin,) = build_plugins([name], {}, Policy(forecast_window=0.0))
    return [(m.domain, m.destination, m.reason) for m in plugin.decide(view(placement, cpu))]


def test_relief_goes_to_a_running_host_before_it_wakes_an_off_one():
    # h0 at 90% (above cpu_high 75%): b (3 CPUs) leaving takes it to 60%, within cpu_target 65%.
    # h1 runs c at 20% and has the room (20% + 30% = 50%); h2 runs nothing, so it is off: the least
    # loaded host, which plain virtbalance (no host emptied) fills first, but relief may not wake it
    # while h1 has room.
    placement = {"a": "h0", "b": "h0", "c": "h1"}
    cpu = {"a": 6.0, "b": 3.0, "c": 2.0}
    assert [where for _, where, _ in relief(placement, cpu, "virtbalance")] == ["h2"]
    moves = relief(placement, cpu)
    assert [(d, where) for d, where, _ in moves] == [("b", "h1")]
    assert "waking" not in moves[0][2]


def test_relief_wakes_the_off_host_when_no_running_host_has_room_and_says_so():
    # The same, but h1 is at 60%: nothing from h0 fits it within cpu_target (60% + 30% = 90%), so
    # relief wakes h2 (one move is enough to take h0 below cpu_target) and says so.
    placement = {"a": "h0", "b": "h0", "c": "h1"}
    moves = relief(placement, {"a": 6.0, "b": 3.0, "c": 6.0})
    assert [where for _, where, _ in moves] == ["h2"]
    assert moves[0][2].startswith("waking h2 (emptied; relief needs its room)")
