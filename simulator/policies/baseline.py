"""What the baseline policies share: a poll clock, hosts loaded for too long, a run's tally of moves."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar

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
    """A plug-in that sheds single VMs, hungriest first, off hosts whose CPU stayed above a mark for a time."""

    # It moves VMs one by one (``shed``), blind to the chunks they belong to.
    chunk_aware: ClassVar[bool] = False

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

    @staticmethod
    def shed(
        view: ClusterView, tally: Tally, source: str, allowed: Callable[[str, str], bool]
    ) -> Iterator[tuple[str, str]]:
        """``source``'s VMs, hungriest first, each with the least loaded host that has its memory free
        and that ``allowed(host, domain)``; VMs that fit nowhere are passed over. Each move is counted
        in ``tally`` before the next VM is tried, so take only as many as the policy moves."""
        for domain in sorted(view.domains_by_host[source], key=lambda d: (-view.cpu[d], d)):
            size = view.memory[domain]
            fitting = [
                h
                for h in view.host_names
                if h != source and tally.free[h] >= size and allowed(h, domain)
            ]
            if not fitting:
                continue
            target = min(fitting, key=lambda h: (tally.ratio(h), h))
            tally.move(source, target, view.cpu[domain], size)
            yield domain, target


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
