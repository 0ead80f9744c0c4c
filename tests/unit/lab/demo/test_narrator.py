"""The demo's narration and summary, driven by a scripted timeline of service answers."""

from __future__ import annotations

import io

import pytest

from tests.fixtures.exporter.fake_libvirt import FakeClock
from virtbalance.lab.demo.actioner_view import ActionerReader, PlanView, parse_plan
from virtbalance.lab.demo.clients import (
    Alertmanager,
    NotifiedAlert,
    Prometheus,
    RuleAlert,
    ServiceError,
    parse_time,
)
from virtbalance.lab.demo.narrator import HostFigures, Narrator, bar, summary

HOSTS = ["hv1", "hv2", "hv3"]
T0 = 1_000_000.0


class Timeline:
    """What each service answers at a given second after T0."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    @property
    def t(self) -> float:
        return self.clock.now - T0

    def cpu(self) -> dict[str, float]:
        if self.t < 3:
            return {"hv1": 0.30, "hv2": 0.10, "hv3": 0.05}
        if self.t < 14:
            return {"hv1": 0.92, "hv2": 0.10, "hv3": 0.05}
        return {"hv1": 0.45, "hv2": 0.55, "hv3": 0.05}

    def alert_state(self) -> str | None:
        if 4 <= self.t < 8:
            return "pending"
        if 8 <= self.t < 18:
            return "firing"
        return None

    def plans(self) -> dict:
        """The actioner's GET /api/v1/plans answer."""
        if self.t < 10:
            return {"plans": [], "in_progress": {}}
        running = self.t < 13
        members = []
        for step, name in enumerate(("a1", "a2")):
            members.append(
                {
                    "id": step + 1,
                    "plan_id": 7,
                    "step": step,
                    "domain": name,
                    "chunk": "lan1",
                    "source": "hv1",
                    "destination": "hv2",
                    "reason": "hv1 CPU 92% > 75%",
                    "state": "running" if running else "done",
                    "created": T0 + 10,
                    "started": T0 + 10.5,
                    "finished": None if running else T0 + 12.5,
                    "error": "",
                }
            )
        plan = {
            "id": 7,
            "created": T0 + 10,
            "updated": T0 + 12.5,
            "trigger": "alert",
            "mode": "relieve",
            "hosts": ["hv1"],
            "group_key": "{}:{}",
            "state": "running" if running else "executed",
            "detail": "" if running else "1 chunk moved",
            "plan": {"mode": "relieve", "migrations": [], "unresolved": [], "hosts_after": []},
            "cancel_requested": False,
            "migrations": members,
        }
        progress = {"a1": {"percent": 50.0}, "a2": {"percent": 40.0}} if running else {}
        return {"plans": [plan], "in_progress": progress}

    def split_totals(self) -> tuple[int, float]:
        return (3, 1.5) if self.t < 13 else (4, 1.81)


class FakePrometheus(Prometheus):
    def __init__(self, timeline: Timeline) -> None:
        super().__init__("http://prometheus")
        self.timeline = timeline

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        values = self.timeline.cpu() if "cpu" in promql else {"hv1": 0.2, "hv2": 0.1, "hv3": 0.1}
        return [({"host": host}, value) for host, value in values.items()]

    def alerts(self, alertname: str | None = None) -> list[RuleAlert]:
        state = self.timeline.alert_state()
        if state is None:
            return []
        return [
            RuleAlert({"alertname": "HostSustainedOverload", "host": "hv1"}, state, T0 + 4, 0.9)
        ]


class FakeAlertmanager(Alertmanager):
    def __init__(self) -> None:
        super().__init__("http://alertmanager")

    def alerts(self, alertname: str | None = None) -> list[NotifiedAlert]:
        return [
            NotifiedAlert(
                {"alertname": "HostSustainedOverload", "host": "hv1"}, "active", T0 + 8.2, "f"
            )
        ]


