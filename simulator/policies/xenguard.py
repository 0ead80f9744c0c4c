"""XenGuard (Mevåg 2007): a host above ``high`` CPU evacuates its chunks to hosts below a rising low mark.

From the thesis (sections 5.2 and 5.3): a host whose CPU utilisation is above
``host_cpu_utilization_high`` (0.7) evacuates every VM it can, chunk by chunk. Potential targets are
the other hosts below ``host_cpu_utilization_low`` (0.1); the first of them with enough free memory
for the whole chunk takes it. A chunk that finds no target waits for the next pass, in which the low
mark is raised by 0.1. XenGuard checks no history: it has no cooldowns.

Where the thesis is silent this plug-in chooses, and says so: targets are tried least loaded first
(the thesis lists node3 at 0.4% before node1 at 30%), chunks smallest memory first (its run moved
the 193 MB chunk before the 224 MB one), and the low mark stops rising at ``low_cap``, so a chunk is
never sent to a host XenGuard itself would call overloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from virtbalance.simulator.policies.base import ParamsPlugin
from virtbalance.simulator.policies.baseline import Tally
from virtbalance.simulator.state import ClusterView, Move

# Low marks are compared after rounding so that 0.1 + 0.1 + 0.1 is 0.3, as in the thesis's log.
_MARK_DIGITS = 9


@dataclass(frozen=True)
class XenGuardParams:
    """``high``/``low`` are the thesis's host_cpu_utilization_high/low; ``low_step`` its 10% raise."""

    high: float = 0.7
    low: float = 0.1
    low_step: float = 0.1
    low_cap: float = 0.7


@dataclass(frozen=True)
class ChunkMove:
    """One decision of a pass: the chunk's members, where they go and the low mark that allowed it."""

    members: tuple[str, ...]
    source: str
    destination: str
    low_mark: float


class XenGuardPolicy(ParamsPlugin[XenGuardParams]):
    """Evacuate overloaded hosts chunk by chunk to the first low-CPU host with memory."""

    name: ClassVar[str] = "xenguard"
    chunk_aware: ClassVar[bool] = True
    params_type = XenGuardParams

    def decide(self, view: ClusterView) -> Sequence[Move]:
        return [
            Move(member, decision.destination, f"xenguard low<{decision.low_mark:g}")
            for decision in self.evacuate(view)
            for member in decision.members
        ]

    def evacuate(self, view: ClusterView) -> list[ChunkMove]:
        """Every chunk move of this run, in order, with the low mark of the pass that placed it."""
        tally = Tally(view)
        overloaded = [h for h in view.host_names if tally.ratio(h) > self.params.high]
        decisions: list[ChunkMove] = []
        for source in overloaded:
            chunks = sorted(
                view.chunks_on(source),
                key=lambda c: (sum(view.memory[m] for m in c.members), c.id),
            )
            remaining = [c.members for c in chunks]
            mark = self.params.low
            while remaining and round(mark, _MARK_DIGITS) <= self.params.low_cap:
                candidates = sorted(
                    (
                        h
                        for h in view.host_names
                        if h != source
                        and h not in overloaded
                        and round(tally.ratio(h), _MARK_DIGITS) < round(mark, _MARK_DIGITS)
                    ),
                    key=lambda h: (tally.ratio(h), h),
                )
                still: list[tuple[str, ...]] = []
                for members in remaining:
                    need = sum(view.memory[m] for m in members)
                    target = next((h for h in candidates if tally.free[h] >= need), None)
                    if target is None:
                        still.append(members)
                        continue
                    tally.move(source, target, sum(view.cpu[m] for m in members), need)
                    decisions.append(ChunkMove(members, source, target, round(mark, _MARK_DIGITS)))
                remaining = still
                mark += self.params.low_step
        return decisions
