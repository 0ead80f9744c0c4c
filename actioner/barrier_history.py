"""The journal's finished moves within the barriers' horizon, as the history every barrier check reads."""

from __future__ import annotations

from virtbalance import barriers
from virtbalance.actioner.journal import Journal
from virtbalance.contract import MigrationRecord
from virtbalance.policy import Policy


def barrier_history(
    journal: Journal, now: float, policy: Policy, *, skip_plan: int | None = None
) -> list[MigrationRecord]:
    """Moves that finished since ``now - horizon``; ``skip_plan``'s own moves left out.

    The worker plans from this history and the executor re-checks each step against it, so both
    must see the same moves: one function, one horizon (``barriers.horizon``).
    """
    since = now - barriers.horizon(policy)
    return [
        # completed_moves only returns finished rows; ``now`` guards the type, not a real case.
        MigrationRecord(
            r.domain, r.source, r.destination, r.finished if r.finished is not None else now
        )
        for r in journal.completed_moves(since)
        if r.plan_id != skip_plan
    ]
