"""The chunk-aware planner: a pure function from a cluster snapshot and a policy to a plan."""

from __future__ import annotations

from dataclasses import replace

from virtbalance.barriers import Barriers
from virtbalance.errors import ValidationError
from virtbalance.forecast import Forecast
from virtbalance.plan import CutShort, Mode, Plan
from virtbalance.planner.balance import balance
from virtbalance.planner.consolidate import consolidate
from virtbalance.planner.deadline import Clock, Deadline
from virtbalance.planner.drain import drain
from virtbalance.planner.model import Inputs
from virtbalance.planner.outcome import Outcome
from virtbalance.planner.placement import Placer
from virtbalance.planner.refine import enabled, refine_relieve, small_enough
from virtbalance.planner.relieve import relieve
from virtbalance.planner.wake import fewest_woken
from virtbalance.policy import Policy
from virtbalance.snapshot import Snapshot

__all__ = ["plan"]

# Variants (pack tight, reverse order, fewest domains first), tried in turn only while hosts miss their
# cheapest set; each takes the hosts that missed so far first. On big clusters with many sources, or
# when many hosts miss, only the first runs (its improvement step still does).
VARIANTS = (
    (False, False, False),
    (False, False, False),
    (False, False, True),
    (True, False, False),
    (False, True, False),
    (True, True, False),
)
MAX_CONTESTED = 64
# Shares of the budget the greedy search may use when CP-SAT refines its plan (CP-SAT has the rest):
# the first pass with its improvement step may take up to FIRST_SHARE (a complete greedy plan is CP-SAT's
# start, and on a loaded machine a cut one is a poor start that CP-SAT seldom mends in what is left);
# the other variants run only until GREEDY_SHARE.
FIRST_SHARE = 0.6
GREEDY_SHARE = 0.25
# More hosts than this missing their cheapest set means the plan's budget is what limits it (most hosts
# cannot be relieved in this plan whatever the order): other orders would cost time for nothing.
MAX_MISSED = 8


def plan(
    snapshot: Snapshot,
    policy: Policy,
    mode: Mode = Mode("relieve"),  # noqa: B008 - Mode is frozen: a shared default is safe
    *,
    relieve_hosts: frozenset[str] | None = None,
    forbidden: frozenset[tuple[str, str]] = frozenset(),
    max_migrations: int | None = None,
    clock: Clock | None = None,
    barriers: Barriers | None = None,
    forecast: Forecast | None = None,
) -> Plan:
    """Decide which chunks move where. No I/O, and no clock but ``clock``: the same input gives the
    same plan unless the budget cuts it.

    ``relieve_hosts`` limits relief to these hosts (None: every host above cpu_high or memory_high);
    ``forbidden`` holds (domain, destination) pairs that may not happen, ``"*"`` meaning anywhere;
    ``max_migrations`` lowers the policy's per-plan cap (what the hourly rate cap leaves);
    ``clock`` (monotonic seconds, e.g. ``time.monotonic``) times the policy's ``plan_budget``: once it
    has passed, the best plan found so far is returned, its ``cut_short`` saying where the search was.
    Without a clock the searches are bounded by their own limits only.
    Emptied hosts receive nothing, except in relief when it needs their room: then the fewest are
    woken and each move onto one says "waking HOST" in its reason (virtbalance.planner.wake).
    ``barriers``: those evaluated from the migration history at the snapshot's time (None: from the
    domains' own last-move fields, which cannot tell a domain's repeated moves); ``forecast``: recent
    peaks to judge destinations on (None: the snapshot's samples, against cpu_target).
    """
    names = {h.name for h in snapshot.hosts}
    if mode.kind == "drain" and mode.host not in names:
        raise ValidationError("mode", [f"drain: unknown host {mode.host!r} (not in the snapshot)"])
    deadline = Deadline(clock, policy.plan_budget)
    solver = mode.kind == "relieve" and enabled(policy)
    inputs = Inputs(
        snapshot,
        policy,
        relieve_hosts=relieve_hosts,
        forbidden=forbidden,
        max_migrations=max_migrations,
        barriers=barriers,
        forecast=forecast,
    )
    if mode.kind == "relieve":

        def relief(view: Snapshot) -> Plan:
            outcome, cut = _relieve(
                replace(inputs, snapshot=view), deadline=deadline, solver=solver
            )
            return replace(outcome.plan(mode), cut_short=cut)

        # Emptied hosts (snapshot.hosts[].emptied) stay asleep unless relief needs their room.
        relieved, _ = fewest_woken(snapshot, policy, relief, lambda: deadline.expired("variants"))
        return relieved
    model = inputs.model()
    outcome = Outcome(model, Placer(model), deadline=deadline)
    if mode.kind == "drain":
        assert mode.host is not None  # Mode guarantees it
        drain(outcome, mode.host)
    elif mode.kind == "balance":
        balance(outcome)
    else:
        consolidate(outcome)
    return outcome.plan(mode)


def _relieve(
    inputs: Inputs, *, deadline: Deadline, solver: bool
) -> tuple[Outcome, CutShort | None]:
    """Least-loaded destinations first. When hosts competed (for destinations or the plan's budget) and
    some missed their cheapest set, also try: the hosts that missed first, fewest domains first (when the
    budget is what they compete for), tight packing, the reverse order; keep the cheapest plan (ties go
    to the earlier variant). Then CP-SAT, seeded with that plan, where OR-Tools is installed: its plan
    is kept only if cheaper (the first pass may use up to FIRST_SHARE of the budget, the other
    variants stop at GREEDY_SHARE). Returns the plan and, unless it is proven optimal, what the
    budget cut."""
    solver = solver and small_enough(inputs)
    first = deadline.part(FIRST_SHARE) if solver else deadline
    greedy = deadline.part(GREEDY_SHARE) if solver else deadline
    best: Outcome | None = None
    missed_first: tuple[str, ...] = ()
    slim_pass = True
    for number, (pack, reverse, frugal) in enumerate(VARIANTS):
        if number > 0 and greedy.expired("variants"):
            break
        model = inputs.model()
        outcome = Outcome(
            model,
            Placer(model, pack=pack),
            frugal=frugal,
            deadline=first if number == 0 else greedy,
        )
        missed, slimmed = relieve(
            outcome, inputs.relieve_hosts, reverse=reverse, first=missed_first, slim_pass=slim_pass
        )
        if best is None or outcome.cost() < best.cost():
            best = outcome
        sources = sum(1 for h in model.hosts.values() if h.is_source)
        if not missed or sources > MAX_CONTESTED or len(missed) > MAX_MISSED or slimmed:
            # After a slim pass that relieved every host: the other variants differ only in the
            # greedy pass before the repair steps, which is what left a host without a set here.
            break
        # A slim pass tried in vain is not tried again: it places every set anew, from the same
        # cluster, and a variant changes only which host it takes first.
        slim_pass = slim_pass and slimmed is None
        missed_first = tuple(dict.fromkeys((*missed_first, *missed)))
    assert best is not None
    if not solver:
        return best, deadline.first_cut
    refined, proven = refine_relieve(inputs, best, deadline)
    if refined is not None and refined.cost() < best.cost():
        best = refined
    return best, None if proven else deadline.first_cut or first.first_cut or greedy.first_cut
