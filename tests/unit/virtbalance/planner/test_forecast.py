"""Relieve with a short forecast (recent peaks), and the typed causes of what stays unresolved."""

from __future__ import annotations

from virtbalance.causes import Cause
from virtbalance.forecast import Forecast
from virtbalance.plan import Mode
from virtbalance.planner import plan
from virtbalance.policy import Policy
from virtbalance.snapshot import DomainState, HostState, Snapshot

GIB = 2**30
POLICY = Policy()  # cpu_high 75%, cpu_target 65%


def cluster(loads: dict[str, dict[str, float]], heavy: frozenset[str] = frozenset()) -> Snapshot:
    """Hosts of 10 CPUs and 64 GiB; each domain 1 GiB (``heavy``: 8 GiB) with the given cores."""

    def size(name: str) -> int:
        return (8 if name in heavy else 1) * GIB

    hosts = tuple(
        HostState(h, 10.0, 64 * GIB, sum(d.values()), sum(size(n) for n in d))
        for h, d in loads.items()
    )
    domains = tuple(
        DomainState(name, h, 4, cores, size(name))
        for h, d in loads.items()
        for name, cores in d.items()
    )
    return Snapshot(time=1000.0, hosts=hosts, domains=domains)


def moves(result) -> list[tuple[str, str]]:
    return [(m.domain, m.destination) for m in result.migrations]


def test_a_steady_destination_above_cpu_target_may_take_load_a_bursty_one_below_it_may_not():
    snapshot = cluster(
        {"hv0": {"big": 2.0, "rest": 6.0}, "steady": {"s": 6.8}, "bursty": {"b": 4.0}}
    )
    # On the samples: steady (68%) is above cpu_target, bursty (40% + 20% = 60%) takes big.
    assert moves(plan(snapshot, POLICY, Mode("relieve"))) == [("big", "bursty")]
    # Recent peaks: steady never left 68%, bursty reached 70% an hour ago (+ big's 2.0 peak = 90%).
    forecast = Forecast(
        domains={"big": 2.0, "rest": 6.0, "s": 6.8, "b": 7.0},
        hosts={"hv0": 8.0, "steady": 6.8, "bursty": 7.0},
    )
    result = plan(snapshot, POLICY, Mode("relieve"), forecast=forecast)
    # steady: 6.8 + 2.0 peak = 88% > cpu_high; bursty 7.0 + 2.0 = 90%: neither; unresolved, no room.
    assert moves(result) == []
    assert [(u.host, u.cause) for u in result.unresolved] == [("hv0", Cause.NO_ROOM)]
    calm = Forecast(
        domains={"big": 0.6, "rest": 6.0, "s": 6.8, "b": 7.0},
        hosts={"hv0": 6.6, "steady": 6.8, "bursty": 7.0},
    )
    # big at 2.0 now but 0.6 at its recent peak?  The forecast never goes below the sample.
    assert calm.domain("big", 2.0) == 2.0


def test_with_a_forecast_the_source_moves_only_what_brings_its_peak_to_cpu_high():
    # hv0 at 80% (peak 80%): on the samples it must reach 65% (1.5 cores: a and b); with the forecast
    # it is enough to bring the peak to 75% (0.5 cores: a alone).
    snapshot = cluster(
        {"hv0": {"a": 1.0, "b": 1.0, "rest": 6.0}, "hv1": {"x": 1.0}}, heavy=frozenset({"rest"})
    )
    assert sorted(moves(plan(snapshot, POLICY, Mode("relieve")))) == [("a", "hv1"), ("b", "hv1")]
    forecast = Forecast(
        domains={"a": 1.0, "b": 1.0, "rest": 6.0, "x": 1.0}, hosts={"hv0": 8.0, "hv1": 1.0}
    )
    result = plan(snapshot, POLICY, Mode("relieve"), forecast=forecast)
    assert moves(result) == [("a", "hv1")]
    assert result.unresolved == ()


