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
    chunk_aware: ClassVar[bool] = False
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
        loaded = self.sustained_hosts(view, self.params.load_threshold, self.params.max_over)
        moves: list[Move] = []
        for source in loaded:
            candidates = [
                h
                for h in view.host_names
                if h != source
                and count[h] < self.params.max_vm_per_host
                and tally.ratio(h) < self.params.max_load_candidate
            ]
            for domain in sorted(view.domains_by_host[source], key=lambda d: (-view.cpu[d], d)):
                fitting = [h for h in candidates if tally.free[h] >= view.memory[domain]]
                if not fitting:
                    continue
                target = min(fitting, key=lambda h: (tally.ratio(h), h))
                tally.move(source, target, view.cpu[domain], view.memory[domain])
                count[target] += 1
                count[source] -= 1
                self.pending_since[source] = None
                moves.append(Move(domain, target, "mcollective over load_threshold"))
                break
        return moves
