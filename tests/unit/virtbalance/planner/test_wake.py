"""Emptied hosts in the planner: they receive nothing, unless relief needs their room (then it says so)."""

from __future__ import annotations

from dataclasses import replace

from virtbalance.plan import Mode
from virtbalance.planner import plan
from virtbalance.policy import Policy
from virtbalance.snapshot import DomainState, HostState, Snapshot, parse_snapshot

GiB = 2**30
NOW = 1_000_000.0
POLICY = Policy(plan_solver="greedy")


def vm(name: str, on: str, cpu: float, memory: int = GiB) -> DomainState:
    return DomainState(name, on, 1, cpu, memory)


def cluster(
    domains: list[DomainState], emptied: tuple[str, ...], *, cpus: dict[str, float]
) -> Snapshot:
    hosts = tuple(
        HostState(
            name,
            size,
            16 * GiB,
            sum(d.cpu_used for d in domains if d.host == name),
            sum(d.memory_bytes for d in domains if d.host == name),
            emptied=name in emptied,
        )
        for name, size in cpus.items()
    )
    return Snapshot(NOW, hosts, tuple(domains))


def moves(result) -> list[tuple[str, str, str]]:
    return sorted((m.domain, m.source, m.destination) for m in result.migrations)


def test_relief_uses_an_awake_host_when_it_has_the_room():
    # hv1 90% of 4 cores; hv2 (awake, 10%) takes the 2 cores; hv3 is emptied and stays so.
    domains = [vm("a", "hv1", 2.0), vm("b", "hv1", 1.6), vm("c", "hv2", 0.4)]
    snap = cluster(domains, ("hv3",), cpus={"hv1": 4, "hv2": 4, "hv3": 4})
    result = plan(snap, POLICY)
    assert moves(result) == [("a", "hv1", "hv2")]
    assert not any("waking" in m.reason for m in result.migrations)
    # Without the mark, hv3 (0%) would be the least loaded destination: the mark is what kept it off.
    unmarked = plan(cluster(domains, (), cpus={"hv1": 4, "hv2": 4, "hv3": 4}), POLICY)
    assert moves(unmarked) == [("a", "hv1", "hv3")]


def test_relief_wakes_an_emptied_host_when_it_needs_the_room_and_says_so():
    # hv2 is at 60% of 4 cores: 2 more would take it past cpu_target 65%. Only hv3 (emptied) has room.
    domains = [vm("a", "hv1", 2.0), vm("b", "hv1", 1.6), vm("c", "hv2", 2.4)]
    result = plan(cluster(domains, ("hv3",), cpus={"hv1": 4, "hv2": 4, "hv3": 4}), POLICY)
    assert moves(result) == [("a", "hv1", "hv3")]
    (migration,) = result.migrations
    assert migration.reason.startswith("waking hv3 (emptied; relief needs its room): ")
    assert result.unresolved == ()


def test_relief_wakes_the_fewest_emptied_hosts_largest_first():
    # Two emptied hosts; one is enough. The larger one (8 cores) is woken, the other stays off.
    domains = [vm("a", "hv1", 2.0), vm("b", "hv1", 1.6), vm("c", "hv2", 2.4)]
    snap = cluster(domains, ("hv3", "hv4"), cpus={"hv1": 4, "hv2": 4, "hv3": 4, "hv4": 8})
    result = plan(snap, POLICY)
    assert moves(result) == [("a", "hv1", "hv4")]
    assert "waking hv4" in result.migrations[0].reason


def test_relief_that_waking_cannot_help_wakes_nothing():
    # Everything on hv1 is pinned: no room anywhere helps, so nothing is woken and nothing moves.
    pinned = [replace(vm(n, "hv1", c), pinned=True) for n, c in (("a", 2.0), ("b", 1.6))]
    result = plan(
        cluster([*pinned, vm("c", "hv2", 2.4)], ("hv3",), cpus={"hv1": 4, "hv2": 4, "hv3": 4}),
        POLICY,
    )
    assert result.migrations == ()
    assert [u.host for u in result.unresolved] == ["hv1"]
    assert "waking" not in result.unresolved[0].reason


def test_balance_leaves_emptied_hosts_out_of_the_spread_and_the_destinations():
    # hv1 70%, hv2 40%: a 30% spread; hv3 is emptied (0%), neither the low end nor a destination.
    domains = [vm("a", "hv1", 1.0), vm("b", "hv1", 1.0), vm("x", "hv1", 0.8), vm("c", "hv2", 1.6)]
    snap = cluster(domains, ("hv3",), cpus={"hv1": 4, "hv2": 4, "hv3": 4})
    result = plan(snap, POLICY, Mode("balance"))
    assert result.migrations
    assert {m.destination for m in result.migrations} == {"hv2"}
    # hv1 at 55% and hv2 at 55%, not hv3 loaded to even out against 0%.
    after = {h.name: h.cpu_ratio for h in result.hosts_after}
    assert after["hv3"] == 0.0
    assert abs(after["hv1"] - after["hv2"]) <= POLICY.balance_spread


def test_balanced_awake_hosts_beside_an_emptied_one_need_no_move():
    domains = [vm("a", "hv1", 2.0), vm("c", "hv2", 2.0)]
    result = plan(
        cluster(domains, ("hv3",), cpus={"hv1": 4, "hv2": 4, "hv3": 4}), POLICY, Mode("balance")
    )
    assert result.migrations == ()
    assert result.unresolved == ()


def test_drain_and_consolidate_place_nothing_on_an_emptied_host():
    domains = [vm("a", "hv1", 0.4), vm("c", "hv2", 0.4)]
    snap = cluster(domains, ("hv3",), cpus={"hv1": 4, "hv2": 4, "hv3": 4})
    assert moves(plan(snap, POLICY, Mode("drain", "hv1"))) == [("a", "hv1", "hv2")]
    consolidated = plan(snap, POLICY, Mode("consolidate"))
    assert len(consolidated.migrations) == 1
    assert consolidated.migrations[0].destination in ("hv1", "hv2")


def test_emptied_travels_through_the_snapshot_format():
    snap = cluster([vm("a", "hv1", 0.4)], ("hv2",), cpus={"hv1": 4, "hv2": 4})
    again = parse_snapshot(snap.to_dict())
    assert [h.emptied for h in again.hosts] == [False, True]
    data = snap.to_dict()
    del data["hosts"][1]["emptied"]
    assert parse_snapshot(data).hosts[1].emptied is False


def test_partial_relief_that_needs_the_room_wakes_the_host():
    # hv1 holds 6 cores on 4: moving "a" (2 cores) leaves it above target either way (partial relief),
    # but only hv3 (emptied) has 2 cores of room: relieving some is worth waking it.
    pinned = replace(vm("p", "hv1", 4.0), pinned=True)
    domains = [pinned, vm("a", "hv1", 2.0), vm("c", "hv2", 2.4)]
    result = plan(cluster(domains, ("hv3",), cpus={"hv1": 4, "hv2": 4, "hv3": 4}), POLICY)
    assert moves(result) == [("a", "hv1", "hv3")]
    assert result.migrations[0].reason.startswith("waking hv3")
    assert [u.host for u in result.unresolved] == ["hv1"]