def test_unresolved_causes_are_typed():
    # A chunk of 7.8 cores is above cpu_target on any 10-CPU host, even an empty one.
    big = Snapshot(
        time=0.0,
        hosts=(
            HostState("hv0", 10.0, 64 * GIB, 8.0, 3 * GIB),
            HostState("hv1", 10.0, 64 * GIB, 0.0, 0),
        ),
        domains=(
            DomainState("c1", "hv0", 4, 3.9, GIB, private_networks=("lan",)),
            DomainState("c2", "hv0", 4, 3.9, GIB, private_networks=("lan",)),
            DomainState("tiny", "hv0", 1, 0.2, GIB),
        ),
    )
    (entry,) = plan(big, POLICY, Mode("relieve")).unresolved
    assert entry.cause is Cause.TOO_LARGE
    assert entry.to_dict()["cause"] == "too_large"
    # Frozen: the only worthwhile domain is silenced.
    snapshot = cluster({"hv0": {"f": 3.0, "rest": 5.0}, "hv1": {}})
    rest_frozen = frozenset({("f", "*"), ("rest", "*")})
    (entry,) = plan(snapshot, POLICY, Mode("relieve"), forbidden=rest_frozen).unresolved
    assert entry.cause is Cause.FROZEN
    # Anti-flap: f (the hungriest) left hv1 an hour ago, and hv1 is the only other host.
    snapshot = cluster({"hv0": {"f": 5.0, "rest": 3.0}, "hv1": {}})
    annotated = snapshot.with_domains(
        tuple(
            DomainState(
                d.name,
                d.host,
                d.vcpus,
                d.cpu_used,
                d.memory_bytes,
                last_migrated=-3600.0,
                last_host="hv1",
            )
            if d.name == "f"
            else d
            for d in snapshot.domains
        )
    )
    relaxed = POLICY.replace(vm_cooldown="30m", vm_cooldown_max="30m")
    result = plan(annotated, relaxed, Mode("relieve"), forbidden=frozenset({("rest", "*")}))
    assert [u.cause for u in result.unresolved] == [Cause.ANTI_FLAP]


def test_a_host_an_alert_names_is_relieved_to_cpu_target_although_below_cpu_high():
    # hv0 at 70%: not overloaded on its sample, but HostChronicallyHot (or a sustained overload that
    # dipped since) names it. Unnamed, relieve leaves it; named, 0.5 cores go: "small" (1 core).
    snapshot = cluster({"hv0": {"small": 1.0, "rest": 6.0}, "idle": {"i": 1.0}})
    assert moves(plan(snapshot, POLICY, Mode("relieve"))) == []
    named = plan(snapshot, POLICY, Mode("relieve"), relieve_hosts=frozenset({"hv0"}))
    assert moves(named) == [("small", "idle")]
    assert named.unresolved == ()
    # At or below cpu_target there is nothing to do, named or not.
    calm = cluster({"hv0": {"small": 0.5, "rest": 6.0}, "idle": {"i": 1.0}})
    assert plan(calm, POLICY, Mode("relieve"), relieve_hosts=frozenset({"hv0"})).empty


def test_a_named_host_below_cpu_high_goes_to_cpu_target_on_its_sample_not_its_peak():
    # hv0 at 72%, its recent peak 80%. An overloaded host would stop once its peak is at cpu_high
    # (0.5 cores: "half"); a named host below cpu_high goes to cpu_target: 0.7 cores ("one", 1.0).
    heavy = frozenset({"rest"})  # 8 GiB: never the cheapest set
    snapshot = cluster(
        {"hv0": {"half": 0.5, "one": 1.0, "rest": 5.7}, "idle": {"i": 1.0}}, heavy=heavy
    )
    forecast = Forecast(
        domains={"half": 0.5, "one": 1.0, "rest": 6.5, "i": 1.0},
        hosts={"hv0": 8.0, "idle": 1.0},
    )
    result = plan(
        snapshot, POLICY, Mode("relieve"), relieve_hosts=frozenset({"hv0"}), forecast=forecast
    )
    assert moves(result) == [("one", "idle")]
    # Above cpu_high the forecast rule is unchanged: hv0 at 79%, its peak the same; its peak at
    # cpu_high needs 0.4 cores (one 1 GiB domain), its sample at cpu_target 1.4 (both): the smaller move.
    hot = cluster({"hv0": {"half": 0.5, "one": 1.0, "rest": 6.4}, "idle": {"i": 1.0}}, heavy=heavy)
    peaks = Forecast(
        domains={"half": 0.5, "one": 1.0, "rest": 6.4, "i": 1.0},
        hosts={"hv0": 7.9, "idle": 1.0},
    )
    result = plan(hot, POLICY, Mode("relieve"), relieve_hosts=frozenset({"hv0"}), forecast=peaks)
    assert len(result.migrations) == 1
    assert result.migrations[0].domain in {"half", "one"}


