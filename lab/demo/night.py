"""The night demo: light load, HostUnderutilized fires, consolidation empties a host that could be switched off."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TextIO

from virtbalance.contract import ALERT_UNDERUTILIZED, HOST_EMPTIED, LABEL_HOST, RECORD_CPU
from virtbalance.lab.api import Lab
from virtbalance.lab.demo.actioner_view import ActionerReader, PlanView
from virtbalance.lab.demo.clients import Prometheus, ServiceError
from virtbalance.lab.demo.narrator import percent


@dataclass
class NightStory:
    """What the night demo saw: where the guests ran, the alert, the consolidate plan, the emptied hosts."""

    started_at: float
    placement_before: dict[str, str]
    cpu_before: dict[str, float]
    firing_at: float | None = None
    plan: PlanView | None = None
    emptied: tuple[str, ...] = ()
    placement_after: dict[str, str] = field(default_factory=dict)
    cpu_after: dict[str, float] = field(default_factory=dict)


def emptied_hosts(reader: ActionerReader) -> tuple[str, ...]:
    """The hosts the actioner marks as emptied (``virtbalance_host_emptied == 1``)."""
    return tuple(
        sorted(
            dict(labels)[LABEL_HOST]
            for (name, labels), value in reader.metrics().items()
            if name == HOST_EMPTIED and value == 1
        )
    )


def watch_night(
    lab: Lab, prometheus: Prometheus, reader: ActionerReader, out: TextIO, timeout: float
) -> NightStory:
    """Narrate until a consolidate plan has finished and left a host marked emptied (or timeout)."""
    started = time.monotonic()

    def say(text: str) -> None:
        out.write(f"[{time.monotonic() - started:6.1f}s] {text}\n")
        out.flush()

    story = NightStory(time.time(), lab.placement(), prometheus.by_host(RECORD_CPU))
    seen: set[tuple[str, str]] = set()
    told: set[str] = set()
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            for alert in prometheus.alerts(ALERT_UNDERUTILIZED):
                key = (alert.labels.get(LABEL_HOST, ""), alert.state)
                if key not in seen:
                    seen.add(key)
                    say(
                        f"{ALERT_UNDERUTILIZED} {alert.state} for {key[0]} (cpu {percent(alert.value)})"
                    )
                    if alert.state == "firing" and story.firing_at is None:
                        story.firing_at = time.time()
            for plan in reader.plans():
                if plan.mode != "consolidate" or plan.id in told or not plan.finished:
                    continue
                told.add(plan.id)
                say(f"consolidate plan {plan.id}: {plan.outcome} ({plan.detail})")
                for m in plan.migrations:
                    say(f"  {m.domain} ({m.chunk}) {m.source} -> {m.destination}: {m.state}")
                if plan.migrations:
                    story.plan = plan
            story.emptied = emptied_hosts(reader)
        except ServiceError as exc:
            say(f"(a service did not answer: {exc})")
        if story.emptied and story.plan is not None:
            break
        time.sleep(2.0)
    story.placement_after = lab.placement()
    story.cpu_after = prometheus.by_host(RECORD_CPU)
    return story


def night_summary(story: NightStory, hosts: list[str]) -> str:
    """The table printed at the end of the night demo."""
    lines = ["", "Summary", "=======", ""]
    lines.append(
        f"{'host':<8} {'CPU before':>10} {'CPU after':>10} {'guests before':>14} {'guests after':>13}  state"
    )
    for name in hosts:
        before = sum(1 for h in story.placement_before.values() if h == name)
        after = sum(1 for h in story.placement_after.values() if h == name)
        state = "emptied: could be powered off" if name in story.emptied else "running"
        lines.append(
            f"{name:<8} {percent(story.cpu_before.get(name)):>10} "
            f"{percent(story.cpu_after.get(name)):>10} {before:>14} {after:>13}  {state}"
        )
    lines.append("")
    if story.plan is None:
        lines.append("no consolidation happened")
    else:
        moved = ", ".join(f"{m.domain} {m.source}->{m.destination}" for m in story.plan.migrations)
        lines.append(f"consolidate plan {story.plan.id}: {moved}")
    for name in story.emptied:
        lines.append(
            f"{name} runs nothing now: it could be powered off "
            f'({HOST_EMPTIED}{{host="{name}"}} = 1; deploy/power-hook.sh is an example of a hook that does)'
        )
    if story.firing_at is not None and story.plan is not None:
        last = max((m.finished_at or 0.0) for m in story.plan.migrations)
        lines.append(f"{'alert firing -> host emptied':<38} {last - story.firing_at:.1f}s")
    return "\n".join(lines) + "\n"
