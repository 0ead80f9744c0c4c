"""``virtbalance demo up`` / ``down``: the whole loop on a lab, narrated, then left running to explore."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from virtbalance.contract import (
    ALERT_OVERLOAD,
    ALERT_UNDERUTILIZED,
    DOMAIN_CHUNK_INFO,
    LABEL_CHUNK,
    LABEL_DOMAIN,
    LABEL_HOST,
    RECORD_CPU,
)
from virtbalance.lab.api import Lab
from virtbalance.lab.demo.actioner_view import ActionerReader
from virtbalance.lab.demo.clients import Prometheus, ServiceError
from virtbalance.lab.demo.narrator import Narrator, Story, summary
from virtbalance.lab.demo.night import night_summary, watch_night
from virtbalance.lab.demo.overload import DemoScript, Overload, script_for
from virtbalance.lab.demo.stack import (
    Backend,
    Stack,
    StackError,
    start,
    stop_actioner,
)
from virtbalance.lab.errors import LabError
from virtbalance.lab.naming import LabNames
from virtbalance.mixin.config import load_policy

# Loaded host's demand ratio: clearly above the lab's cpu_high (75%), so contention on a shared
# machine cannot keep it under the threshold, and each of two loaded chunks fits on an idle peer alone.
OVERLOAD_RATIO = 0.92
# Scenarios whose story is consolidation (HostUnderutilized routed to the actioner), not an overload.
NIGHT_SCENARIOS = frozenset({"night"})


def chunks_by_host(prometheus: Prometheus) -> dict[str, dict[str, list[str]]]:
    """host -> chunk id -> member domains, as the exporters report them."""
    out: dict[str, dict[str, list[str]]] = {}
    for labels, _ in prometheus.query(DOMAIN_CHUNK_INFO):
        out.setdefault(labels[LABEL_HOST], {}).setdefault(labels[LABEL_CHUNK], []).append(
            labels[LABEL_DOMAIN]
        )
    return out


def wait_for_metrics(stack: Stack, timeout: float, out: TextIO) -> None:
    """Wait until Prometheus has a CPU ratio for every host (the rate window needs a few scrapes)."""
    deadline = time.monotonic() + timeout
    wanted = set(stack.hosts)
    while time.monotonic() < deadline:
        try:
            have = set(stack.prometheus.by_host(RECORD_CPU))
        except ServiceError:
            have = set()
        if wanted <= have:
            return
        time.sleep(1.0)
    raise StackError(
        f"Prometheus has no {RECORD_CPU} for {', '.join(sorted(wanted - have))} after {timeout:.0f}s"
    )


def apply_overload(lab: Lab, overload: Overload) -> float:
    """Turn the load dials; return the host's expected CPU demand ratio (guest loads only)."""
    for domain, percent in sorted(overload.loads.items()):
        lab.set_load(domain, percent)
    placement = lab.placement()
    loads = lab.loads()
    on_host = sum(loads.get(d, 0) for d, h in placement.items() if h == overload.host)
    return on_host / 100.0 / overload.cpus


def gather(lab: Lab, script: DemoScript) -> None:
    """The staging moves, concurrently (members of one chunk must not stay apart for long)."""
    placement = lab.placement()
    moves = {d: h for d, h in script.gather.items() if placement[d] != h}
    if moves:
        with ThreadPoolExecutor(max_workers=len(moves)) as pool:
            list(pool.map(lambda item: lab.migrate(*item), sorted(moves.items())))


