"""virtbalance itself: the alert decides when, the real barriers and the real planner decide what.

Nothing here re-implements the planner or the cooldowns: each time a host's alert fires (the engine
evaluates the policy's ``for`` like the Prometheus rule), this plug-in builds a Snapshot,
annotates it with the migration history, asks ``virtbalance.barriers.evaluate`` for the hourly
budget, and calls ``virtbalance.planner.plan`` in ``relieve`` mode for the firing hosts, as the
actioner does on a webhook notification. ``replan_every`` stands for Alertmanager's re-notification
period: while an alert keeps firing, the actioner hears of it again that often.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from simulator.policies.base import PolicyPlugin, as_dict, parse_params
from simulator.state import ClusterView, MigrationRecord, Move
from virtbalance.barriers import annotate, evaluate
from virtbalance.plan import Mode
from virtbalance.planner import plan
from virtbalance.policy import Policy
from virtbalance.snapshot import DomainState, HostState, Snapshot

HOUR = 3600.0


@dataclass(frozen=True)
class VirtbalanceParams:
    replan_every: float = 300.0


class VirtbalancePolicy(PolicyPlugin):
    """The production planner and barriers, driven by the simulated alert."""

    name: ClassVar[str] = "virtbalance"
    chunk_aware: ClassVar[bool] = True

    def __init__(self, params: VirtbalanceParams, policy: Policy) -> None:
        self.params = params
        self.policy = policy
        self.next_plan: float | None = None
        self.seen = 0
        # Only what a barrier can still see: the longest barrier window (or an hour for the cap).
        self.window = max(HOUR, policy.vm_cooldown, policy.host_settle, policy.anti_flap)
        self.recent: deque[MigrationRecord] = deque()
        self.plans = 0

    @classmethod
    def build(cls, params: Mapping[str, Any] | None, policy: Policy) -> VirtbalancePolicy:
        parsed = parse_params(
            VirtbalanceParams, params, "policies.virtbalance", frozenset({"replan_every"})
        )
        return cls(parsed, policy)

    def parameters(self) -> dict[str, Any]:
        return {**as_dict(self.params), "policy": self.policy.to_mapping()}

    def _remember(self, view: ClusterView) -> None:
        for record in view.history[self.seen :]:
            self.recent.append(record)
        self.seen = len(view.history)
        while self.recent and view.time - self.recent[0].time >= self.window:
            self.recent.popleft()

    def decide(self, view: ClusterView) -> Sequence[Move]:
        self._remember(view)
        if not view.firing:
            self.next_plan = None
            return ()
        if self.next_plan is not None and view.time < self.next_plan:
            return ()
        self.next_plan = view.time + self.params.replan_every
        history = [(r.domain, r.source, r.destination, r.time) for r in self.recent]
        barriers = evaluate(self.policy, view.time, history)
        if barriers.remaining_hourly <= 0:
            return ()
        snapshot = annotate(snapshot_of(view), history)
        result = plan(
            snapshot,
            self.policy,
            Mode("relieve"),
            relieve_hosts=frozenset(view.firing),
            max_migrations=barriers.remaining_hourly,
        )
        self.plans += 1
        return [Move(m.domain, m.destination, m.reason) for m in result.migrations]


def snapshot_of(view: ClusterView) -> Snapshot:
    """The simulated cluster as the actioner's snapshot builder would see it."""
    hosts = tuple(
        HostState(
            name=h,
            cpus=view.host_cpus[h],
            memory_bytes=view.host_memory[h],
            cpu_used=view.host_cpu_used[h],
            memory_used_bytes=view.host_memory_used[h],
        )
        for h in view.host_names
    )
    domains = tuple(
        DomainState(
            name=name,
            host=host,
            vcpus=view.vcpus[name],
            cpu_used=view.cpu[name],
            memory_bytes=view.memory[name],
            private_networks=view.networks.get(name, ()),
        )
        for name, host in view.placement.items()
    )
    return Snapshot(time=view.time, hosts=hosts, domains=domains)
