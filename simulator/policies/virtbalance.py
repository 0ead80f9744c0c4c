"""virtbalance itself: the alert decides when, the real barriers and the real planner decide what.

Nothing here re-implements the planner or the cooldowns: each time a host's alert fires (the engine
evaluates the policy's ``for`` like the Prometheus rule, and HostChronicallyHot beside it), this plug-in builds a Snapshot,
annotates it with the migration history, asks ``virtbalance.barriers.evaluate`` for the hourly
budget, and calls ``virtbalance.planner.plan`` in ``relieve`` mode for the firing hosts, as the
actioner does on a webhook notification. When the cluster's HostsImbalanced fires (the engine
evaluates it like its rule), the planner runs in ``balance`` mode for the whole cluster (the alert
names no host), after relief as the actioner queues its plans (``virtbalance.actioner.app``: relieve, then
balance): in the same step when relief moves nothing, else once relief's migrations are over.
Balance plans follow the real notification cadence (``virtbalance.simulator.notifications.Cadence``): the
HostsImbalanced route's ``group_wait`` and repeat, and the journal's follow-up only ``host_settle``
after the last plan ended. For relief, ``replan_every`` stands for Alertmanager's re-notification
period: while an alert keeps firing, the plug-in re-plans relief that often. Like the actioner's
single worker, it does not plan while the migrations of its last plan still run. ``freeze`` replays operators' silences: ``{domain,
destination ("*": anywhere), from, until}`` (durations from the start of the trace), passed to the
planner as forbidden moves.

For the diagnosis, ``explain`` says why each firing host got no move, from what the real barriers and
planner returned: the hourly cap (``Barriers.remaining_hourly``), else the plan's ``Unresolved.cause``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from virtbalance.barriers import annotate, evaluate, horizon
from virtbalance.causes import Cause
from virtbalance.durations import parse_duration
from virtbalance.errors import ValidationError
from virtbalance.forecast import Forecast, window_points
from virtbalance.plan import Mode, Plan
from virtbalance.planner import plan
from virtbalance.policy import Policy
from virtbalance.simulator.notifications import BALANCE_ROUTE, Cadence, Route
from virtbalance.simulator.policies.base import PolicyPlugin, as_dict, parse_params
from virtbalance.simulator.state import ClusterView, MigrationRecord, Move
from virtbalance.snapshot import DomainState, HostState, Snapshot


@dataclass(frozen=True)
class Freeze:
    """A silence: ``domain`` may not move to ``destination`` ("*": anywhere) from ``start`` to ``end``
    seconds after the trace begins."""

    domain: str
    destination: str
    start: float
    end: float


@dataclass(frozen=True)
class VirtbalanceParams:
    replan_every: float = 300.0
    freeze: tuple[Freeze, ...] = field(default=())
    # HostsImbalanced's Alertmanager route (deploy/alertmanager.yml).
    balance_group_wait: float = BALANCE_ROUTE.group_wait
    balance_group_interval: float = BALANCE_ROUTE.group_interval
    balance_repeat_interval: float = BALANCE_ROUTE.repeat_interval

    def balance_route(self) -> Route:
        return Route(
            self.balance_group_wait, self.balance_group_interval, self.balance_repeat_interval
        )


DURATIONS = frozenset(
    {"replan_every", "balance_group_wait", "balance_group_interval", "balance_repeat_interval"}
)


def _freezes(raw: Any) -> tuple[Freeze, ...]:
    where = "policies.virtbalance.freeze"
    if not isinstance(raw, list):
        raise ValidationError(where, [f"expected a list of silences, got {raw!r}"])
    found, problems = [], []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or not {"domain", "from", "until"} <= set(item):
            problems.append(f"{where}[{index}]: needs domain, from and until, got {item!r}")
            continue
        try:
            start, end = parse_duration(item["from"]), parse_duration(item["until"])
        except ValueError as exc:
            problems.append(f"{where}[{index}]: {exc}")
            continue
        found.append(Freeze(str(item["domain"]), str(item.get("destination", "*")), start, end))
    if problems:
        raise ValidationError(where, problems)
    return tuple(found)


class VirtbalancePolicy(PolicyPlugin):
    """The production planner and barriers, driven by the simulated alert."""

    name: ClassVar[str] = "virtbalance"
    chunk_aware: ClassVar[bool] = True

    def __init__(self, params: VirtbalanceParams, policy: Policy) -> None:
        self.params = params
        self.policy = policy
        self.next_plan: float | None = None
        self.cadence = Cadence(params.balance_route(), policy.host_settle)
        # A balance notification got a plan, not run yet (relief first).
        self.balance_queued = False
        # When the running balance plan started; None: none runs.
        self.balance_started: float | None = None
        self.seen = 0
        # Only what a barrier can still see.
        self.window = horizon(policy)
        self.recent: deque[MigrationRecord] = deque()
        self.plans = 0
        self.balances = 0
        self.start: float | None = None
        self.causes: dict[str, Cause] = {}

    @classmethod
    def build(cls, params: Mapping[str, Any] | None, policy: Policy) -> VirtbalancePolicy:
        rest = dict(params or {})
        freeze = _freezes(rest.pop("freeze")) if "freeze" in rest else ()
        parsed = parse_params(VirtbalanceParams, rest, "policies.virtbalance", DURATIONS)
        return cls(replace(parsed, freeze=freeze), policy)

    def parameters(self) -> dict[str, Any]:
        return {**as_dict(self.params), "policy": self.policy.to_mapping()}

    def explain(self) -> Mapping[str, Cause]:
        return self.causes

    def _forecast(self, view: ClusterView) -> Forecast | None:
        """Recent peaks over the policy's ``forecast_window`` (0: none, destinations judged on the sample),
        and the domains' averages over ``balance_window``, the evaluations HostsImbalanced averages."""
        steps = round(self.policy.forecast_window / view.step_seconds)
        if steps < 1:
            return None
        domains, hosts = view.recent_peaks(steps)
        averages = view.recent_averages(
            window_points(self.policy.balance_window, view.step_seconds)
        )
        return Forecast(domains, hosts, averages)

    def _forbidden(self, now: float) -> frozenset[tuple[str, str]]:
        assert self.start is not None
        offset = now - self.start
        return frozenset(
            (f.domain, f.destination) for f in self.params.freeze if f.start <= offset < f.end
        )

    def _snapshot(self, view: ClusterView) -> Snapshot:
        """The snapshot the actioner would plan on."""
        return snapshot_of(view)

    def _remember(self, view: ClusterView) -> None:
        for record in view.history[self.seen :]:
            self.recent.append(record)
        self.seen = len(view.history)
        while self.recent and view.time - self.recent[0].time >= self.window:
            self.recent.popleft()

    def decide(self, view: ClusterView) -> Sequence[Move]:
        if self.balance_started is not None:
            # The engine asks nothing while migrations run: the balance plan is over.
            self.cadence.ended(max(view.executing_until, self.balance_started))
            self.balance_started = None
        if self.cadence.due(view.time, view.imbalanced, view.time + view.step_seconds):
            self.balance_queued = True
        relief = self._relieve(view)
        if not view.imbalanced:
            # A resolved alert cancels its queued plan.
            self.balance_queued = False
        if relief or not self.balance_queued:
            return relief
        self.balance_queued = False
        return self._balance(view)

    def _relieve(self, view: ClusterView) -> Sequence[Move]:
        """Relieve mode for the hosts HostSustainedOverload and HostChronicallyHot name."""
        if self.start is None:
            self.start = view.time
        self._remember(view)
        self.causes = {}
        alerted = view.firing | view.hot
        if not alerted:
            self.next_plan = None
            return ()
        if self.next_plan is not None and view.time < self.next_plan:
            self.causes = dict.fromkeys(alerted, Cause.WAITING)
            return ()
        self.next_plan = view.time + self.params.replan_every
        result = self._plan(view, Mode("relieve"), alerted)
        if result is None:
            self.causes = dict.fromkeys(alerted, Cause.HOURLY_CAP)
            return ()
        self.plans += 1
        # The CPU entry first: the diagnosis is of CPU overload.
        for entry in sorted(result.unresolved, key=lambda u: u.resource != "cpu"):
            self.causes.setdefault(entry.host, entry.cause)
        return _moves(result)

    def _balance(self, view: ClusterView) -> Sequence[Move]:
        """Balance mode for the whole cluster, for a HostsImbalanced notification that got a plan."""
        result = self._plan(view, Mode("balance"), None)
        moves = [] if result is None else _moves(result)
        if result is not None:
            self.balances += 1
        if moves:
            self.balance_started = view.time
        else:
            self.cadence.ended(view.time)
        return moves

    def _plan(
        self, view: ClusterView, mode: Mode, relieve_hosts: frozenset[str] | None
    ) -> Plan | None:
        """The real planner in ``mode`` under the barriers of the history; None: the hourly cap is spent."""
        history = [(r.domain, r.source, r.destination, r.time, r.duration) for r in self.recent]
        barriers = evaluate(self.policy, view.time, history)
        if barriers.remaining_hourly <= 0:
            return None
        return plan(
            annotate(self._snapshot(view), history),
            self.policy,
            mode,
            relieve_hosts=relieve_hosts,
            forbidden=self._forbidden(view.time),
            max_migrations=barriers.remaining_hourly,
            barriers=barriers,
            forecast=self._forecast(view),
        )


def _moves(result: Plan) -> list[Move]:
    return [Move(m.domain, m.destination, m.reason, group=m.chunk) for m in result.migrations]


def snapshot_of(view: ClusterView, emptied: frozenset[str] = frozenset()) -> Snapshot:
    """The simulated cluster as the actioner's snapshot builder would see it, ``emptied`` marked."""
    hosts = tuple(
        HostState(
            name=h,
            cpus=view.host_cpus[h],
            memory_bytes=view.host_memory[h],
            cpu_used=view.host_cpu_used[h],
            memory_used_bytes=view.host_memory_used[h],
            emptied=h in emptied,
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
