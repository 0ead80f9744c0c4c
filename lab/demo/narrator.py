"""Live plain-words narration of an overload being relieved, and the summary table at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import TextIO

from virtbalance.contract import (
    ALERT_OVERLOAD,
    DOMAIN_VCPU_DELAY,
    LABEL_HOST,
    RECORD_CPU,
    RECORD_MEMORY,
)
from virtbalance.lab.demo.actioner_view import FINAL_STATES, ActionerReader, MigrationView, PlanView
from virtbalance.lab.demo.clients import Alertmanager, Prometheus, ServiceError

# Time vCPUs were runnable but waited for a real CPU: on a busy machine the guests get less than asked.
VCPU_WAIT = f"sum by (host) (rate({DOMAIN_VCPU_DELAY}[1m]))"
# Cores of vCPU wait on a host that an idle lab host does not show: the machine itself is contended.
BUSY_WAIT = 0.1
STALL_AFTER = 90.0
GIVE_UP_AFTER_PLAN = 90.0  # seconds after the last plan ended with the host still overloaded  # seconds after the load rose with no pending alert: explain why
BAR_WIDTH = 24
SERVICE_PATIENCE = 60.0  # seconds a service may stay silent before the narration stops


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A text progress bar: ``[#########...........]``."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def percent(value: float | None) -> str:
    return "  n/a" if value is None else f"{value * 100:4.0f}%"


@dataclass
class HostFigures:
    """CPU and memory ratios of every host at one moment."""

    at: float
    cpu: dict[str, float]
    memory: dict[str, float]


@dataclass
class Story:
    """What happened, with times (Unix seconds), for the summary and the tests."""

    host: str
    overload_at: float
    before: HostFigures | None = None
    at_alert: HostFigures | None = (
        None  # when the overload alert started firing: "before" the relief
    )
    after: HostFigures | None = None
    pending_at: float | None = None
    firing_at: float | None = None
    relief_at: float | None = None
    resolved_at: float | None = None
    plans: dict[str, PlanView] = field(default_factory=dict)
    # chunk -> seconds between its first and last member arriving (from the actioner's histogram)
    split_windows: dict[str, float] = field(default_factory=dict)
    peak_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def migrations(self) -> list[MigrationView]:
        return [m for plan in self.plans.values() for m in plan.migrations]

    @property
    def first_migration_start(self) -> float | None:
        starts = [m.started_at for m in self.migrations if m.started_at is not None]
        return min(starts) if starts else None

    @property
    def firing_to_first_migration(self) -> float | None:
        start = self.first_migration_start
        if start is None or self.firing_at is None:
            return None
        return start - self.firing_at

    @property
    def overload_to_relief(self) -> float | None:
        return None if self.relief_at is None else self.relief_at - self.overload_at


@dataclass(eq=False)
class Narrator:
    """Polls Prometheus, Alertmanager and the actioner about once a second and says what changed."""

    prometheus: Prometheus
    alertmanager: Alertmanager
    actioner: ActionerReader
    _: KW_ONLY
    hosts: list[str]
    cpu_high: float
    out: TextIO
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        self._origin = self.clock()
        self._last_load_print: dict[str, float] = {}
        self._last_load_at = 0.0
        self._seen_states: dict[tuple[str, str], str] = {}
        self._seen_progress: dict[tuple[str, str], float] = {}
        self._known_plans: set[str] = set()
        self._split_totals: tuple[int, float] = (0, 0.0)
        self._chunks_done: set[tuple[str, str]] = set()
        self._finished_plans: set[str] = set()
        self._announced: set[str] = set()
        self._stall_explained = False
        self._last_plan_finished: float | None = None

    # -- output ----------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        elapsed = self.clock() - self._origin
        self.out.write(f"[{elapsed:6.1f}s] {text}\n")
        self.out.flush()

    # -- reading ---------------------------------------------------------------------------------

    def figures(self) -> HostFigures:
        return HostFigures(
            at=self.clock(),
            cpu=self.prometheus.by_host(RECORD_CPU),
            memory=self.prometheus.by_host(RECORD_MEMORY),
        )

    def known_plan_ids(self) -> set[str]:
        """Plans that exist before the overload: the narration ignores them."""
        return {plan.id for plan in self.actioner.plans()}

    # -- the story -------------------------------------------------------------------------------

    def watch(self, host: str, overload_at: float, before: HostFigures, timeout: float) -> Story:
        """Narrate until the alert on ``host`` resolved and every plan finished, or ``timeout``."""
        story = Story(host=host, overload_at=overload_at, before=before)
        self._known_plans = self.known_plan_ids()
        self._split_totals = self.actioner.split_totals()
        deadline = self.clock() + timeout
        failing_since: float | None = None
        while self.clock() < deadline:
            try:
                done = self._step(story)
                failing_since = None
            except ServiceError as exc:
                done = False
                now = self.clock()
                if failing_since is None:
                    failing_since = now
                    self.say(f"(a service did not answer: {exc}; retrying)")
                elif now - failing_since > SERVICE_PATIENCE:
                    self.say(f"giving up: no answer for {SERVICE_PATIENCE:.0f}s ({exc})")
                    break
            if done:
                break
            self.sleep(self.poll_interval)
        else:
            self.say(f"gave up waiting after {timeout:.0f}s")
        try:
            story.after = self.figures()
        except ServiceError:
            story.after = None
        return story

    def _step(self, story: Story) -> bool:
        now = self.clock()
        figures = self.figures()
        self._narrate_load(story, figures, now)
        self._narrate_alert(story, now)
        if story.firing_at is not None and story.at_alert is None:
            story.at_alert = figures
        self._explain_stall(story, figures, now)
        self._narrate_plans(story)
        if (
            story.firing_at is not None
            and story.relief_at is None
            and story.migrations
            and figures.cpu.get(story.host, 1.0) <= self.cpu_high
        ):
            story.relief_at = now
            self.say(
                f"relief: {story.host} CPU is {percent(figures.cpu[story.host]).strip()}, "
                f"back under {self.cpu_high:.0%}"
            )
        plans_done = all(plan.finished for plan in story.plans.values())
        if story.resolved_at is not None and plans_done:
            return True
        last = self._last_plan_finished
        if story.plans and plans_done and last is not None and now - last > GIVE_UP_AFTER_PLAN:
            self.say(
                f"the actioner made no further plan for {GIVE_UP_AFTER_PLAN:.0f}s and {story.host} is "
                "still overloaded: see the plan's reasons above"
            )
            self._explain_busy_peers(story.host)
            return True
        return False

    def _narrate_load(self, story: Story, figures: HostFigures, now: float) -> None:
        for name, value in figures.cpu.items():
            story.peak_cpu[name] = max(story.peak_cpu.get(name, 0.0), value)
        changed = any(
            abs(figures.cpu.get(name, 0.0) - self._last_load_print.get(name, -1.0)) >= 0.05
            for name in self.hosts
        )
        if not changed and now - self._last_load_at < 10:
            return
        self._last_load_print = dict(figures.cpu)
        self._last_load_at = now
        parts = []
        for name in self.hosts:
            ratio = figures.cpu.get(name)
            marker = " <- over" if ratio is not None and ratio > self.cpu_high else ""
            parts.append(f"{name} {percent(ratio)}{marker}")
        value = figures.cpu.get(story.host, 0.0)
        self.say(
            f"CPU {story.host} {bar(value)} {percent(value).strip()} "
            f"(threshold {self.cpu_high:.0%}) | " + ", ".join(parts)
        )

    def _explain_stall(self, story: Story, figures: HostFigures, now: float) -> None:
        """Once: the load was raised long ago and the host is still under the threshold: say why."""
        if self._stall_explained or story.pending_at is not None or story.firing_at is not None:
            return
        if now - story.overload_at < STALL_AFTER:
            return
        self._stall_explained = True
        value = figures.cpu.get(story.host, 0.0)
        waiting = self.prometheus.by_host(VCPU_WAIT).get(story.host, 0.0)
        self.say(
            f"{story.host} stays at {value:.0%}, under the {self.cpu_high:.0%} threshold: its guests "
            f"wait {waiting:.2f} cores for a real CPU (this machine is busy), so they use less than "
            "their load dials ask. Stop other CPU-heavy work and run the demo again."
        )

    def _explain_busy_peers(self, host: str) -> None:
        """A plan that found no room may be the machine's doing: every lab host shares its CPUs, and
        the time a guest waits for one counts as demand, so on a busy machine the peers look full."""
        waiting = self.prometheus.by_host(VCPU_WAIT)
        busy = {name: w for name, w in sorted(waiting.items()) if name != host and w >= BUSY_WAIT}
        if busy:
            listed = ", ".join(f"{name} {w:.2f}" for name, w in busy.items())
            self.say(
                f"note: the guests of the other hosts wait for a real CPU ({listed} cores): this machine "
                "is busy, and that wait counts as CPU demand, so those hosts look fuller than their "
                "guests' load dials make them. Stop other CPU-heavy work and run the demo again."
            )

    def _narrate_alert(self, story: Story, now: float) -> None:
        alerts = [
            a
            for a in self.prometheus.alerts(ALERT_OVERLOAD)
            if a.labels.get(LABEL_HOST) == story.host
        ]
        states = {a.state for a in alerts}
        if "pending" in states and story.pending_at is None and story.firing_at is None:
            story.pending_at = now
            self.say(
                f"alert {ALERT_OVERLOAD} on {story.host} is PENDING: over the threshold, "
                "Prometheus waits to see whether it lasts (a spike would not)"
            )
        if "firing" in states and story.firing_at is None:
            story.firing_at = self._firing_time(story.host, now)
            self.say(
                f"alert {ALERT_OVERLOAD} on {story.host} is FIRING: the overload lasted; "
                "Alertmanager notifies the actioner"
            )
        if not alerts and story.firing_at is not None and story.resolved_at is None:
            story.resolved_at = now
            self.say(f"alert {ALERT_OVERLOAD} on {story.host} RESOLVED: the host is relieved")

    def _firing_time(self, host: str, fallback: float) -> float:
        """When the alert started firing: Alertmanager's startsAt is Prometheus's firing time."""
        for alert in self.alertmanager.alerts(ALERT_OVERLOAD):
            if alert.labels.get(LABEL_HOST) == host:
                return alert.starts_at
        return fallback

    def _narrate_plans(self, story: Story) -> None:
        finished_chunks: list[tuple[PlanView, str]] = []
        for plan in self.actioner.plans():
            if plan.id in self._known_plans:
                continue
            if plan.id not in self._announced and (plan.migrations or plan.finished):
                self._announced.add(plan.id)
                self._announce_plan(plan)
            story.plans[plan.id] = plan
            for migration in plan.migrations:
                self._narrate_migration(plan, migration)
            for chunk in sorted({m.chunk for m in plan.migrations}):
                members = [m for m in plan.migrations if m.chunk == chunk]
                key = (plan.id, chunk)
                if key not in self._chunks_done and all(m.state in FINAL_STATES for m in members):
                    self._chunks_done.add(key)
                    if any(m.state in ("done", "rolled_back") for m in members):
                        finished_chunks.append((plan, chunk))
        self._narrate_splits(story, finished_chunks)
        for plan in story.plans.values():
            if plan.finished and plan.id not in self._finished_plans:
                self._finished_plans.add(plan.id)
                self._last_plan_finished = self.clock()
                if plan.migrations:
                    self.say(f"plan {plan.id} finished: {plan.outcome} ({plan.detail})")

    def _narrate_splits(self, story: Story, finished: list[tuple[PlanView, str]]) -> None:
        """The actioner measures each chunk's split window into a histogram: read the new ones."""
        count, total = self.actioner.split_totals()
        new_count = count - self._split_totals[0]
        new_sum = total - self._split_totals[1]
        if not finished or new_count < len(finished):
            return  # the histogram lags the plan list by a moment: next poll
        self._split_totals = (count, total)
        label = " + ".join(chunk for _, chunk in finished)
        story.split_windows[label] = new_sum
        plan, chunk = finished[0]
        members = [m for m in plan.migrations if m.chunk == chunk]
        if len(finished) == 1 and len(members) > 1:
            self.say(
                f"  chunk {chunk} is whole again on {members[0].destination}: its members were "
                f"apart for {new_sum:.2f}s (split window)"
            )
        elif len(finished) > 1:
            self.say(f"  chunks {label}: split windows {new_sum:.2f}s in all")

    def _announce_plan(self, plan: PlanView) -> None:
        if not plan.migrations:
            detail = f" ({plan.detail})" if plan.detail and not plan.unresolved else ""
            self.say(f"plan {plan.id}: {plan.outcome}, no migration{detail}")
        else:
            chunks: dict[tuple[str, str, str], list[MigrationView]] = {}
            for m in plan.migrations:
                chunks.setdefault((m.chunk, m.source, m.destination), []).append(m)
            self.say(
                f"plan {plan.id}: {len(plan.migrations)} migration(s) in {len(chunks)} chunk(s)"
            )
            for (chunk, source, destination), members in chunks.items():
                names = ", ".join(m.domain for m in members)
                self.say(
                    f"  move chunk {chunk} ({names}) {source} -> {destination}: {members[0].reason}"
                )
        for reason in plan.unresolved:
            self.say(f"  unresolved: {reason}")

    def _narrate_migration(self, plan: PlanView, m: MigrationView) -> None:
        key = (plan.id, m.domain)
        previous = self._seen_states.get(key)
        if m.state != previous:
            self._seen_states[key] = m.state
            if m.state == "running":
                self._seen_progress[key] = m.progress or 0.0
                shown = "" if m.progress is None else f" {m.progress:.0%}"
                self.say(
                    f"  migrating {m.domain} {m.source} -> {m.destination} "
                    f"{bar(m.progress or 0.0)}{shown}"
                )
            elif m.state in FINAL_STATES:
                took = "" if m.duration is None else f" in {m.duration:.1f}s"
                why = f": {m.error or m.reason}" if m.state != "done" else ""
                self.say(
                    f"  {m.domain}: {m.state}{took}{why} {bar(1.0 if m.state == 'done' else 0.0)}"
                )
        elif (
            m.state == "running"
            and m.progress is not None
            and m.progress - self._seen_progress.get(key, 0.0) >= 0.2
        ):
            self._seen_progress[key] = m.progress
            self.say(f"  migrating {m.domain} {bar(m.progress)} {m.progress:.0%}")


