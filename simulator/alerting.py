"""The alert's ``for`` clause as one pure function: a condition must hold this long before it fires."""

from __future__ import annotations


def sustained(
    pending_since: float | None, breached: bool, now: float, hold: float
) -> tuple[float | None, bool]:
    """Advance one evaluation of a Prometheus-style ``for``: return (new pending_since, firing).

    Like Prometheus, a breach starts a pending period at the first evaluation that sees it, any
    evaluation without the breach resets it, and the alert fires once ``now - pending_since >= hold``
    (so with ``for: 10m`` and 5-minute evaluations it fires at the third breached evaluation).
    """
    if not breached:
        return None, False
    since = now if pending_since is None else pending_since
    return since, now - since >= hold