class FakeActioner(ActionerReader):
    def __init__(self, timeline: Timeline) -> None:
        super().__init__("http://actioner")
        self.timeline = timeline

    def plans(self, limit: int = 50) -> list[PlanView]:
        body = self.timeline.plans()
        return [parse_plan(item, body["in_progress"]) for item in body["plans"]]

    def split_totals(self) -> tuple[int, float]:
        return self.timeline.split_totals()


def narrated(
    timeline: type[Timeline] = Timeline, prometheus: type[FakePrometheus] = FakePrometheus
) -> tuple[Narrator, io.StringIO, FakeClock]:
    """A narrator on a fake clock over ``timeline``, writing into the returned buffer."""
    clock = FakeClock(T0)
    events = timeline(clock)
    out = io.StringIO()
    narrator = Narrator(
        prometheus(events),
        FakeAlertmanager(),
        FakeActioner(events),
        hosts=HOSTS,
        cpu_high=0.75,
        out=out,
        clock=clock,
        sleep=clock.advance,
    )
    return narrator, out, clock


@pytest.fixture
def run():
    narrator, out, clock = narrated()
    before = narrator.figures()
    story = narrator.watch("hv1", T0 + 3, before, timeout=60)
    return story, out.getvalue(), clock


def test_the_story_has_every_step_in_order(run):
    story, text, _ = run
    assert story.pending_at == T0 + 4
    assert story.firing_at == T0 + 8.2  # Alertmanager's startsAt, not when the poll saw it
    assert story.resolved_at == T0 + 18
    assert story.relief_at == T0 + 14
    steps = [
        "PENDING",
        "FIRING",
        "plan 7:",
        "move chunk lan1 (a1, a2) hv1 -> hv2",
        "50%",
        "apart for 0.31s",
        "plan 7 finished: executed",
        "relief",
        "RESOLVED",
    ]
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions)


def test_times_between_steps(run):
    story, _, _ = run
    assert story.firing_to_first_migration == pytest.approx(2.3)
    assert story.overload_to_relief == pytest.approx(11.0)
    assert [m.duration for m in story.migrations] == [pytest.approx(2.0), pytest.approx(2.0)]


def test_stops_once_resolved_and_every_plan_finished(run):
    _, _, clock = run
    assert clock.now - T0 == pytest.approx(18, abs=1.01)


def test_summary_table(run):
    story, _, _ = run
    text = summary(story, HOSTS, 0.75)
    rows = {
        line.split()[0]: line.split()[1:] for line in text.splitlines() if line.startswith("hv")
    }
    # CPU before = when the alert fired (not before the load rose), after = when it resolved.
    assert rows["hv1"][:2] == ["92%", "45%"]
    assert "a1           lan1" in text
    assert "chunk lan1: split window 0.31s" in text
    lines = dict(line.rsplit(None, 1) for line in text.splitlines() if "->" in line)
    assert lines["alert firing -> first migration"] == "2.3s"
    assert lines["load raised -> host under threshold"] == "11.0s"
    assert lines["load raised -> alert resolved"] == "15.0s"


def test_gives_up_at_the_timeout_and_says_so():
    narrator, out, _ = narrated()
    story = narrator.watch("hv1", T0, HostFigures(T0, {}, {}), timeout=6)
    assert story.firing_at is None
    assert "gave up waiting after 6s" in out.getvalue()
    assert "did not happen" in summary(story, HOSTS, 0.75)


def test_bar_and_time_parsing():
    assert bar(0.5, width=10) == "[#####.....]"
    assert bar(1.7, width=4) == "[####]"
    assert parse_time("2026-01-02T03:04:05.123456789Z") == pytest.approx(1767323045.123456)
    assert parse_time("2026-01-02T03:04:05+01:00") == pytest.approx(1767319445.0)


def test_a_frozen_plan_without_migrations_is_finished():
    plan = parse_plan(
        {
            "id": 2,
            "created": T0,
            "state": "frozen",
            "detail": "frozen: a1->hv2",
            "hosts": ["hv1"],
            "plan": None,
            "migrations": [],
        }
    )
    assert plan.finished
    assert plan.migrations == ()
    assert plan.outcome == "frozen"


