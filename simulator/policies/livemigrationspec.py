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
from itertools import islice
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
    params_type = LiveMigrationSpecParams
    durations = frozenset({"sustain"})

    def decide(self, view: ClusterView) -> Sequence[Move]:
        high = self.params.high
        overworked = self.sustained_hosts(view, high, self.params.sustain)
        tally = Tally(view)

        def fits(host: str, domain: str) -> bool:
            return (tally.cpu[host] + view.cpu[domain]) / view.host_cpus[host] <= high

        moves: list[Move] = []
        for source in sorted(overworked, key=lambda h: -tally.ratio(h)):
            for domain, target in islice(
                self.shed(view, tally, source, fits), self.params.per_host
            ):
                moves.append(Move(domain, target, "livemigrationspec most hungry"))
        return moves