def test_balance_spreads_the_recent_averages_a_burst_that_is_ending_evens_nothing_out():
    # Samples: hv0 80% (a burst "b" of 6 cores on a steady 2), hv1 20%: a 60% spread, and balance
    # moves s (hv0 60%, hv1 40%: the busiest at cpu_target or below). The averages: b has used 1 core
    # on average, so hv0 is at 30%, 10 points from hv1: balanced.
    snapshot = cluster({"hv0": {"b": 6.0, "s": 2.0}, "hv1": {"t": 2.0}})
    peaks = {"b": 6.0, "s": 2.0, "t": 2.0}
    hosts = {"hv0": 8.0, "hv1": 2.0}
    assert moves(plan(snapshot, POLICY, Mode("balance"))) == [("s", "hv1")]
    averaged = Forecast(peaks, hosts, averages={"b": 1.0, "s": 2.0, "t": 2.0})
    result = plan(snapshot, POLICY, Mode("balance"), forecast=averaged)
    assert moves(result) == [] and result.unresolved == ()
    # The other way: the samples are level (40% and 40%), the averages are not (hv0's domains have
    # used 7 cores on average, 70%, hv1's 3, 30%): balance moves on the averages, s (2 cores on
    # average), which leaves both hosts at 50%.
    level = cluster({"hv0": {"b": 2.0, "s": 2.0}, "hv1": {"t": 4.0}})
    uneven = Forecast(
        {"b": 6.0, "s": 2.0, "t": 4.0}, {"hv0": 8.0, "hv1": 4.0}, {"b": 5.0, "s": 2.0, "t": 3.0}
    )
    assert moves(plan(level, POLICY, Mode("balance"))) == []
    result = plan(level, POLICY, Mode("balance"), forecast=uneven)
    assert moves(result) == [("s", "hv1")]
    assert result.migrations[0].reason.startswith("balance: cpu spread 40.0% -> 0.0%")


def test_balance_moves_only_from_a_host_its_domains_at_their_peaks_would_overload():
    # hv0 at 70% on its sample and on average, hv1 at 30%: a 40% spread, the busiest above cpu_target.
    snapshot = cluster({"hv0": {"a": 3.5, "b": 3.5}, "hv1": {"c": 3.0}})
    averages = {"a": 3.5, "b": 3.5, "c": 3.0}
    # Steady: each domain's recent peak is its average, so no coincidence of bursts takes hv0 above
    # cpu_high (7 cores of 10, 70%) and a lasting rise is relief's: no headroom to buy, no move.
    steady = Forecast(averages, {"hv0": 7.0, "hv1": 3.0}, averages)
    result = plan(snapshot, POLICY, Mode("balance"), forecast=steady)
    assert moves(result) == [] and result.unresolved == ()
    # Bursty: "a" has peaked at 5 cores while "b" was lower (hv0's own peak still 7): at their peaks
    # together 8.5 cores, 85%. Balance moves b (a's peak does not fit under hv1's cpu_high), which
    # leaves hv1 the busiest at cpu_target: done.
    bursty = Forecast(averages | {"a": 5.0}, {"hv0": 7.0, "hv1": 3.0}, averages)
    result = plan(snapshot, POLICY, Mode("balance"), forecast=bursty)
    assert moves(result) == [("b", "hv1")] and result.unresolved == ()
    # Without a forecast there are no peaks to judge: the last sample moves one of the two.
    assert len(plan(snapshot, POLICY, Mode("balance")).migrations) == 1


def test_a_balance_move_must_shed_its_share_of_the_way_to_the_stop():
    # hv0: "big" (6.9 cores, peaks at 8: it fits nowhere under cpu_high) and "tiny"; hv1 at 30%. The
    # stop nearer than balance_spread is hv0's average down to cpu_target; one plan has max_migrations
    # (8) moves to get there, so each must shed at least an eighth of the way.
    def attempt(tiny: float):
        snapshot = cluster({"hv0": {"big": 6.9, "tiny": tiny}, "hv1": {"c": 3.0}})
        cores = {"big": 6.9, "tiny": tiny, "c": 3.0}
        forecast = Forecast(cores | {"big": 8.0}, {"hv0": 6.9 + tiny, "hv1": 3.0}, cores)
        return plan(snapshot, POLICY, Mode("balance"), forecast=forecast)

    # 0.1 core: hv0 at 70%, the bar (70% - 65%) / 8 = 0.625% of a host; tiny sheds 1%: it moves.
    shed = attempt(0.1)
    assert moves(shed) == [("tiny", "hv1")]
    # 0.05 core: hv0 at 69.5%, the bar 0.5625%; tiny sheds 0.5%: a migration that cannot end the
    # condition within a plan, so it is not made, and the plan says why.
    kept = attempt(0.05)
    assert moves(kept) == []
    assert [u.host for u in kept.unresolved] == ["hv0"]
    assert "narrows it by enough" in kept.unresolved[0].reason


