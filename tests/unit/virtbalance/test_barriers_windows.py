"""Barriers: cooldown, settle, anti-flap and the hourly cap from history and from the domains' own fields."""

from __future__ import annotations

from virtbalance.barriers import ago, annotate, cooldown, evaluate, horizon
from virtbalance.contract import MigrationRecord
from virtbalance.policy import Policy
from virtbalance.snapshot import DomainState, HostState, Snapshot

NOW = 100_000.0
POLICY = Policy(max_migrations_per_hour=3)


def test_history_sets_every_window_with_reasons():
    history = [
        (
            "web1",
            "hv1",
            "hv2",
            NOW - 12 * 60,
        ),  # cooling, settling (no: 12 min > 10m), anti-flap hv1
        MigrationRecord("db1", "hv3", "hv4", NOW - 5 * 60),  # cooling, settling hv3+hv4
        ("old", "hv5", "hv6", NOW - 2 * 86400),  # outside every window
    ]
    b = evaluate(POLICY, NOW, history)
    assert b.domain_blocked("web1") == "vm_cooldown: web1 moved 12 min ago (window 1h)"
    assert b.domain_blocked("db1") == "vm_cooldown: db1 moved 5 min ago (window 1h)"
    assert b.domain_blocked("old") is None
    assert set(b.hosts) == {"hv3", "hv4"}
    assert b.host_blocked("hv3") == "host_settle: hv3 sent db1 5 min ago (window 10m)"
    assert b.host_blocked("hv4") == "host_settle: hv4 received db1 5 min ago (window 10m)"
    assert b.return_blocked("web1", "hv1") == "anti_flap: web1 left hv1 12 min ago (window 1d)"
    assert b.return_blocked("web1", "hv2") is None
    assert b.return_blocked("old", "hv5") is None
    assert b.recent_migrations == 2
    assert b.remaining_hourly == 1
    assert b.hourly_reason is None
    assert b.counts() == {"vm": 2, "host": 2, "anti_flap": 2, "rate": 0}


def test_windows_end_exactly_at_their_length():
    policy = Policy(vm_cooldown=600, host_settle=60, anti_flap=900)
    at_edge = evaluate(policy, NOW, [("a", "h1", "h2", NOW - 600)])
    assert at_edge.domain_blocked("a") is None
    assert at_edge.return_blocked("a", "h1") == "anti_flap: a left h1 10 min ago (window 15m)"
    assert evaluate(policy, NOW, [("a", "h1", "h2", NOW - 599)]).domain_blocked("a") is not None


def test_hourly_cap_exhausted():
    history = [(f"d{i}", "a", "b", NOW - 60 * i) for i in range(5)]
    b = evaluate(POLICY, NOW, history)
    assert b.remaining_hourly == 0
    assert b.hourly_reason == "max_migrations_per_hour: 5 migrations in the last hour"
    assert b.counts()["rate"] == 1


def test_domain_fields_give_the_same_barriers_as_history_and_are_not_counted_twice():
    domains = [
        DomainState("web1", "hv2", 1, 0.1, 1, last_migrated=NOW - 120, last_host="hv1"),
        DomainState("calm", "hv1", 1, 0.1, 1),
    ]
    from_fields = evaluate(POLICY, NOW, domains=domains)
    from_history = evaluate(POLICY, NOW, [("web1", "hv1", "hv2", NOW - 120)])
    both = evaluate(POLICY, NOW, [("web1", "hv1", "hv2", NOW - 120)], domains)
    assert from_fields == from_history == both
    assert both.recent_migrations == 1


def test_annotate_takes_the_newest_move_per_domain():
    snap = Snapshot(
        NOW,
        (HostState("hv1", 4, 1024, 0, 0), HostState("hv2", 4, 1024, 0, 0)),
        (
            DomainState("a", "hv2", 1, 0.1, 1),
            DomainState("b", "hv1", 1, 0.1, 1, last_migrated=NOW - 10, last_host="hv2"),
            DomainState("c", "hv1", 1, 0.1, 1),
        ),
    )
    history = [
        ("a", "hv9", "hv1", NOW - 500),
        ("a", "hv1", "hv2", NOW - 300),
        ("b", "hv3", "hv1", NOW - 900),
    ]
    out = annotate(snap, history)
    a, b, c = out.domains
    assert (a.last_migrated, a.last_host) == (NOW - 300, "hv1")
    assert (b.last_migrated, b.last_host) == (NOW - 10, "hv2")  # its own field is newer
    assert (c.last_migrated, c.last_host) == (None, None)
    assert out.hosts == snap.hosts


def test_ago_formats():
    assert [ago(s) for s in (-5, 0, 59, 60, 3599, 3600, 3660, 90000)] == [
        "0 s",
        "0 s",
        "59 s",
        "1 min",
        "59 min",
        "1 h",
        "1 h 1 min",
        "25 h",
    ]


def test_cooldown_doubles_with_each_move_in_the_window_up_to_the_cap():
    # KubeVirt-style: max(vm_cooldown, duration) x 2^(n-1), at most vm_cooldown_max.
    policy = Policy(vm_cooldown=900, vm_cooldown_max=6 * 3600, vm_cooldown_window=86400)
    assert [cooldown(policy, n) for n in (1, 2, 3, 5, 6, 9)] == [
        900,
        1800,
        3600,
        14400,
        21600,
        21600,
    ]
    # A migration that took 20 minutes protects the domain for at least that long.
    assert cooldown(policy, 1, duration=1200) == 1200
    assert cooldown(policy, 2, duration=1200) == 2400
    # A cap at or below the base keeps the old fixed cooldown.
    assert cooldown(Policy(vm_cooldown=3600, vm_cooldown_max=3600), 7) == 3600


def test_history_counts_repeated_moves_and_forgets_those_outside_the_window():
    policy = Policy(vm_cooldown=900, vm_cooldown_max=6 * 3600, vm_cooldown_window=86400)
    hour = 3600.0
    history = [
        ("web1", "hv1", "hv2", NOW - 30 * hour),  # outside the 24 h window: not counted
        ("web1", "hv2", "hv3", NOW - 5 * hour),
        ("web1", "hv3", "hv4", NOW - 3 * hour),
        ("web1", "hv4", "hv5", NOW - 40 * 60),  # third move in 24 h: 900 x 4 = 1 h
    ]
    b = evaluate(policy, NOW, history)
    assert (
        b.domain_blocked("web1") == "vm_cooldown: web1 moved 40 min ago (window 1h: move 3 in 1d)"
    )
    # A 5-tuple carries the migration's duration.
    slow = evaluate(policy, NOW, [("db1", "hv1", "hv2", NOW - 1500, 1800.0)])
    assert slow.domain_blocked("db1") == "vm_cooldown: db1 moved 25 min ago (window 30m)"
    assert evaluate(policy, NOW, [("db1", "hv1", "hv2", NOW - 1500)]).domain_blocked("db1") is None


def test_horizon_covers_every_window():
    policy = Policy(vm_cooldown_window=2 * 86400, anti_flap=86400)
    assert horizon(policy) == 2 * 86400
