"""The THR-MMT baseline on hand-computed cases: overload shed by least memory, underloaded hosts emptied."""

from __future__ import annotations

import pytest

from tests.simulator_fixtures import cluster_view
from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.simulator.policies import build_plugins
from virtbalance.simulator.power import ML110_G5
from virtbalance.simulator.state import ClusterView
from virtbalance.simulator.traces import GIB


def view(placement: dict[str, str], cpu: dict[str, float], memory: dict[str, int]) -> ClusterView:
    hosts = ("h0", "h1", "h2", "h3")
    return cluster_view(
        placement,
        cpu,
        memory,
        hosts,
        host_cpus=5.0,
        at=300.0,
        host_power=dict.fromkeys(hosts, ML110_G5),
    )


def test_overload_sheds_the_smallest_vm_and_underloaded_hosts_are_emptied():
    (plugin,) = build_plugins(["thr-mmt"], {}, Policy())
    # Hosts of 5 CPUs (ML110 G5: 93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135 W).
    # h0 at 90% (> 0.8): its smallest-memory VM (b, 1 GiB, 1 CPU) leaves, h0 is then at 70%. Power
    # rise for b: h3 (idle, priced at 93.7 W) 93.7 -> 101 (+7.3), h2 10% -> 30% (+8), h1 40% -> 60%
    # (+11): b wakes h3. Then underloaded hosts, least utilised first as measured before the
    # decision; h3 was off then, so (as in CloudSim) it neither sends nor receives, and h0 is over:
    # h2 (10%): c (0.5) can only go to h1, 40% -> 50% (+6). h1 just received: it is not emptied.
    placement = {"a": "h0", "b": "h0", "a2": "h1", "c": "h2"}
    cpu = {"a": 3.5, "b": 1.0, "a2": 2.0, "c": 0.5}
    memory = {"a": 4 * GIB, "b": GIB, "a2": 2 * GIB, "c": 2 * GIB}
    moves = plugin.decide(view(placement, cpu, memory))
    assert [(m.domain, m.destination, m.reason) for m in moves] == [
        ("b", "h3", "thr-mmt: overloaded"),
        ("c", "h1", "thr-mmt: underloaded"),
    ]


def test_a_host_is_emptied_only_if_all_its_vms_fit():
    (plugin,) = build_plugins(["thr-mmt"], {}, Policy())
    # h0 at 10%, h1 at 76%: moving h0's VM onto h1 would take it to 86% (> 0.8); h2, h3 are off and
    # closed to consolidation, so h0 keeps it. h1 cannot be emptied either (h0 was closed first).
    placement = {"a": "h0", "b": "h1"}
    moves = plugin.decide(view(placement, {"a": 0.5, "b": 3.8}, {"a": GIB, "b": GIB}))
    assert moves == []


def test_threshold_is_validated_and_power_models_required():
    with pytest.raises(ValidationError, match="threshold"):
        build_plugins(["thr-mmt"], {"thr-mmt": {"threshold": 1.5}}, Policy())
    (plugin,) = build_plugins(["thr-mmt"], {}, Policy())
    bare = view({"a": "h0"}, {"a": 1.0}, {"a": GIB})
    bare = ClusterView(**{**bare.__dict__, "host_power": {}})
    with pytest.raises(ValidationError, match="power model on every host"):
        plugin.decide(bare)
