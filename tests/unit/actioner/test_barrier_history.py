"""The one barrier history gives the worker and the executor what their two former copies gave."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from virtbalance import barriers
from virtbalance.actioner import journal as jr
from virtbalance.actioner.barrier_history import barrier_history
from virtbalance.actioner.journal import Journal
from virtbalance.policy import Policy

HOSTS = ("hv1", "hv2", "hv3")
STATES = (jr.DONE, jr.ROLLED_BACK, jr.SPLIT, jr.FAILED, jr.SKIPPED)
POLICIES = (
    Policy(),
    Policy(vm_cooldown=600, host_settle=60, anti_flap=900, max_migrations_per_hour=3),
    Policy(vm_cooldown=900, vm_cooldown_max=6 * 3600, vm_cooldown_window=2 * 86400),
)

moves = st.lists(
    st.tuples(
        st.integers(1, 3),  # plan
        st.sampled_from(("web1", "web2", "db1")),
        st.sampled_from(HOSTS),
        st.sampled_from(HOSTS),
        st.sampled_from(STATES),
        st.floats(0, 3 * 86400),  # how long before now it finished
    ),
    max_size=12,
)


def _worker_copy(journal: Journal, now: float, policy: Policy) -> list[tuple[str, str, str, float]]:
    """actioner/worker.py's history() before the move, verbatim."""
    horizon = now - barriers.horizon(policy)
    return [
        (r.domain, r.source, r.destination, r.finished if r.finished is not None else now)
        for r in journal.completed_moves(horizon)
    ]


def _executor_copy(
    journal: Journal, now: float, policy: Policy, plan_id: int
) -> list[tuple[str, str, str, float]]:
    """actioner/executor.py's _cooldown_reason history before the move, verbatim."""
    horizon = now - barriers.horizon(policy)
    return [
        (r.domain, r.source, r.destination, r.finished or now)
        for r in journal.completed_moves(horizon)
        if r.plan_id != plan_id
    ]


def _journal(rows: list[tuple[int, str, str, str, str, float]], now: float) -> Journal:
    clock = [now]
    journal = Journal(":memory:", clock=lambda: clock[0])
    for _ in range(3):
        journal.create_plan("manual", "relieve", [])
    for plan, domain, source, destination, state, ago in rows:
        clock[0] = now - ago
        mid = journal.add_migration(
            plan_id=plan,
            step=0,
            domain=domain,
            chunk=domain,
            source=source,
            destination=destination,
        )
        journal.set_migration_state(mid, state)
    clock[0] = now
    return journal


# Times from a real clock: the copies differed only for a finish at exactly 0.0 (the epoch), which
# ``r.finished or now`` read as "now"; no journal written by time.time() holds one.
@settings(max_examples=300, deadline=None)
@given(
    rows=moves,
    now=st.floats(10 * 86400, 2e9),
    policy=st.sampled_from(POLICIES),
    plan_id=st.integers(1, 3),
)
def test_both_former_copies_are_the_one_history(rows, now, policy, plan_id):
    journal = _journal(rows, now)
    try:
        worker = barrier_history(journal, now, policy)
        executor = barrier_history(journal, now, policy, skip_plan=plan_id)
        assert [tuple(r[:4]) for r in worker] == _worker_copy(journal, now, policy)
        assert [tuple(r[:4]) for r in executor] == _executor_copy(journal, now, policy, plan_id)
        assert all(r.duration == 0.0 for r in worker)
        # What the records decide: the same barriers as from the former plain tuples.
        assert barriers.evaluate(policy, now, worker) == barriers.evaluate(
            policy, now, _worker_copy(journal, now, policy)
        )
        assert barriers.evaluate(policy, now, executor) == barriers.evaluate(
            policy, now, _executor_copy(journal, now, policy, plan_id)
        )
    finally:
        journal.close()
