"""What a live migration costs in the replay: how long it lasts, and the load it leaves on both hosts meanwhile.

One pre-copy round and one round for the memory dirtied meanwhile: a domain of ``m`` bytes that dirties
``d`` bytes/s, copied at ``b`` bytes/s, transfers ``m + d * m / b`` bytes. Migrations between the same
two hosts share the pair's ``bandwidth`` equally (processor sharing: when one ends, the others speed
up). A chunk's members run concurrently, at most ``max_per_host`` at once (the executor's per-host cap);
chunks run one after the other, and a decision's chunks after the previous decision's, like the
actioner's single worker. While a domain migrates, the source still carries its CPU load plus
``overhead_cores`` (the copying), and the destination carries its load from the start.
With ``concurrent`` (CloudSim's model) every migration of a decision starts at once and has the whole
``bandwidth`` to itself: nothing queues behind another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from virtbalance.reader import NOT_NEGATIVE, POSITIVE, option, read_valid, write_section
from virtbalance.simulator.traces import GIB

MIB = 1024**2


@dataclass(frozen=True)
class CostModel:
    """Migration cost settings; ``enabled=False`` makes every migration instantaneous and free."""

    enabled: bool = True
    # Bytes per second between one pair of hosts, shared by the migrations running between them.
    bandwidth: float = option(float(GIB), key="bandwidth_gib", scale=GIB, checks=(POSITIVE,))
    # Bytes per second a domain dirties per core of CPU it uses (a busy domain writes more memory).
    dirty_per_core: float = option(
        float(16 * MIB), key="dirty_mib_per_core", scale=MIB, checks=(NOT_NEGATIVE,)
    )
    # Cores the copying costs the source, per running migration.
    overhead_cores: float = option(0.25, checks=(NOT_NEGATIVE,))
    # Every migration starts when decided, at the full bandwidth (CloudSim's model), instead of the
    # actioner's one chunk after another.
    concurrent: bool = False

    @classmethod
    def from_mapping(cls, data: Any, source: str = "migration") -> CostModel:
        """Validate the ``migration:`` section; ValidationError listing every problem."""
        return read_valid(cls, data, source)

    def to_mapping(self) -> dict[str, Any]:
        return write_section(self)

    def transfer_bytes(self, memory: float, cpu: float, share: float) -> float:
        """Bytes a domain of ``memory`` bytes using ``cpu`` cores transfers when copied at ``share`` bytes/s."""
        return memory + self.dirty_per_core * cpu * memory / share

    def wave(self, members: Sequence[tuple[float, float]]) -> list[float]:
        """Seconds until each member ends, ``(memory, cpu)`` each, all starting together on one pair.

        Each starts at an equal share of the bandwidth (which fixes its dirty round); the pair's
        bandwidth is then shared equally among those still running.
        """
        if not self.enabled or not members:
            return [0.0] * len(members)
        share = self.bandwidth / len(members)
        work = [self.transfer_bytes(m, c, share) for m, c in members]
        order = sorted(range(len(work)), key=lambda i: work[i])
        ends = [0.0] * len(work)
        clock = 0.0
        done = 0.0
        for rank, index in enumerate(order):
            running = len(work) - rank
            clock += (work[index] - done) * running / self.bandwidth
            done = work[index]
            ends[index] = clock
        return ends

    def chunk(
        self, members: Sequence[tuple[float, float]], per_host: int
    ) -> list[tuple[float, float]]:
        """(start, end) of each member, in seconds from the chunk's start, when at most ``per_host``
        run at once: waves in order, each after the previous one has ended."""
        width = max(1, per_host)
        spans: list[tuple[float, float]] = []
        start = 0.0
        for first in range(0, len(members), width):
            wave = self.wave(members[first : first + width])
            spans += [(start, start + e) for e in wave]
            start = max([start, *(end for _, end in spans)])
        return spans
