"""Why an overloaded host was not relieved: the typed causes the planner, the barriers and the simulator report."""

from __future__ import annotations

from enum import StrEnum


class Cause(StrEnum):
    """One reason a host stays above ``cpu_high``; the value is what JSON and tables show.

    The planner and the barriers name the cause themselves (``Unresolved.cause``,
    ``Placer.no_fit_cause``, ``Barriers.remaining_hourly``); nothing reads it back out of a reason text.
    """

    # The alert's `for` has not elapsed yet (Prometheus decides when).
    FOR_WINDOW = "for"
    # A migration relieving it is planned or still running.
    MIGRATING = "migrating"
    # The plan is waiting for Alertmanager to notify again (repeat interval), or for a running plan.
    WAITING = "waiting"
    SETTLE = "host_settle"
    COOLDOWN = "vm_cooldown"
    ANTI_FLAP = "anti_flap"
    HOURLY_CAP = "hourly_cap"
    PLAN_CAP = "plan_cap"
    PARTIAL_RULE = "partial_min_relief"
    NO_ROOM = "no_room"
    TOO_LARGE = "too_large"
    FROZEN = "frozen"
    PINNED = "pinned"
    # Load outside its domains is above cpu_high by itself.
    HOST_LOAD = "host_load"
    # Maintenance, anti-affinity, or nothing the planner could name.
    OTHER = "other"


# Report order: the alert first, then what the actioner is doing, then the barriers and the planner's rules.
CAUSES: tuple[Cause, ...] = tuple(Cause)