class DownPrometheus(FakePrometheus):
    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        raise ServiceError("connection refused")


def test_a_service_that_stays_down_is_reported_once_then_given_up():
    narrator, out, clock = narrated(prometheus=DownPrometheus)
    story = narrator.watch("hv1", T0, HostFigures(T0, {}, {}), timeout=600)
    text = out.getvalue()
    assert text.count("did not answer") == 1
    assert "giving up: no answer for 60s" in text
    assert clock.now - T0 < 70
    assert story.after is None


class BusyTimeline(Timeline):
    """The guests never get the CPU their dials ask for: the host plateaus under the threshold."""

    def cpu(self) -> dict[str, float]:
        return {"hv1": 0.40, "hv2": 0.10, "hv3": 0.05}

    def alert_state(self) -> str | None:
        return None


def test_a_host_that_never_reaches_the_threshold_is_explained_once():
    narrator, out, _ = narrated(BusyTimeline)
    narrator.watch("hv1", T0, HostFigures(T0, {}, {}), timeout=200)
    text = out.getvalue()
    assert text.count("stays at 40%, under the 75% threshold") == 1
    assert "wait 0.40 cores for a real CPU" in text


class UnresolvedTimeline(Timeline):
    """The alert fires and stays; the actioner's only plan ends unresolved."""

    def alert_state(self) -> str | None:
        return "firing" if self.t >= 8 else None

    def plans(self) -> dict:
        if self.t < 10:
            return {"plans": [], "in_progress": {}}
        plan = {
            "id": 3,
            "created": T0 + 10,
            "updated": T0 + 10.5,
            "trigger": "alert",
            "mode": "relieve",
            "hosts": ["hv1"],
            "group_key": "{}:{}",
            "state": "unresolved",
            "detail": "hv1: chunk lan1 fits no host",
            "plan": {
                "unresolved": [
                    {"host": "hv1", "resource": "cpu", "reason": "chunk lan1 fits no host"}
                ]
            },
            "cancel_requested": False,
            "migrations": [],
        }
        return {"plans": [plan], "in_progress": {}}


def test_an_unresolved_plan_is_told_once_and_the_narration_ends():
    narrator, out, clock = narrated(UnresolvedTimeline)
    story = narrator.watch("hv1", T0, HostFigures(T0, {}, {}), timeout=600)
    text = out.getvalue()
    assert text.count("chunk lan1 fits no host") == 1
    assert "plan 3: unresolved, no migration" in text
    assert "made no further plan for 90s" in text
    assert clock.now - T0 < 110
    assert story.resolved_at is None


class BusyPeersPrometheus(FakePrometheus):
    """hv2's guests wait 0.25 cores for a real CPU, hv3's hardly at all."""

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        if "delay" in promql:
            return [({"host": h}, w) for h, w in {"hv1": 0.5, "hv2": 0.25, "hv3": 0.02}.items()]
        return super().query(promql)


def test_an_unresolved_plan_on_a_busy_machine_names_the_peers_whose_guests_wait_for_a_cpu():
    narrator, out, _ = narrated(UnresolvedTimeline, prometheus=BusyPeersPrometheus)
    narrator.watch("hv1", T0, HostFigures(T0, {}, {}), timeout=600)
    text = out.getvalue()
    # the overloaded host's own wait is its overload, and hv3's 0.02 cores is an idle host's
    assert "wait for a real CPU (hv2 0.25 cores)" in text
    assert text.index("made no further plan") < text.index("wait for a real CPU (hv2")


def test_an_unresolved_plan_on_a_quiet_machine_blames_no_contention():
    class QuietPrometheus(FakePrometheus):
        def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
            if "delay" in promql:
                return [({"host": h}, 0.01) for h in HOSTS]
            return super().query(promql)

    narrator, out, _ = narrated(UnresolvedTimeline, prometheus=QuietPrometheus)
    narrator.watch("hv1", T0, HostFigures(T0, {}, {}), timeout=600)
    assert "wait for a real CPU" not in out.getvalue()
