"""Why each overload lasted: per host and step the cause the policy named, stretches, and totals per cause.

The engine records one cause per host-step above ``cpu_high``: ``migrating`` when a move out of the host
was decided at that step or is still running, ``for`` while the alert is pending, otherwise what the
policy plug-in reports (the virtbalance plug-in takes it from the real barriers and planner:
``Barriers.remaining_hourly``, ``Unresolved.cause``). A stretch is a run of overloaded steps of one host;
it is *relieved* when it ends right after a move out of the host, *unrelieved* when the load fell by
itself or the trace ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from virtbalance.causes import CAUSES, Cause

NOT_OVERLOADED = 255
_INDEX = {cause: index for index, cause in enumerate(CAUSES)}


@dataclass(frozen=True)
class Stretch:
    """One run of overloaded steps of one host: ``first`` to ``last`` inclusive."""

    host: str
    first: int
    last: int
    relieved: bool
    steps_by_cause: dict[Cause, int]

    @property
    def steps(self) -> int:
        return self.last - self.first + 1

    @property
    def main_cause(self) -> Cause:
        """The cause that held it longest, not counting the moves that ended it."""
        held = {c: n for c, n in self.steps_by_cause.items() if c is not Cause.MIGRATING}
        pool = held or self.steps_by_cause
        return min(pool, key=lambda c: (-pool[c], _INDEX[c]))


@dataclass
class Diagnosis:
    """One cause per overloaded host-step, per host (``NOT_OVERLOADED`` elsewhere)."""

    hosts: tuple[str, ...]
    steps: int
    step_seconds: float
    causes: dict[str, bytearray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.causes:
            self.causes = {h: bytearray([NOT_OVERLOADED]) * self.steps for h in self.hosts}

    def record(self, host: str, step: int, cause: Cause) -> None:
        self.causes[host][step] = _INDEX[cause]

    def cause_at(self, host: str, step: int) -> Cause | None:
        value = self.causes[host][step]
        return None if value == NOT_OVERLOADED else CAUSES[value]

    def stretches(self) -> list[Stretch]:
        found: list[Stretch] = []
        for host in self.hosts:
            row = self.causes[host]
            step = 0
            while step < self.steps:
                if row[step] == NOT_OVERLOADED:
                    step += 1
                    continue
                first = step
                counts: dict[Cause, int] = {}
                while step < self.steps and row[step] != NOT_OVERLOADED:
                    cause = CAUSES[row[step]]
                    counts[cause] = counts.get(cause, 0) + 1
                    step += 1
                last = step - 1
                relieved = CAUSES[row[last]] is Cause.MIGRATING and step < self.steps
                found.append(Stretch(host, first, last, relieved, counts))
        return found

    def totals(self) -> dict[Cause, tuple[int, int]]:
        """Per cause: (host-steps, stretches it held at least one step), in report order, non-zero only."""
        steps: dict[Cause, int] = {}
        stretches: dict[Cause, int] = {}
        for stretch in self.stretches():
            for cause, count in stretch.steps_by_cause.items():
                steps[cause] = steps.get(cause, 0) + count
                stretches[cause] = stretches.get(cause, 0) + 1
        return {c: (steps[c], stretches[c]) for c in CAUSES if c in steps}

    def to_dict(self) -> dict[str, Any]:
        hour = 3600.0 / self.step_seconds
        stretches = self.stretches()
        unrelieved = [s for s in stretches if not s.relieved]
        longest = max(unrelieved, key=lambda s: (s.steps, s.host), default=None)
        return {
            "causes": {
                str(c): {"host_hours": round(n / hour, 3), "host_steps": n, "stretches": k}
                for c, (n, k) in self.totals().items()
            },
            "stretches": len(stretches),
            "relieved": len(stretches) - len(unrelieved),
            "unrelieved": len(unrelieved),
            "longest_unrelieved": None
            if longest is None
            else {
                "host": longest.host,
                "first_step": longest.first,
                "hours": round(longest.steps / hour, 3),
                "main_cause": str(longest.main_cause),
            },
        }