def summary(story: Story, hosts: list[str], cpu_high: float) -> str:
    """The table printed at the end of the demo."""
    lines = ["", "Summary", "=======", ""]
    lines.append(
        f"{'host':<12} {'CPU before':>10} {'CPU after':>10} {'mem before':>10} {'mem after':>10}"
    )
    for name in hosts:
        # "Before" the rebalancing is when the alert fired; the load raise is the fallback.
        before = story.at_alert or story.before
        after = story.after
        lines.append(
            f"{name:<12} "
            f"{percent(before.cpu.get(name) if before else None):>10} "
            f"{percent(after.cpu.get(name) if after else None):>10} "
            f"{percent(before.memory.get(name) if before else None):>10} "
            f"{percent(after.memory.get(name) if after else None):>10}"
        )
    lines.append(
        f"(CPU threshold {cpu_high:.0%}; before = when the alert fired, after = when it resolved)"
    )
    lines.append("")
    if story.migrations:
        lines.append(
            f"{'domain':<12} {'chunk':<22} {'from':<10} {'to':<10} {'result':<12} {'took':>7}"
        )
        for m in story.migrations:
            took = "" if m.duration is None else f"{m.duration:.1f}s"
            lines.append(
                f"{m.domain:<12} {m.chunk:<22} {m.source:<10} {m.destination:<10} {m.state:<12} {took:>7}"
            )
    else:
        lines.append("no migration")
    if story.split_windows:
        lines.append("")
        for chunk, window in sorted(story.split_windows.items()):
            lines.append(f"chunk {chunk}: split window {window:.2f}s")
    lines.append("")
    lines.append(_timing("load raised -> alert firing", story.overload_at, story.firing_at))
    lines.append(
        _timing("alert firing -> first migration", story.firing_at, story.first_migration_start)
    )
    lines.append(_timing("load raised -> host under threshold", story.overload_at, story.relief_at))
    lines.append(_timing("load raised -> alert resolved", story.overload_at, story.resolved_at))
    return "\n".join(lines) + "\n"


def _timing(label: str, start: float | None, end: float | None) -> str:
    value = "did not happen" if start is None or end is None else f"{end - start:.1f}s"
    return f"{label:<38} {value}"
