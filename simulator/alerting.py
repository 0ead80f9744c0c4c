"""The alerts' conditions as pure functions: the ``for`` clause, HostChronicallyHot's share of an hour, HostsImbalanced."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from typing import TypeVar

from virtbalance.policy import Policy

# A window of evaluations: the ratios themselves, or whether each was above a threshold.
Point = TypeVar("Point", bound=float)


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


def window_mean(window: deque[Point], value: Point, points: int) -> float:
    """Advance ``avg_over_time(signal[W])`` by one evaluation of ``value``; return the average.

    ``window`` holds the evaluations seen so far (at most ``points``, those within W, oldest first);
    this one's ``value`` is appended and the oldest beyond ``points`` dropped. As in Prometheus the
    average is over the points there are: a host an hour old is judged on its first hour.
    """
    window.append(value)
    while len(window) > points:
        window.popleft()
    return sum(window) / len(window)


def share_above(window: deque[bool], above: bool, points: int) -> float:
    """Advance ``avg_over_time((signal > bool threshold)[W:])`` by one evaluation; return the share.

    HostChronicallyHot (``virtbalance.mixin.alerts.hot_alert``) compares it with ``hot_share``.
    """
    return window_mean(window, above, points)


def chronically_hot(  # noqa: PLR0917 - the rule's inputs, one evaluation
    window: deque[bool],
    pending_since: float | None,
    ratio: float,
    now: float,
    policy: Policy,
    points: int,
) -> tuple[float | None, bool]:
    """One evaluation of HostChronicallyHot for a host at CPU ``ratio``: (new pending_since, firing).

    The share of the last ``points`` evaluations above ``cpu_high`` above ``hot_share``, and the ratio
    above ``cpu_target`` now, held for ``hot_for`` (``sustained``), as the generated rule says.
    """
    share = share_above(window, ratio > policy.cpu_high, points)
    breached = share > policy.hot_share and ratio > policy.cpu_target
    return sustained(pending_since, breached, now, policy.hot_for)


def imbalanced(
    pending_since: float | None, ratios: Collection[float], now: float, policy: Policy
) -> tuple[float | None, bool]:
    """One evaluation of HostsImbalanced over the awake hosts' CPU ``ratios``: (new pending_since, firing).

    ``max - min`` above ``balance_spread``, held for ``balance_for`` (``sustained``), as the generated
    rule (``virtbalance.mixin.alerts.imbalanced_alert``) says: one series for the cluster. No host, no
    series (no breach); one host has a spread of 0. The ratios are each host's average over
    ``balance_window`` (``window_mean``, ``virtbalance.forecast.window_points``), or its last sample at 0.
    """
    breached = (
        bool(ratios)
        and max(ratios) - min(ratios) > policy.balance_spread
        and max(ratios) > policy.cpu_target
    )
    return sustained(pending_since, breached, now, policy.balance_for)
