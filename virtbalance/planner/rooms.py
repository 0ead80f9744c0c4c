"""A capacity bound on packing chunks onto the receivers: what the cover search prunes with before it places."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

# Relative slack on sums of rooms: rounding in a float sum must never rule out a set that places.
SLACK = 1e-9


@dataclass(frozen=True)
class Rooms:
    """The receivers' free CPU (cores, on the figure destinations are judged by) and memory (bytes)
    below the targets, each sorted in ascending order, with suffix sums (``cpu_from[j]``: the rooms
    from j on, the largest ones)."""

    cpu: tuple[float, ...]
    memory: tuple[float, ...]
    cpu_from: tuple[float, ...]
    memory_from: tuple[float, ...]

    @classmethod
    def of(cls, cpu: Iterable[float], memory: Iterable[float]) -> Rooms:
        cpus, memories = _floored(cpu), _floored(memory)
        return cls(cpus, memories, _suffix_sums(cpus), _suffix_sums(memories))

    def admits(self, cpus: Sequence[float], memories: Sequence[float]) -> bool:
        """False when no assignment of chunks with these demands (each list ascending) to the rooms
        respects the capacities: the k largest demands of a resource only fit into the rooms at least
        as large as the k-th, so together they may not exceed the sum of those rooms. True does not
        promise a placement (anti-affinity, barred hosts and the two resources together are left out)."""
        return _admits(cpus, self.cpu, self.cpu_from) and _admits(
            memories, self.memory, self.memory_from
        )


def _floored(values: Iterable[float]) -> tuple[float, ...]:
    """Sorted, negative rooms (a receiver above one target) as none. The packer builds these at every
    placement it tries: clamping only when the smallest is negative saves most of their cost."""
    ordered = sorted(values)
    if ordered and ordered[0] < 0.0:
        return tuple(max(0.0, v) for v in ordered)
    return tuple(ordered)


def _suffix_sums(values: tuple[float, ...]) -> tuple[float, ...]:
    return (*reversed(tuple(accumulate(reversed(values)))), 0.0)


def _admits(
    demands: Sequence[float], rooms: tuple[float, ...], room_from: tuple[float, ...]
) -> bool:
    total = 0.0
    smallest = rooms[0] * (1 - SLACK) if rooms else 0.0
    for demand in reversed(demands):
        if demand <= smallest:
            # This demand and every smaller one fit any room: what is left to check is that all of
            # them together fit all the rooms (the strongest of their checks, one sum).
            return sum(demands) <= room_from[0] * (1 + SLACK) + SLACK
        total += demand
        # The rooms that can hold this demand (and so every larger one) are those from index on.
        index = bisect.bisect_left(rooms, demand * (1 - SLACK))
        if total > room_from[index] * (1 + SLACK) + SLACK:
            return False
    return True
