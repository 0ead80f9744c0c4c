"""A DRS-like balancer: every ``interval``, greedy single-VM moves that lower the spread of host CPU.

Like VMware DRS's load balancing, it measures imbalance as the standard deviation of the hosts'
CPU ratios and, when that exceeds ``tolerance``, recommends the move that lowers it most, then the
next, up to ``max_moves`` per run, each needing at least ``min_gain``. It moves single VMs
(private-network chunks are unknown to it) and keeps destinations at or below ``high``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from virtbalance.simulator.policies.base import ParamsPlugin
from virtbalance.simulator.policies.baseline import Poll
from virtbalance.simulator.state import ClusterView, Move


@dataclass(frozen=True)
class DrsParams:
    interval: float = 300.0
    tolerance: float = 0.1
    max_moves: int = 4
    min_gain: float = 0.005
    high: float = 0.75


def spread(ratios: Sequence[float]) -> float:
    """Population standard deviation of the host CPU ratios."""
    mean = sum(ratios) / len(ratios)
    return math.sqrt(sum((r - mean) ** 2 for r in ratios) / len(ratios))


class DrsPolicy(ParamsPlugin[DrsParams]):
    """Lower the standard deviation of host CPU ratios, one VM at a time."""

    name: ClassVar[str] = "drs"
    chunk_aware: ClassVar[bool] = False
    params_type = DrsParams
    durations = frozenset({"interval"})

    def __init__(self, params: DrsParams) -> None:
        super().__init__(params)
        self.poll = Poll(params.interval)

    def decide(self, view: ClusterView) -> Sequence[Move]:
        if not self.poll.due(view.time):
            return ()
        hosts = view.host_names
        ratio = {h: view.cpu_ratio(h) for h in hosts}
        free = {h: view.memory_free(h) for h in hosts}
        where = {}
        moves: list[Move] = []
        count = len(hosts)
        for _ in range(self.params.max_moves):
            current = spread(list(ratio.values()))
            if current <= self.params.tolerance:
                break
            # Only the busiest host gives: the move that helps most starts there, and scanning
            # every host would cost hosts^2 * VMs per step for little gain.
            source = max(hosts, key=lambda h: (ratio[h], h))
            square_sum = sum(r * r for r in ratio.values())
            mean = sum(ratio.values()) / count
            best: tuple[float, str, str] | None = None
            for domain in view.domains_by_host[source]:
                if domain in where:
                    continue
                load, size = view.cpu[domain], view.memory[domain]
                if load <= 0:
                    continue
                out = load / view.host_cpus[source]
                for target in hosts:
                    if target == source or free[target] < size:
                        continue
                    into = load / view.host_cpus[target]
                    if ratio[target] + into > self.params.high:
                        continue
                    new_source, new_target = ratio[source] - out, ratio[target] + into
                    squares = (
                        square_sum
                        - ratio[source] ** 2
                        - ratio[target] ** 2
                        + new_source**2
                        + new_target**2
                    )
                    new_mean = mean + (into - out) / count
                    value = math.sqrt(max(squares / count - new_mean**2, 0.0))
                    if best is None or value < best[0]:
                        best = (value, domain, target)
            if best is None or current - best[0] < self.params.min_gain:
                break
            _, domain, target = best
            load, size = view.cpu[domain], view.memory[domain]
            ratio[source] -= load / view.host_cpus[source]
            ratio[target] += load / view.host_cpus[target]
            free[source] += size
            free[target] -= size
            where[domain] = target
            moves.append(Move(domain, target, "drs lower spread"))
        return moves