def wait_for_calm(stack: Stack, narrator: Narrator, timeout: float) -> None:
    """After staging moves, wait until no host is over the threshold and no alert is pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        figures = narrator.figures()
        alerts = stack.prometheus.alerts(ALERT_OVERLOAD)
        if not alerts and all(v <= stack.policy.cpu_high for v in figures.cpu.values()):
            return
        time.sleep(2.0)
    raise StackError(f"the lab did not calm down within {timeout:.0f}s after the staging moves")


def print_urls(stack: Stack, out: TextIO) -> None:
    metrics = (
        f"  VictoriaMetrics   {stack.prometheus_url}\n  vmalert           {stack.rules_url}\n"
        if stack.backend is Backend.VICTORIAMETRICS
        else f"  Prometheus        {stack.prometheus_url}\n"
    )
    out.write(
        "\nThe stack is still running:\n"
        f"{metrics}"
        f"  Alertmanager      {stack.alertmanager_url}\n"
        f"  actioner plans    {stack.actioner_url}/api/v1/plans\n"
        f"  actioner metrics  {stack.actioner_metrics_url}\n"
        f"  actioner log      {stack.actioner_log}\n"
        f"  lab status        .venv/bin/virtbalance lab status\n"
        "Stop everything with: make demo-down\n"
    )
    out.flush()


def demo_up(
    scenario: str,
    lab_id: int,
    out: TextIO,
    *,
    timeout: float = 600.0,
    policy_file: Path | None = None,
    backend: Backend = Backend.PROMETHEUS,
) -> int:
    """Bring the stack up, overload a host, narrate the rebalancing; 0 when the host was relieved.

    ``policy_file`` (over the lab profile) replaces the lab policy for the rules and the actioner;
    ``backend`` chooses Prometheus or VictoriaMetrics with vmalert for the metrics and the rules.
    """
    if policy_file is not None:
        # Validate before anything starts: a bad file fails here with every problem listed.
        load_policy(policy_file, "lab")
    out.write(f"virtbalance demo: scenario {scenario}, lab {lab_id}\n")
    out.write("Bringing up the lab (real libvirt hosts, real QEMU guests)...\n")
    out.flush()
    lab = Lab.up(scenario, lab_id)
    out.write(f"  hosts: {', '.join(f'{h.name} ({h.cpus:g} CPUs)' for h in lab.hosts)}\n")
    metrics = "VictoriaMetrics + vmalert" if backend is Backend.VICTORIAMETRICS else "Prometheus"
    out.write(f"Starting exporters, {metrics} (lab rules), Alertmanager and the actioner...\n")
    out.flush()
    night = lab.scenario.name in NIGHT_SCENARIOS
    if policy_file is not None:
        out.write(f"  policy: {policy_file} over the lab profile\n")
    stack = start(lab, policy_file=policy_file, backend=backend, consolidate=night)
    if night:
        return _night(lab, stack, out, timeout)
    narrator = Narrator(
        stack.prometheus,
        stack.alertmanager,
        ActionerReader(stack.actioner_url, stack.token),
        hosts=stack.hosts,
        cpu_high=stack.policy.cpu_high,
        out=out,
    )
    narrator.say("waiting for the first CPU rates in Prometheus")
    wait_for_metrics(stack, timeout=120.0, out=out)
    cpus = {host.name: float(host.cpus) for host in lab.hosts}
    script = script_for(lab.scenario.name, chunks_by_host(stack.prometheus), cpus, OVERLOAD_RATIO)
    overload = script.overload
    narrator.say(f"the scene: {script.story}")
    if script.gather:
        narrator.say(f"setting the scene: moving {', '.join(sorted(script.gather))} by hand first")
        gather(lab, script)
        wait_for_calm(stack, narrator, timeout=120.0)
    before = narrator.figures()
    narrator.say(
        f"raising the load on {overload.host}: "
        + ", ".join(f"{d} to {p}% of a core" for d, p in sorted(overload.loads.items()))
    )
    overload_at = time.time()
    expected = apply_overload(lab, overload)
    narrator.say(
        f"{overload.host} should now demand about {expected:.0%} of its {overload.cpus:g} CPU(s); "
        f"the alert needs it above {stack.policy.cpu_high:.0%} for "
        f"{stack.policy.overload_for:g}s (rates over {stack.policy.rate_window:g}s)"
    )
    story = narrator.watch(overload.host, overload_at, before, timeout=timeout)
    out.write(summary(story, stack.hosts, stack.policy.cpu_high))
    print_urls(stack, out)
    return 0 if _relieved(story) else 1


def _night(lab: Lab, stack: Stack, out: TextIO, timeout: float) -> int:
    """Wait for HostUnderutilized, watch the consolidation; 0 when a host was emptied."""
    out.write(
        f"The night: every guest lightly loaded. {ALERT_UNDERUTILIZED} fires for a host below "
        f"{stack.policy.cpu_low:.0%} CPU for {stack.policy.underutilized_for:g}s; Alertmanager sends it "
        "to the actioner inside its 'night' time interval, and the actioner consolidates.\n"
    )
    wait_for_metrics(stack, timeout=120.0, out=out)
    reader = ActionerReader(stack.actioner_url, stack.token)
    story = watch_night(lab, stack.prometheus, reader, out, timeout)
    out.write(night_summary(story, stack.hosts))
    print_urls(stack, out)
    return 0 if story.emptied else 1


def _relieved(story: Story) -> bool:
    return story.resolved_at is not None and any(m.state == "done" for m in story.migrations)


def demo_down(lab_id: int, out: TextIO) -> int:
    """Stop the actioner and bring the lab down; safe to run twice and after a crash."""
    state_dir = LabNames(lab_id).state_dir
    if stop_actioner(state_dir / "stack"):
        out.write("stopped the actioner\n")
    try:
        lab = Lab.attach(lab_id)
    except LabError:
        # Not up, or half up after a crash: remove whatever is left of it.
        found = Lab.teardown(lab_id)
        out.write(f"lab {lab_id}: {'removed leftovers' if found else 'nothing was running'}\n")
        return 0
    lab.down()
    out.write(f"lab {lab_id} is down\n")
    return 0
