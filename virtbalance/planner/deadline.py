"""The planning budget: a deadline on a clock the caller passes in (the planner reads no clock of its own)."""

from __future__ import annotations

from collections.abc import Callable

from virtbalance.plan import CutShort, CutStage

# Seconds, monotonic: ``time.monotonic`` in the CLI, the actioner and the simulator; a fake in tests.
Clock = Callable[[], float]

_WHAT = {
    "search": "the search for each host's cheapest set of chunks (later hosts took the first set found)",
    "improvement": "the improvement step (hosts that competed for destinations were not all re-solved)",
    "variants": "the other orders and packings (not tried)",
    "exact": "the CP-SAT search (its best plan is not proven optimal)",
    "moves": "the mode's moves (it stopped early)",
}


class Deadline:
    """Expires once the clock reaches its first reading plus ``budget``; without a clock, never.

    Once expired it stays so without reading the clock again, and remembers the stage that saw it
    first: that is what the plan reports as cut short.
    """

    def __init__(
        self, clock: Clock | None, budget: float, share: float = 1.0, start: float | None = None
    ) -> None:
        self._clock = clock
        self.budget = budget
        if start is None and clock is not None:
            start = clock()
        self._start = start
        self._at = None if start is None else start + share * budget
        self.cut: CutShort | None = None
        self._steps: list[Deadline] = []

    def part(self, share: float) -> Deadline:
        """A deadline at ``share`` of this one's budget from the same start (reported with the same budget)."""
        return Deadline(self._clock, self.budget, share, self._start)

    def step(self, share: float) -> Deadline:
        """A deadline for one step: ``share`` of what is left of this one, from now (without a clock,
        never). Its cut, if any, is reported with this one's (``first_cut``) without ending it: the
        steps after it still have the rest."""
        step = Deadline(self._clock, self.budget)
        left = self.remaining()
        if step._start is not None and left is not None:
            step._at = step._start + share * left
        self._steps.append(step)
        return step

    @property
    def first_cut(self) -> CutShort | None:
        """This deadline's cut, else the first of its steps' (``step``)."""
        if self.cut is not None:
            return self.cut
        return next((c for s in self._steps if (c := s.first_cut) is not None), None)

    @property
    def clocked(self) -> bool:
        return self._clock is not None

    def expired(self, stage: CutStage) -> bool:
        if self.cut is not None:
            return True
        if self._clock is None or self._at is None or self._clock() < self._at:
            return False
        self.cut = _cut(self.budget, stage)
        return True

    def remaining(self) -> float | None:
        """Seconds left (never negative); None without a clock."""
        if self._clock is None or self._at is None:
            return None
        return max(0.0, self._at - self._clock())

    def stop(self, stage: CutStage) -> None:
        """Record a cut that a solver holding its own time limit reported (CP-SAT stopped at it)."""
        if self.cut is None:
            self.cut = _cut(self.budget, stage)


def unbounded() -> Deadline:
    """A deadline that never expires (modes and helpers called without a budget)."""
    return Deadline(None, float("inf"))


def _cut(budget: float, stage: CutStage) -> CutShort:
    return CutShort(
        budget=budget,
        stage=stage,
        reason=f"plan_budget {budget:g}s ran out during {_WHAT[stage]}; "
        "this is the best plan found by then",
    )
