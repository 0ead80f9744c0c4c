"""Ubuntu LiveMigrationSpec (2008): a host with sustained high CPU moves its most hungry VM that fits.

From the spec: look for overworked nodes ("sustained > 75% cpu usage"), see whether the most
resource-hungry VM on the node fits anywhere else, if not try the second most hungry, and so on;
when a new location is found, start the migration. The spec knows nothing of private networks
(chunks) and has no barriers.

Choices where the spec is silent: "sustained" is ``sustain`` long (10 minutes, evaluated like an
alert's ``for``); "fits" means the destination has the memory and stays at or below ``high`` with
the VM; among the hosts where it fits, the least loaded one takes it; one VM per overloaded host
per run (``per_host``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from virtbalance.simulator.policies.baseline import SustainedLoadPlugin, Tally
from virtbalance.simulator.state import ClusterView, Move


@dataclass(frozen=True)
class LiveMigrationSpecParams:
    high: float = 0.75
    sustain: float = 600.0
    per_host: int = 1


class LiveMigrationSpecPolicy(SustainedLoadPlugin[LiveMigrationSpecParams]):
    """Move the hungriest VM that fits off each host that stayed above ``high``."""

    name: ClassVar[str] = "livemigrationspec"
    chunk_aware: ClassVar[bool] = False
    params_type = LiveMigrationSpecParams
    durations = frozenset({"sustain"})

    def decide(self, view: ClusterView) -> Sequence[Move]:
        high = self.params.high
        overworked = self.sustained_hosts(view, high, self.params.sustain)
        tally = Tally(view)
        moves: list[Move] = []
        for source in sorted(overworked, key=lambda h: -tally.ratio(h)):
            hungry = sorted(view.domains_by_host[source], key=lambda d: (-view.cpu[d], d))
            moved = 0
            for domain in hungry:
                if moved >= self.params.per_host:
                    break
                load, size = view.cpu[domain], view.memory[domain]
                fits = [
                    h
                    for h in view.host_names
                    if h != source
                    and tally.free[h] >= size
                    and (tally.cpu[h] + load) / view.host_cpus[h] <= high
                ]
                if not fits:
                    continue
                target = min(fits, key=lambda h: (tally.ratio(h), h))
                tally.move(source, target, load, size)
                moves.append(Move(domain, target, "livemigrationspec most hungry"))
                moved += 1
        return moves