def test_a_source_stops_once_the_domains_it_keeps_could_no_longer_overload_it():
    # hv0: "p" (1 core on average, peaked at 2) and six steady 1-core domains: 70%, 80% at their peaks
    # together. hv1: seven steady 1-core domains, 70% either way: never a source. hv2 at 20%.
    loads = {
        "hv0": {"p": 1.0} | {f"s{i}": 1.0 for i in range(6)},
        "hv1": {f"q{i}": 1.0 for i in range(7)},
        "hv2": {"r0": 1.0, "r1": 1.0},
    }
    snapshot = cluster(loads, heavy=frozenset({"p"}))
    cores = {name: 1.0 for domains in loads.values() for name in domains}
    forecast = Forecast(cores | {"p": 2.0}, {"hv0": 7.0, "hv1": 7.0, "hv2": 2.0}, cores)
    result = plan(snapshot, POLICY, Mode("balance"), forecast=forecast)
    # s0 (the least memory) to hv2 leaves hv0's domains at 70% at their peaks: hv0 is no longer a
    # source, though hv1 keeps the spread at 40% and itself above cpu_target; one move, not two.
    assert moves(result) == [("s0", "hv2")]
    assert result.unresolved == ()


def test_balance_goes_on_below_cpu_target_from_a_host_whose_peak_is_above_cpu_high():
    # hv0 at 60% on average (at cpu_target or below), but "a" has peaked at 4 cores, and hv0 at 8:
    # 80%, a burst above cpu_high shorter than the overload alert's `for`. hv1 and hv2 at 5%.
    loads = {"hv0": {"a": 2.0, "b": 2.0, "c": 2.0}, "hv1": {"d": 0.5}, "hv2": {"e": 0.5}}
    snapshot = cluster(loads, heavy=frozenset({"b", "c"}))
    cores = {name: cpu for domains in loads.values() for name, cpu in domains.items()}
    forecast = Forecast(cores | {"a": 4.0}, {"hv0": 8.0, "hv1": 0.5, "hv2": 0.5}, cores)
    result = plan(snapshot, POLICY, Mode("balance"), forecast=forecast)
    # a (the least memory) to hv1 brings hv0's peak to 40%; the spread stays at 35%, above
    # balance_spread, but no host's peak is above cpu_high any more: one move, not more.
    assert moves(result) == [("a", "hv1")]
    assert result.unresolved == ()
    # Without a forecast there is no peak to judge: the busiest sample at 60% ends balance.
    assert moves(plan(snapshot, POLICY, Mode("balance"))) == []


def test_balance_moves_nothing_off_a_host_below_cpu_target_whose_peak_stays_below_cpu_high():
    # hv0 at 72% on average cannot shed: its one domain (7.2 cores) takes any host above cpu_high.
    # hv1 at 62%: p and q have each peaked at 4 cores, but never together (hv1's peak 64%).
    # Moving p to hv2 would narrow the spread (72% - 5% to 72% - 31%) only by raising its low end.
    loads = {"hv0": {"x": 7.2}, "hv1": {"p": 3.1, "q": 3.1}, "hv2": {"r": 0.5}}
    snapshot = cluster(loads)
    cores = {name: cpu for domains in loads.values() for name, cpu in domains.items()}
    peaks = cores | {"p": 4.0, "q": 4.0}
    calm = Forecast(peaks, {"hv0": 7.2, "hv1": 6.4, "hv2": 0.5}, cores)
    result = plan(snapshot, POLICY, Mode("balance"), forecast=calm)
    assert moves(result) == []
    # Nothing to report either: no host is at risk that a move could help (hv0's peak is 72%).
    assert result.unresolved == ()
    # hv1 at risk (its peak 80%, a burst above cpu_high): it sheds p, the least memory first.
    bursty = Forecast(peaks, {"hv0": 7.2, "hv1": 8.0, "hv2": 0.5}, cores)
    assert moves(plan(snapshot, POLICY, Mode("balance"), forecast=bursty)) == [("p", "hv2")]
