"""When the actioner plans for one alert: Alertmanager's notification cadence and the journal's dedupe."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """An Alertmanager route's timers, in seconds (deploy/alertmanager.yml, the actioner's routes)."""

    group_wait: float
    group_interval: float
    repeat_interval: float

    def repeat_after(self) -> float:
        """How long after a notification a still-firing group is sent again.

        Alertmanager flushes a group every ``group_interval`` and re-sends unchanged alerts at the first
        flush at least ``repeat_interval`` after the last send.
        """
        if self.group_interval <= 0:
            return self.repeat_interval
        return math.ceil(self.repeat_interval / self.group_interval) * self.group_interval


# HostsImbalanced's route in deploy/alertmanager.yml (tests/unit/simulator/test_notifications.py
# checks these against the file).
BALANCE_ROUTE = Route(group_wait=60.0, group_interval=300.0, repeat_interval=1800.0)


class Cadence:
    """The plans one alert series gets: ``virtbalance.actioner.journal.Journal.record_firing`` fed by one route.

    A firing (one ``startsAt``) is first notified ``group_wait`` after it starts, then every
    ``Route.repeat_after`` while it keeps firing. Its first notification gets a plan; a later one only
    if the last plan is over and ended ``settle`` (the policy's ``host_settle``, the actioner's
    ``replan_after``) or more before it. A resolved alert that fires again is a new ``startsAt``: its
    first notification gets a plan at once (taken as ``group_wait`` after it starts; Alertmanager sends
    it at the group's next flush instead if the resolved group still exists, within ``group_interval``).
    Notifications are judged at evaluations: ``due`` looks at those before ``until`` (the end of the
    simulator's step), since the last call; the replay does not call the plug-in while migrations run,
    so a resolve and re-fire inside that time reads as one firing.
    """

    def __init__(self, route: Route, settle: float) -> None:
        self.route = route
        self.settle = settle
        self.next_notice: float | None = None
        self.planned = False
        # When the last plan of this firing was over; None while it is queued or running.
        self.plan_end: float | None = None

    def due(self, now: float, firing: bool, until: float) -> bool:
        """One evaluation at ``now``: whether a notification up to ``until`` gets a plan."""
        if not firing:
            self.next_notice, self.planned, self.plan_end = None, False, None
            return False
        if self.next_notice is None:
            self.next_notice = now + self.route.group_wait
        plans = False
        while self.next_notice < until:
            notice = self.next_notice
            self.next_notice = notice + self.route.repeat_after()
            if plans:
                continue  # the plan just made is still queued: a re-send is dropped
            if not self.planned or (
                self.plan_end is not None and notice - self.plan_end >= self.settle
            ):
                plans = True
        if plans:
            self.planned, self.plan_end = True, None
        return plans

    def ended(self, when: float) -> None:
        """The last plan is over (its migrations finished, or it moved nothing) at ``when``."""
        if self.planned and self.plan_end is None:
            self.plan_end = when
