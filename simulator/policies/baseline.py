"""What the baseline policies share: a poll clock, hosts loaded for too long, a run's tally of moves."""

from __future__ import annotations

from collections.abc import Mapping

from virtbalance.simulator.alerting import sustained
from virtbalance.simulator.policies.base import P, ParamsPlugin
from virtbalance.simulator.state import ClusterView


class Poll:
    """Due at the first call, then once ``interval`` seconds have passed since the last due one."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next: float | None = None

    def due(self, now: float) -> bool:
        if self.next is not None and now < self.next:
            return False
        self.next = now + self.interval
        return True


class SustainedLoadPlugin(ParamsPlugin[P]):
    """A plug-in that acts on hosts whose CPU stayed above a mark for a time, as an alert's ``for``."""

    def __init__(self, params: P) -> None:
        super().__init__(params)
        # Each host's pending start across runs (``sustained``); None while it is not above the mark.
        self.pending_since: dict[str, float | None] = {}

    def sustained_hosts(self, view: ClusterView, threshold: float, hold: float) -> list[str]:
        """The hosts whose CPU ratio has stayed above ``threshold`` for ``hold`` seconds, in view order."""
        hosts = []
        for host in view.host_names:
            self.pending_since[host], fires = sustained(
                self.pending_since.get(host), view.cpu_ratio(host) > threshold, view.time, hold
            )
            if fires:
                hosts.append(host)
        return hosts


class Tally:
    """The hosts' CPU used and memory free as the moves decided so far in a run leave them."""

    def __init__(self, view: ClusterView) -> None:
        self.host_cpus: Mapping[str, float] = view.host_cpus
        self.cpu = {h: view.host_cpu_used[h] for h in view.host_names}
        self.free = {h: view.memory_free(h) for h in view.host_names}

    def ratio(self, host: str) -> float:
        return self.cpu[host] / self.host_cpus[host]

    def move(self, source: str, target: str, load: float, size: int) -> None:
        """Count ``load`` CPU and ``size`` bytes as gone from ``source`` to ``target``."""
        self.cpu[target] += load
        self.cpu[source] -= load
        self.free[target] -= size
        self.free[source] += size
