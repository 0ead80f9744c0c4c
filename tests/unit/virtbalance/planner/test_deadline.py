"""The planning budget: a deadline on an injected clock, and what a plan cut short by it says."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.unit.virtbalance.planner.test_properties import Ticks, check_invariants
from virtbalance.errors import ConfigError
from virtbalance.plan import Mode
from virtbalance.planner import exact, plan
from virtbalance.planner.deadline import Deadline
from virtbalance.planner.instances import generate, tight
from virtbalance.planner.relieve import Need, cheapest_cover
from virtbalance.policy import Policy
from virtbalance.snapshot import DomainState

LIFTED = Policy().replace(max_migrations=100_000, max_per_host=100_000)


def test_without_a_clock_it_never_expires():
    deadline = Deadline(None, 0.001)
    assert not deadline.expired("search")
    assert deadline.remaining() is None
    assert deadline.cut is None


def test_expires_at_start_plus_budget_and_stays_expired_without_reading_again():
    clock = Ticks()
    deadline = Deadline(clock, 3.0)  # reading 1: start
    assert not deadline.expired("search")  # 2
    assert not deadline.expired("search")  # 3
    assert deadline.expired("improvement")  # 4: 1 + 3
    assert deadline.expired("variants")
    assert clock.readings == 4
    assert deadline.cut is not None
    assert deadline.cut.stage == "improvement"  # the stage that saw it first
    assert deadline.cut.budget == 3.0
    assert deadline.cut.reason.startswith("plan_budget 3s ran out during the improvement step")


def test_a_part_ends_earlier_from_the_same_start():
    clock = Ticks()
    whole = Deadline(clock, 10.0)  # start 1, ends 11
    first = whole.part(0.4)  # ends 5
    assert first.remaining() == 3.0  # reading 2
    assert not first.expired("search")  # 3
    assert not first.expired("search")  # 4
    assert first.expired("search")  # 5
    assert whole.cut is None and not whole.expired("exact")
    assert first.cut is not None and first.cut.budget == 10.0


def test_a_step_takes_its_share_of_what_is_left_and_its_cut_is_reported_without_ending_the_rest():
    clock = Ticks()
    whole = Deadline(clock, 10.0)  # start 1, ends 11
    assert not whole.expired("search")  # 2
    step = whole.step(0.5)  # starts at 3, 8 left (reading 4): ends at 7
    assert not step.expired("improvement")  # 5
    assert not step.expired("improvement")  # 6
    assert step.expired("improvement")  # 7
    assert step.cut is not None and step.cut.budget == 10.0
    assert whole.cut is None and not whole.expired("search")  # 8
    assert whole.first_cut == step.cut
    assert Deadline(None, 1.0).step(0.5).remaining() is None


def test_stop_records_a_solver_that_hit_its_own_limit():
    deadline = Deadline(Ticks(), 5.0)
    deadline.stop("exact")
    assert deadline.cut is not None and deadline.cut.stage == "exact"
    assert deadline.expired("search")  # and it counts as expired for everyone after


def test_plan_budget_is_validated_with_the_policy():
    assert Policy().plan_budget == 2.0 and Policy().plan_solver == "auto"
    assert Policy.from_mapping({"plan_budget": "500ms"}).plan_budget == 0.5
    assert Policy.from_mapping({"plan_budget": 3}).to_mapping()["plan_budget"] == "3s"
    with pytest.raises(ConfigError) as info:
        Policy.from_mapping({"plan_budget": "0s", "plan_solver": "cp-sat"}, prefix="policy.")
    assert list(info.value.problems) == [
        "policy.plan_budget: must be a positive duration, got '0s'",
        "policy.plan_solver: must be one of auto, greedy, got 'cp-sat'",
    ]
    with pytest.raises(ConfigError, match="plan_budget: duration must not be negative"):
        Policy.from_mapping({"plan_budget": -1})


def unit(name: str, cpu: float, memory: int, members: int = 1):
    from virtbalance.planner.model import Unit  # noqa: PLC0415

    doms = tuple(DomainState(f"{name}{i}", "hv1", 1, cpu / members, memory) for i in range(members))
    return Unit("hv1", name, doms, cpu, memory * members, frozenset(), None, ())


def test_fewest_domains_first_is_one_search():
    # Least memory: the three 1 GiB domains (3 GiB, 3 migrations); fewest domains: the 4 GiB pair (2).
    units = [unit("a", 1.0, 1), unit("b", 1.0, 1), unit("c", 1.0, 1), unit("pair", 3.0, 2, 2)]
    need = Need(3.0, 0)
    calls = []

    def places(chosen):
        calls.append(len(chosen))
        return True

    cheap = cheapest_cover(units, need, 100_000, places)
    few = cheapest_cover(units, need, 100_000, places, fewest=True)
    assert sorted(u.id for u in cheap or []) == ["a", "b", "c"]
    assert [u.id for u in few or []] == ["pair"]
    # A cap of 100000 costs nothing more than a cap of 4: one search, a handful of placements.
    assert len(calls) <= 8


def test_an_expired_deadline_returns_the_first_set_found():
    units = [unit(f"u{i}", 0.1 * (i + 1), i + 1) for i in range(12)]
    need = Need(2.0, 0)
    expired = Deadline(Ticks(), 1.0)
    assert expired.expired("search")
    first = cheapest_cover(units, need, 100, lambda _: True, deadline=expired)
    best = cheapest_cover(units, need, 100, lambda _: True)
    assert first is not None and best is not None
    assert sum(u.cpu for u in first) >= 2.0 - 1e-9  # still covers the need
    assert sum(u.memory for u in best) <= sum(u.memory for u in first)


@pytest.mark.parametrize("budget", [1, 3, 10, 40])
def test_a_cut_plan_says_so(budget):
    snapshot = generate(21, tight(21))
    policy = LIFTED.replace(plan_solver="greedy", plan_budget=budget)
    cut = plan(snapshot, policy, clock=Ticks())
    assert cut.cut_short is not None
    assert cut.cut_short.budget == budget
    assert cut.to_dict()["cut_short"]["stage"] in {"search", "improvement", "variants"}
    assert "cut short: plan_budget" in cut.render()


def test_a_budget_that_does_not_run_out_changes_nothing():
    snapshot = generate(21, tight(21))
    policy = LIFTED.replace(plan_solver="greedy")
    still = plan(snapshot, policy, clock=lambda: 0.0)  # a clock that never moves
    assert still.cut_short is None
    assert still == plan(snapshot, policy)


def test_ortools_absent_means_the_greedy_plan(monkeypatch):
    # The instance of the CP-SAT test below: with OR-Tools the plans differ.
    snapshot = generate(4, tight(4))
    policy = LIFTED.replace(plan_budget=200)
    greedy = plan(snapshot, policy.replace(plan_solver="greedy"), clock=Ticks())
    monkeypatch.setattr(exact, "installed", lambda: False)
    assert plan(snapshot, policy, clock=Ticks()) == greedy


def test_on_the_real_clock_a_tiny_budget_cuts_the_plan_and_it_stays_valid():
    snapshot = generate(17, tight(17))
    result = plan(snapshot, LIFTED.replace(plan_budget=0.001), clock=time.monotonic)
    assert result.cut_short is not None
    assert result.migrations  # the first sets found still move
    check_invariants(snapshot, LIFTED, Mode("relieve"), frozenset(), result)


CP_SAT_TICK = 10.0


def test_cp_sat_resolves_what_the_cut_greedy_search_left_unresolved():
    # 11 hosts, 187 domains; 50 looks at the clock cut the greedy search early and it leaves a host
    # unresolved. CP-SAT, seeded with that plan, finds and proves the optimum in the time left: real
    # seconds, as many as the fake ones left. A look is 10 fake seconds, so that what is left (hundreds
    # of seconds) holds CP-SAT's proof on a loaded machine too; quiet, the proof takes about a second.
    assert exact.available()
    snapshot = generate(4, tight(4))
    budget = 50 * CP_SAT_TICK
    greedy = plan(
        snapshot,
        LIFTED.replace(plan_solver="greedy", plan_budget=budget),
        clock=Ticks(CP_SAT_TICK),
    )
    refined = plan(snapshot, LIFTED.replace(plan_budget=budget), clock=Ticks(CP_SAT_TICK))
    optimum = exact.solve_relieve(snapshot, LIFTED, time_limit=60)
    assert optimum.feasible and optimum.optimal
    assert greedy.unresolved and greedy.cut_short is not None
    assert greedy.cut_short.stage == "search"
    assert refined.unresolved == () and refined.cut_short is None  # proven: nothing was cut
    assert migrated_memory(snapshot, refined) == optimum.memory_bytes
    check_invariants(snapshot, LIFTED, Mode("relieve"), frozenset(), refined)


def migrated_memory(snapshot, result):
    memory = {d.name: d.memory_bytes for d in snapshot.domains}
    return sum(memory[m.domain] for m in result.migrations)


def _fresh_python(*lines: str) -> list[str]:
    """Run ``lines`` in a new interpreter (whether OR-Tools is imported is per process); what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize(
    ("lines", "printed"),
    [
        pytest.param(
            (
                "import sys",
                "from virtbalance.planner.refine import enabled",
                "from virtbalance.policy import Policy",
                "assert enabled(Policy())",
                "print('ortools' in sys.modules)",
            ),
            ["False"],
            id="deciding-whether-to-refine-does-not-import-it",
        ),
        pytest.param(
            (
                "import sys",
                "from virtbalance.planner import exact",
                "thread = exact.warm_up()",
                "assert thread is not None and thread.daemon",
                "thread.join()",
                "print('ortools.sat.python.cp_model' in sys.modules, exact.available())",
            ),
            ["True True"],
            id="warm-up-imports-it-in-the-background",
        ),
        # The import runs in the background: not waiting at all finds it unfinished (it takes a
        # second of CPU), waiting without a limit finds it done.
        pytest.param(
            ("from virtbalance.planner import exact", "print(exact.ready(0.0), exact.ready(None))"),
            ["False True"],
            id="a-plan-waits-for-it-no-longer-than-it-is-told",
        ),
    ],
)
def test_when_or_tools_is_imported(lines, printed):
    assert _fresh_python(*lines) == printed


def test_or_tools_is_imported_inside_the_plan_budget_and_only_when_cp_sat_runs():
    # The clock notes at each reading whether OR-Tools is loaded: the first reading (the budget's
    # start) must come before the import, so the import counts against plan_budget.
    greedy, auto = _fresh_python(
        "import sys",
        "from virtbalance.planner import plan",
        "from virtbalance.planner.instances import generate, tight",
        "from virtbalance.policy import Policy",
        "seen = []",
        "def clock():",
        "    seen.append('ortools.sat.python.cp_model' in sys.modules)",
        "    return float(len(seen))",
        "lifted = Policy().replace(max_migrations=100000, max_per_host=100000, plan_budget=400)",
        "plan(generate(4, tight(4)), lifted.replace(plan_solver='greedy'), clock=clock)",
        "print(any(seen))",
        "seen.clear()",
        "plan(generate(4, tight(4)), lifted, clock=clock)",
        "print(seen[0], seen[-1])",
    )
    assert greedy == "False"  # plan_solver greedy never imports it
    assert auto == "False True"
