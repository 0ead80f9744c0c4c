"""The mcollective Xen proof of concept (2010): poll, and move a VM off a host loaded for too long.

Its options: ``interval`` (poll period), ``load_threshold`` (load above which a host is too busy;
here a ratio of its CPUs), ``max_over`` (how long the load must stay above it), ``max_vm_per_host``
(a host with that many VMs receives none) and ``max_load_candidate`` (a host above that load receives
none). It knows no chunks and has no barriers ("barriers against migration madness" are on its
wish list).

Choices where the post is silent: the busiest VM of the host moves, to the least loaded candidate
with memory for it; one VM per loaded host per poll; a host's over-time restarts after it sheds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import ClassVar

from virtbalance.simulator.policies.baseline import Poll, SustainedLoadPlugin, Tally
from virtbalance.simulator.state import ClusterView, Move


@dataclass(frozen=True)
class McollectiveParams:
    interval: float = 300.0
    load_threshold: float = 0.75
    max_over: float = 600.0
    max_vm_per_host: int = 30
    max_load_candidate: float = 0.5


class McollectivePolicy(SustainedLoadPlugin[McollectiveParams]):
    """Poll every ``interval``; a host over ``load_threshold`` for ``max_over`` sheds its busiest VM."""

    name: ClassVar[str] = "mcollective"
    params_type = McollectiveParams
    durations = frozenset({"interval", "max_over"})

    def __init__(self, params: McollectiveParams) -> None:
        super().__init__(params)
        self.poll = Poll(params.interval)

    def decide(self, view: ClusterView) -> Sequence[Move]:
        if not self.poll.due(view.time):
            return ()
        tally = Tally(view)
        count = {h: len(view.domains_by_host[h]) for h in view.host_names}

        def candidate(host: str, domain: str) -> bool:
            return (
                count[host] < self.params.max_vm_per_host
                and tally.ratio(host) < self.params.max_load_candidate
            )

        loaded = self.sustained_hosts(view, self.params.load_threshold, self.params.max_over)
        moves: list[Move] = []
        for source in loaded:
            for domain, target in islice(self.shed(view, tally, source, candidate), 1):
                count[target] += 1
                count[source] -= 1
                self.pending_since[source] = None
                moves.append(Move(domain, target, "mcollective over load_threshold"))
        return moves
