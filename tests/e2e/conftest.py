"""The end-to-end run: one pass of the default lab scenario through every phase of the loop.

exporter -> Prometheus -> rule -> Alertmanager -> actioner -> planner -> live migration -> resolved.
The session fixture ``rebalanced_stack`` drives the phases once and records what it saw; the tests in
this directory assert on the record (and the dashboards' tests query the stack it leaves running).
The VictoriaMetrics test starts a stack of its own on the same lab, which stops that one (the night
test brings up a lab of its own): their files sort after test_acceptance and test_dashboard_queries,
so they run once those are done.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from virtbalance.chunks import ChunkMember, find_chunks
from virtbalance.contract import ALERT_MIGRATION, ALERT_OVERLOAD, RECORD_CPU
from virtbalance.lab import Lab, cpu_share
from virtbalance.lab.demo.actioner_view import ActionerReader, MigrationView, PlanView
from virtbalance.lab.demo.clients import Alertmanager, Prometheus, ServiceError, format_time
from virtbalance.lab.demo.stack import Stack, Timings, start, stop

HOST = "hv2"  # pinned ops1, the cache chunk and worker1: only moving the whole chunk relieves it
# Dial percents (steps of 1/9 core). Measured demand runs a little above the dials (QEMU's own threads,
# vCPU waits among the lab's guests), so the phases keep clear of the thresholds on both sides. That
# holds under any machine load only because the guests run in the lab's CPU group (lab.cpu_share).
IDLE = {"ops1": 0, "cache1": 0, "cache2": 0}  # the scenario's start: ~15% with worker1
CALM = {"ops1": 33, "cache1": 11, "cache2": 0}  # ~54% with worker1: well under cpu_high (75%)
# ~87% with worker1. Moving the cache chunk (1/3 core) leaves ~54% on hv2 and fits under the 65% target
# of a peer running ~15%; neither the pinned ops1 nor worker1 alone can relieve hv2.
OVERLOAD = {"ops1": 44, "cache1": 22, "cache2": 11}
SPIKE_SECONDS = 25.0  # with the 30 s rate window: ~13 s above the threshold, under `for: 30s`
PLACEMENT_POLL = 0.5  # seconds; the issue asks for at least one poll a second
SAMPLE_POLL = 1.0


@dataclass
class Sample:
    """Prometheus's view at one moment: CPU ratio per host and the overload alert's state per host."""

    at: float
    cpu: dict[str, float]
    alerts: dict[str, str]


@dataclass
class Record:
    """Everything the run saw, with Unix times, for the assertions."""

    chunks: list[tuple[str, ...]]
    domains: list[str]
    phases: dict[str, float] = field(default_factory=dict)
    placements: list[tuple[float, dict[str, list[str]]]] = field(default_factory=list)
    poll_errors: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    firing_at: float | None = None  # Alertmanager's startsAt of the sustained overload
    frozen_plans: list[PlanView] = field(default_factory=list)
    plans: list[PlanView] = field(default_factory=list)
    resolved_at: float | None = None
    final_placement: dict[str, list[str]] = field(default_factory=dict)
    persistent: dict[str, dict[str, bool]] = field(
        default_factory=dict
    )  # domain -> host -> persistent
    cooldowns_after_move: dict[str, float] = field(default_factory=dict)
    failure: str | None = None  # why the run stopped early, naming the phase
    second_wave: PlanView | None = None  # the plan for a new notification while the rates lagged
    second_wave_cpu: float | None = None  # the relieved host's CPU ratio when it was posted
    cpu_group: bool = False  # whether the lab's guests ran in its CPU group (lab.cpu_share)

    def require(self, *phases: str) -> None:
        """Fail the calling test, saying why, when the run stopped before these phases."""
        missing = [p for p in phases if p not in self.phases]
        if missing:
            pytest.fail(f"the e2e run stopped before {', '.join(missing)}: {self.failure}")

    def samples_between(self, start: str, end: str) -> list[Sample]:
        return [s for s in self.samples if self.phases[start] <= s.at < self.phases[end]]

    @property
    def migrations(self) -> list[MigrationView]:
        return [m for plan in self.plans for m in plan.migrations]

    @property
    def first_migration_start(self) -> float | None:
        starts = [m.started_at for m in self.migrations if m.started_at is not None]
        return min(starts) if starts else None


@dataclass
class RebalancedStack:
    """The stack after the run (its URLs for the dashboards' tests) and the record of the run."""

    stack: Stack
    record: Record


class Poller(threading.Thread):
    """Calls ``poll`` every ``interval`` seconds until stopped; records exceptions instead of dying."""

    def __init__(
        self, name: str, interval: float, poll: Callable[[], None], errors: list[str]
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.poll = poll
        self.errors = errors
        self.halt = threading.Event()

    def run(self) -> None:
        # At a fixed rate: waiting a whole interval after each poll would add the interval to every
        # poll a loaded machine slows down (at load 60 the 95th percentile gap was 1.36 s: a 0.86 s poll
        # plus the 0.5 s wait).
        due = time.monotonic()
        while not self.halt.is_set():
            try:
                self.poll()
            except Exception as exc:
                self.errors.append(f"{self.name} at {time.time():.1f}: {exc!r}")
            due = max(due + self.interval, time.monotonic())
            self.halt.wait(due - time.monotonic())

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def scenario_chunks(lab: Lab) -> list[tuple[str, ...]]:
    """The scenario's multi-domain chunks (domains that must always share a host)."""
    chunks: list[tuple[str, ...]] = []
    for host in lab.scenario.hosts:
        members = [
            ChunkMember(d.name, d.private_networks, d.group)
            for d in lab.scenario.domains_on(host.name)
        ]
        chunks.extend(c.members for c in find_chunks(members) if len(c.members) > 1)
    return chunks


def wait_for(what: str, condition: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except ServiceError:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise PhaseError(f"timed out after {timeout:.0f}s waiting for {what}")


class PhaseError(Exception):
    """A phase of the run did not reach its goal; later phases cannot run."""


def set_loads(lab: Lab, loads: dict[str, int]) -> None:
    for domain, percent in loads.items():
        lab.set_load(domain, percent)


def persistence(lab: Lab) -> dict[str, dict[str, bool]]:
    """domain -> host -> whether a persistent definition exists there (absent hosts: no definition)."""
    out: dict[str, dict[str, bool]] = {}
    for host in lab.hosts:
        connection = lab.connection(host.name)
        for dom in connection.listAllDomains(0):
            out.setdefault(dom.name(), {})[host.name] = bool(dom.isPersistent())
    return out


class Run:
    """The phases, in order; each records its start time under its name."""

    def __init__(self, stack: Stack, record: Record) -> None:
        self.stack = stack
        self.lab = stack.lab
        self.record = record
        self.prometheus = Prometheus(stack.prometheus_url)
        self.alertmanager = Alertmanager(stack.alertmanager_url)
        self.actioner = ActionerReader(stack.actioner_url, stack.token)
        self.known_plans: set[str] = set()

    def phase(self, name: str) -> None:
        self.record.phases[name] = time.time()

    def sample(self) -> None:
        cpu = self.prometheus.by_host(RECORD_CPU)
        alerts = {a.labels["host"]: a.state for a in self.prometheus.alerts(ALERT_OVERLOAD)}
        self.record.samples.append(Sample(time.time(), cpu, alerts))

    def place(self) -> None:
        self.record.placements.append((time.time(), self.lab.running_hosts()))

    def latest(self) -> Sample | None:
        return self.record.samples[-1] if self.record.samples else None

    def new_plans(self) -> list[PlanView]:
        return [p for p in self.actioner.plans() if p.id not in self.known_plans]

    def probe_second_wave(self) -> None:
        """A fresh notification for the relieved host while its rates still lag: the barriers must hold.

        Alertmanager only re-sends the same alert instance (which the actioner dedupes), so a new
        instance (new ``startsAt``) is posted the way Alertmanager would after a flap.
        """
        alert = next(
            (a for a in self.alertmanager.alerts(ALERT_OVERLOAD) if a.labels.get("host") == HOST),
            None,
        )
        if alert is None:  # a PhaseError keeps the record and the report; StopIteration lost both
            raise PhaseError("the overload alert left Alertmanager before the second-wave probe")
        sample = self.latest()
        self.record.second_wave_cpu = None if sample is None else sample.cpu.get(HOST)
        labels = dict(alert.labels)
        payload = {
            "version": "4",
            "status": "firing",
            "receiver": "virtbalance",
            "groupKey": f'{{}}:{{alertname="{ALERT_OVERLOAD}", host="{HOST}"}}',
            "truncatedAlerts": 0,
            "groupLabels": {"alertname": ALERT_OVERLOAD, "host": HOST},
            "commonLabels": labels,
            "commonAnnotations": {},
            "externalURL": self.stack.alertmanager_url,
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {},
                    "startsAt": format_time(time.time()),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": alert.fingerprint,
                }
            ],
        }
        token = self.stack.token
        response = requests.post(
            f"{self.stack.actioner_url}/api/v1/alerts",
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        response.raise_for_status()
        plan_id = str(response.json()["queued_plan"])
        self.record.second_wave = wait_for(
            "the actioner to finish the second-wave plan",
            lambda: next(
                (p for p in self.actioner.plans() if p.id == plan_id and p.finished), None
            ),
            timeout=60,
        )

    def execute(self) -> None:
        policy = self.stack.policy
        self.known_plans = {p.id for p in self.actioner.plans()}
        # The spike starts from the scenario's idle hv2 (~15%): held SPIKE_SECONDS, the 30 s rate
        # window keeps the ratio above 75% for only about SPIKE_SECONDS - 12 s, well under `for:`.
        self.phase("spike")
        set_loads(self.lab, OVERLOAD)
        time.sleep(SPIKE_SECONDS)
        self.phase("spike_over")
        set_loads(self.lab, IDLE)
        wait_for(
            "the spike to leave the rate window",
            lambda: (
                (s := self.latest()) is not None
                and s.at > self.record.phases["spike_over"] + policy.rate_window
                and s.cpu.get(HOST, 1.0) < policy.cpu_high
                and HOST not in s.alerts
            ),
            timeout=policy.rate_window + policy.overload_for + 30,
        )
        # A little more, so a late firing transition would still be seen in this phase.
        time.sleep(policy.overload_for / 3)

        self.phase("calm")
        set_loads(self.lab, CALM)
        # Long enough for the rate window to fill and for `for:` to elapse, were the host over.
        time.sleep(policy.rate_window + policy.overload_for * 0.5)

        self.phase("freeze")
        silence = self.alertmanager.add_silence(
            {"alertname": ALERT_MIGRATION},
            duration=3600,
            comment="e2e: freeze before the overload",
            now=time.time(),
        )
        self.phase("overload")
        set_loads(self.lab, OVERLOAD)
        wait_for(
            "the overload alert to fire",
            lambda: (s := self.latest()) is not None and s.alerts.get(HOST) == "firing",
            timeout=policy.rate_window + policy.overload_for + 60,
        )
        self.phase("firing")
        self.record.firing_at = wait_for(
            "Alertmanager to hold the firing alert",
            lambda: next(
                (
                    a.starts_at
                    for a in self.alertmanager.alerts(ALERT_OVERLOAD)
                    if a.labels.get("host") == HOST
                ),
                None,
            ),
            timeout=30,
        )
        frozen = wait_for(
            "the actioner to answer the notification with a frozen plan",
            lambda: [p for p in self.new_plans() if p.finished],
            timeout=60,
        )
        self.record.frozen_plans = frozen
        # One more repeat of the notification while frozen: still nothing may move.
        time.sleep(float(self.stack.timings.repeat_interval.rstrip("s")) + 2)
        self.record.frozen_plans = [p for p in self.new_plans() if p.finished]
        self.known_plans |= {p.id for p in self.record.frozen_plans}

        self.phase("unfreeze")
        self.alertmanager.expire_silence(silence)
        wait_for(
            "a migration after the silence expired",
            lambda: any(m.started_at for p in self.new_plans() for m in p.migrations),
            timeout=float(self.stack.timings.repeat_interval.rstrip("s")) * 2 + 30,
        )
        self.phase("migrating")
        wait_for(
            "the plan to finish",
            lambda: (plans := self.new_plans()) and all(p.finished for p in plans),
            timeout=180,
        )
        self.phase("moved")
        self.probe_second_wave()
        metrics = self.actioner.metrics()
        self.record.cooldowns_after_move = {
            dict(labels)["kind"]: value
            for (name, labels), value in metrics.items()
            if name == "virtbalance_cooldowns_active"
        }
        wait_for(
            "the alert to resolve",
            lambda: (
                (s := self.latest()) is not None
                and s.at > self.record.phases["moved"]
                and HOST not in s.alerts
            ),
            timeout=policy.rate_window + 90,
        )
        self.phase("resolved")
        self.record.resolved_at = self.record.phases["resolved"]
        # Alertmanager re-sends for a while after the rates lag: give the actioner every chance to
        # start a second wave, then check it did not.
        time.sleep(float(self.stack.timings.group_interval.rstrip("s")) * 2)
        self.record.plans = self.new_plans()
        self.phase("end")


@pytest.fixture(scope="session")
def rebalanced_stack(lab: Lab) -> Iterator[RebalancedStack]:
    """The stack on the session lab after one full pass: overload, freeze, migration, resolution."""
    lab.reset()
    stack = start(lab, timings=Timings(repeat_interval="15s"))
    record = Record(
        chunks=scenario_chunks(lab),
        domains=[d.name for d in lab.scenario.domains],
        cpu_group=bool(cpu_share.members(lab.names)),
    )
    run = Run(stack, record)
    for (
        silence
    ) in run.alertmanager.active_silences():  # Alertmanager keeps silences across restarts
        run.alertmanager.expire_silence(str(silence["id"]))
    placement = Poller("placement", PLACEMENT_POLL, run.place, record.poll_errors)
    sampler = Poller("prometheus", SAMPLE_POLL, run.sample, record.poll_errors)
    try:
        wait_for(
            "a CPU ratio for every host in Prometheus",
            lambda: set(run.prometheus.by_host(RECORD_CPU)) >= set(stack.hosts),
            timeout=90,
        )
        placement.start()
        sampler.start()
        try:
            run.execute()
        except PhaseError as exc:
            last = list(record.phases)[-1] if record.phases else "setup"
            record.failure = f"after phase {last!r}: {exc}"
            record.plans = run.new_plans()
        finally:
            placement.stop()
            sampler.stop()
        record.final_placement = lab.running_hosts()
        record.persistent = persistence(lab)
        report(record, stack)
        yield RebalancedStack(stack, record)
    finally:
        stop(stack)
        try:
            lab.reset()
        except Exception as exc:  # the next user of the session lab resets again; say why here
            print(f"e2e: resetting the lab after the run failed: {exc!r}")


def report(record: Record, stack: Stack) -> None:
    """Print the timings (pytest shows them with -s, and in the log of a failing run)."""
    lines = ["", "e2e run:" + (f" STOPPED EARLY {record.failure}" if record.failure else "")]
    lines.append(f"  lab CPU group: {'yes' if record.cpu_group else 'NO (guests unshielded)'}")
    origin = record.phases["spike"]
    for name, at in record.phases.items():
        lines.append(f"  {name:<10} +{at - origin:6.1f}s")
    if "calm" in record.phases and "freeze" in record.phases:
        calm = [s.cpu[HOST] for s in record.samples_between("calm", "freeze") if HOST in s.cpu]
        if calm:
            lines.append(
                f"  calm: {HOST} CPU max {max(calm):.3f}, median {statistics.median(calm):.3f}"
            )
    start_ = record.first_migration_start
    if record.firing_at is not None:
        lines.append(f"  alert firing (startsAt)      +{record.firing_at - origin:6.1f}s")
    if start_ is not None:
        lines.append(f"  first migration start        +{start_ - origin:6.1f}s")
        lines.append(f"  silence expired -> migration  {start_ - record.phases['unfreeze']:6.1f}s")
        acting = [p for p in record.plans if p.migrations]
        if acting:
            lines.append(f"  notification -> migration     {start_ - acting[0].created_at:6.1f}s")
    # why the planner chose its moves (the actioner's state goes with the lab)
    for plan in record.plans:
        if plan.migrations:
            lines.append(f"  plan {plan.id} {plan.outcome}: {plan.detail} {plan.unresolved}")
    for m in record.migrations:
        began = "" if m.started_at is None else f" from +{m.started_at - origin:.1f}s"
        lines.append(
            f"  {m.domain} {m.chunk} {m.source}->{m.destination} {m.state} {m.duration}{began}"
        )
    lines.append(
        f"  placement polls: {len(record.placements)}, poll errors: {len(record.poll_errors)}"
    )
    if len(record.placements) > 1:
        gap, at = max((b[0] - a[0], a[0]) for a, b in itertools.pairwise(record.placements))
        lines.append(f"  longest placement gap {gap:.2f}s, from +{at - origin:.1f}s")
    print("\n".join(lines))
