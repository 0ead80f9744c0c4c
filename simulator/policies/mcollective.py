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

from virtbalance.simulator.alerting import sustained
from virtbalance.simulator.policies.base import ParamsPlugin
from virtbalance.simulator.state import ClusterView, Move


@dataclass(frozen=True)
class McollectiveParams:
    interval: float = 300.0
    load_threshold: float = 0.75
    max_over: float = 600.0
    max_vm_per_host: int = 30
    max_load_candidate: float = 0.5


class McollectivePolicy(ParamsPlugin[McollectiveParams]):
    """Poll every ``interval``; a host over ``load_threshold`` for ``max_over`` sheds its busiest VM."""

    name: ClassVar[str] = "mcollective"
    chunk_aware: ClassVar[bool] = False
    params_type = McollectiveParams
    durations = frozenset({"interval", "max_over"})

    def __init__(self, params: McollectiveParams) -> None:
        super().__init__(params)
        self.over_since: dict[str, float | None] = {}
        self.next_poll: float | None = None

    def decide(self, view: ClusterView) -> Sequence[Move]:
        if self.next_poll is not None and view.time < self.next_poll:
            return ()
        self.next_poll = view.time + self.params.interval
        cpu = dict(view.host_cpu_used)
        free = {h: view.memory_free(h) for h in view.host_names}
        count = {h: len(view.domains_by_host[h]) for h in view.host_names}
        loaded = []
        for host in view.host_names:
            since, fires = sustained(
                self.over_since.get(host),
                view.cpu_ratio(host) > self.params.load_threshold,
                view.time,
                self.params.max_over,
            )
            self.over_since[host] = since
            if fires:
                loaded.append(host)
        moves: list[Move] = []
        for source in loaded:
            candidates = [
                h
                for h in view.host_names
                if h != source
                and count[h] < self.params.max_vm_per_host
                and cpu[h] / view.host_cpus[h] < self.params.max_load_candidate
            ]
            for domain in sorted(view.domains_by_host[source], key=lambda d: (-view.cpu[d], d)):
                fitting = [h for h in candidates if free[h] >= view.memory[domain]]
                if not fitting:
                    continue
                target = min(fitting, key=lambda h: (cpu[h] / view.host_cpus[h], h))
                load, size = view.cpu[domain], view.memory[domain]
                cpu[target] += load
                cpu[source] -= load
                free[target] -= size
                free[source] += size
                count[target] += 1
                count[source] -= 1
                self.over_since[source] = None
                moves.append(Move(domain, target, "mcollective over load_threshold"))
                break
        return moves
