"""virtbalance relieving overloads and consolidating underloaded hosts, as the two alerts drive the actioner.

Overload goes exactly as in the ``virtbalance`` plug-in (relieve mode for the firing hosts). When no
host is overloaded and a running host has stayed below the policy's ``cpu_low`` for
``underutilized_for`` (the ``HostUnderutilized`` alert), the real planner runs in ``consolidate`` mode,
under the same barriers and hourly cap, at most once per ``replan_every`` (Alertmanager's repeat).
HostsImbalanced (balance mode) is not modelled here: the plug-in replays relief and consolidation only.

A host that runs no domain is off in the replay (it draws nothing), so both modes see it as the
actioner sees a host its plans emptied (``hosts[].emptied``, actioner.emptied): relief places nothing
there unless it needs the room, and then wakes the fewest, largest first (virtbalance.planner.wake).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from virtbalance.barriers import annotate, evaluate
from virtbalance.plan import Mode
from virtbalance.planner import plan
from virtbalance.policy import Policy
from virtbalance.simulator.alerting import sustained
from virtbalance.simulator.policies.base import parse_params
from virtbalance.simulator.policies.virtbalance import (
    VirtbalanceParams,
    VirtbalancePolicy,
    _freezes,
    snapshot_of,
)
from virtbalance.simulator.state import ClusterView, Move
from virtbalance.snapshot import Snapshot


class VirtbalanceConsolidatePolicy(VirtbalancePolicy):
    """The production planner's relieve and consolidate modes, each driven by its simulated alert."""

    name: ClassVar[str] = "virtbalance-consolidate"

    def __init__(self, params: VirtbalanceParams, policy: Policy) -> None:
        super().__init__(params, policy)
        self.under_since: dict[str, float | None] = {}
        self.next_consolidate: float | None = None
        self.consolidations = 0

    @classmethod
    def build(
        cls, params: Mapping[str, Any] | None, policy: Policy
    ) -> VirtbalanceConsolidatePolicy:
        rest = dict(params or {})
        freeze = _freezes(rest.pop("freeze")) if "freeze" in rest else ()
        parsed = parse_params(
            VirtbalanceParams, rest, "policies.virtbalance-consolidate", frozenset({"replan_every"})
        )
        return cls(VirtbalanceParams(parsed.replan_every, freeze), policy)

    def _snapshot(self, view: ClusterView) -> Snapshot:
        """The actioner's snapshot: every host that runs no domain is emptied (off)."""
        off = frozenset(h for h in view.host_names if not view.domains_by_host[h])
        return snapshot_of(view, emptied=off)

    def _underutilized(self, view: ClusterView) -> bool:
        """Advance every running host's HostUnderutilized alert; True when one fires."""
        firing = False
        for host in view.host_names:
            below = bool(view.domains_by_host[host]) and view.cpu_ratio(host) < self.policy.cpu_low
            self.under_since[host], fires = sustained(
                self.under_since.get(host), below, view.time, self.policy.underutilized_for
            )
            firing = firing or fires
        return firing

    def decide(self, view: ClusterView) -> Sequence[Move]:
        relief = self._relieve(view)
        underutilized = self._underutilized(view)
        if relief or view.firing or not underutilized:
            if not underutilized:
                self.next_consolidate = None
            return relief
        if self.next_consolidate is not None and view.time < self.next_consolidate:
            return ()
        self.next_consolidate = view.time + self.params.replan_every
        history = [(r.domain, r.source, r.destination, r.time, r.duration) for r in self.recent]
        barriers = evaluate(self.policy, view.time, history)
        if barriers.remaining_hourly <= 0:
            return ()
        result = plan(
            annotate(self._snapshot(view), history),
            self.policy,
            Mode("consolidate"),
            forbidden=self._forbidden(view.time),
            max_migrations=barriers.remaining_hourly,
            barriers=barriers,
            forecast=self._forecast(view),
        )
        self.consolidations += 1
        return [Move(m.domain, m.destination, m.reason, group=m.chunk) for m in result.migrations]
