"""Generate the Prometheus rule file (recording rules and alerts) from a policy, deterministically."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virtbalance.durations import format_duration
from virtbalance.errors import ConfigError
from virtbalance.policy import Policy
from virtbalance.yamlfile import read_yaml

# Recording rules: the names docs/architecture.md fixes for the alerts and the dashboards.
RECORD_CPU_DEMAND = "host:libvirt_cpu_demand:ratio"
RECORD_NODE_CPU = "host:libvirt_node_cpu_utilisation:ratio"
RECORD_CPU = "host:libvirt_cpu:ratio"
RECORD_MEMORY = "host:libvirt_memory_used:ratio"
RECORD_IMMOVABLE = "host:libvirt_cpu_immovable:cores"

ALERT_OVERLOAD = "HostSustainedOverload"
ALERT_UNDERUTILIZED = "HostUnderutilized"
ALERT_IMBALANCED = "HostsImbalanced"
ALERT_HOT = "HostChronicallyHot"
ALERT_EXPORTER_DOWN = "LibvirtExporterDown"
ALERT_EXPORTER_ABSENT = "LibvirtExporterAbsent"
ALERT_LIBVIRT_DOWN = "LibvirtUnreachable"
ALERT_MIGRATIONS_FAILING = "VirtBalanceMigrationsFailing"
ALERT_UNPLACEABLE = "VirtBalanceChunkUnplaceable"
ALERT_AMBIGUOUS = "VirtBalanceDomainAmbiguous"

# The actioner's mark on a host it emptied for power-off (docs/architecture.md): such a host is off on
# purpose, so it counts neither as idle, nor in the spread, nor as a blind spot.
METRIC_EMPTIED = "virtbalance_host_emptied"

DEFAULT_RUNBOOK_BASE = "https://github.com/virtbalance/virtbalance/blob/main/docs/runbook.md"

PROFILES = ("default", "lab")

# The lab's hosts share one machine: node CPU is the same for all of them, so only the VMs' own demand
# tells them apart. Its Prometheus scrapes every few seconds, so short windows still hold many samples.
LAB_PROFILE: Mapping[str, Any] = {
    "cpu_signal": "demand",
    "rate_window": "30s",
    "overload_for": "30s",
    "underutilized_for": "2m",
    "balance_for": "1m",
    "exporter_down_for": "30s",
    "migration_failure_window": "5m",
    # The lab's Prometheus scrape job (lab/monitoring.py).
    "exporter_job": "virtbalance-exporter",
}

# Time a guest spends waiting on IO is idle CPU: it is free for another VM.
_IDLE_MODES = "idle|iowait"
_FAILED_RESULTS = "failed|rolled_back|timeout"

_SIGNAL_TEXT = {
    "demand": "the VMs' CPU demand",
    "node": "node CPU utilisation (VM demand where the node's CPU time is not exported)",
    "max": "the larger of the VMs' CPU demand and node CPU utilisation",
}


@dataclass(frozen=True)
class Rule:
    """One recording rule or alert, with the comment that explains it in the generated file."""

    comment: str
    expr: str
    record: str | None = None
    alert: str | None = None
    for_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    """A rule group: rules in one group are evaluated in order, so alerts see this round's records."""

    name: str
    comment: str
    rules: tuple[Rule, ...]


def profile_policy(
    profile: str, overrides: Mapping[str, Any] | None = None, source: str = "policy"
) -> Policy:
    """The policy of a profile with a policy file's values on top; raises ConfigError on bad input."""
    if profile not in PROFILES:
        raise ConfigError(
            source, [f"profile: must be one of {', '.join(PROFILES)}, got {profile!r}"]
        )
    base: dict[str, Any] = dict(LAB_PROFILE) if profile == "lab" else {}
    if overrides is not None:
        base.update(overrides)
    policy = Policy.from_mapping(base, source=source)
    problems = generation_problems(policy)
    if problems:
        raise ConfigError(source, problems)
    return policy


def load_policy(path: str | Path | None, profile: str = "default") -> Policy:
    """Read a policy file over a profile (``None``: the profile alone); every problem in one ConfigError."""
    if path is None:
        return profile_policy(profile, source=f"profile {profile}")
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(str(path), [f"expected a mapping, got {type(data).__name__}"])
    return profile_policy(profile, data, source=str(path))


def generation_problems(policy: Policy) -> list[str]:
    """What makes a valid policy unusable for rules: a rate needs a window of some length."""
    problems = []
    if policy.rate_window < 1:
        problems.append(
            f"rate_window: must be at least 1s for rate(), got {format_duration(policy.rate_window)}"
        )
    if policy.migration_failure_window < 1:
        problems.append(
            "migration_failure_window: must be at least 1s for increase(), "
            f"got {format_duration(policy.migration_failure_window)}"
        )
    if policy.hot_window < 1:
        problems.append(
            "hot_window: must be at least 1s for a subquery, "
            f"got {format_duration(policy.hot_window)}"
        )
    return problems


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _awake(expr: str) -> str:
    """``expr`` without the hosts the actioner emptied (unchanged where its metric is not scraped)."""
    return f"{expr} unless on (host) ({METRIC_EMPTIED} == 1)"


def _runbook(base: str, alert: str) -> str:
    # GitHub and most renderers anchor a "## HostSustainedOverload" heading as #hostsustainedoverload.
    return f"{base}#{alert.lower()}"


def cpu_signal_expr(policy: Policy, demand: str, node: str) -> str:
    """The CPU signal the policy chose, from the demand and node expressions (record names or inline)."""
    if policy.cpu_signal == "demand":
        return demand
    if policy.cpu_signal == "node":
        # parenthesised: an alert compares it, and a comparison binds tighter than `or`
        return f"(\n  {_indent(node)}\n  or on (host)\n  {_indent(demand)}\n)"
    # max() over both skips a missing or NaN one: a host without node CPU time uses demand alone.
    # Each side gets its own `signal` label first, so `or` keeps both series of a host for max().
    return (
        "max by (host) (\n"
        f'  label_replace({_indent(demand)}, "signal", "demand", "", "")\n'
        "  or\n"
        f'  label_replace({_indent(node)}, "signal", "node", "", "")\n'
        ")"
    )


def _indent(expr: str, by: str = "  ") -> str:
    return expr.replace("\n", "\n" + by)


def recording_rules(policy: Policy) -> tuple[Rule, ...]:
    """The per-host series the alerts and dashboards read; every aggregation keeps ``host``."""
    window = format_duration(policy.rate_window)
    domain_cores = f"sum by (host) (rate(libvirt_domain_info_cpu_time_seconds_total[{window}]))"
    domain_waiting = f"sum by (host) (rate(libvirt_domain_vcpu_delay_seconds_total[{window}]))"
    # Capacity is a gauge per host: max, not sum, so a host scraped twice does not double its CPUs.
    cpus = "max by (host) (libvirt_node_cpus)"
    # Demand is what the VMs run plus what their vCPUs wait for a host CPU (VMware's "ready" time):
    # on a saturated host usage alone flattens at capacity and hides how much more the VMs want.
    # Hosts whose exporter reports no vCPU delay count their usage alone.
    domain_demand = (
        f"(\n    {domain_cores}\n    +\n    ({domain_waiting} or on (host) 0 * {domain_cores})\n  )"
    )
    demand = Rule(
        record=RECORD_CPU_DEMAND,
        comment=(
            "CPU the host's VMs demand (run plus wait for a host CPU), as a fraction of the host's CPUs\n"
            "(declared capacity where overridden).\n"
            "rate() handles counter resets (a VM restarting); a VM migrated away leaves within one rate window.\n"
            "A host with no running VM has a demand of 0 rather than no series at all."
        ),
        expr=(f"(\n  {domain_demand}\n  or on (host)\n  0 * {cpus}\n)\n/ on (host)\n{cpus}"),
    )
    node = Rule(
        record=RECORD_NODE_CPU,
        comment=(
            "Busy fraction of the node's CPU time, all processes included (not only VMs).\n"
            "Idle and iowait count as free. Absent for hosts whose exporter has no node CPU time."
        ),
        expr=(
            "1 - (\n"
            f'  sum by (host) (rate(libvirt_node_cpu_seconds_total{{mode=~"{_IDLE_MODES}"}}[{window}]))\n'
            "  / on (host)\n"
            f"  sum by (host) (rate(libvirt_node_cpu_seconds_total[{window}]))\n"
            ")"
        ),
    )
    signal_expr = cpu_signal_expr(policy, RECORD_CPU_DEMAND, RECORD_NODE_CPU)
    signal = Rule(
        record=RECORD_CPU,
        comment=(
            f"The CPU signal the policy chose (cpu_signal: {policy.cpu_signal}): "
            f"{_SIGNAL_TEXT[policy.cpu_signal]}.\nThe dashboards and the actioner's views read this one; the CPU alerts compute the same inline."
        ),
        expr=signal_expr,
    )
    memory = Rule(
        record=RECORD_MEMORY,
        comment=(
            "Fraction of the host's memory not available to new allocations.\n"
            "Clamped at 0: a declared capacity below the machine's real memory must not go negative."
        ),
        expr=(
            "clamp_min(\n"
            "  1 - (\n"
            "    max by (host) (libvirt_node_memory_available_bytes)\n"
            "    / on (host)\n"
            "    max by (host) (libvirt_node_memory_total_bytes)\n"
            "  ),\n"
            "  0\n"
            ")"
        ),
    )
    immovable = Rule(
        record=RECORD_IMMOVABLE,
        comment=(
            "CPU cores busy outside the VMs (hypervisor, QEMU overhead, other daemons): load no migration removes.\n"
            "Guest time is part of the node's user time, so the VMs' own CPU is subtracted from the busy time."
        ),
        expr=(
            "clamp_min(\n"
            f'  sum by (host) (rate(libvirt_node_cpu_seconds_total{{mode!~"{_IDLE_MODES}"}}[{window}]))\n'
            "  - on (host)\n"
            "  (\n"
            f"    {domain_cores}\n"
            "    or on (host)\n"
            f"    0 * {cpus}\n"
            "  ),\n"
            "  0\n"
            ")"
        ),
    )
    return (demand, node, signal, memory, immovable)


def _inline(records: Mapping[str, str], name: str) -> str:
    return f"(\n  {_indent(records[name])}\n)"


def host_alerts(policy: Policy, runbook_base: str, records: Mapping[str, str]) -> tuple[Rule, ...]:
    """Overload (what the actioner acts on) and underutilisation (consolidation candidates).

    The alerts compute their signal from the raw series (``records``: record name -> expression) rather
    than read the recorded names: Prometheus sees this round's records within a group, but vmalert
    reads them back from storage, one evaluation or more late, and would fire later on the same load.
    """
    window = format_duration(policy.rate_window)
    cpu_now = cpu_signal_expr(
        policy, _inline(records, RECORD_CPU_DEMAND), _inline(records, RECORD_NODE_CPU)
    )
    memory_now = _inline(records, RECORD_MEMORY)
    overload_for = format_duration(policy.overload_for)
    runbook = _runbook(runbook_base, ALERT_OVERLOAD)
    timing = (
        f"The {window} rate window smooths the load and `for: {overload_for}` demands that the smoothed\n"
        f"value stays above the threshold at every evaluation: a spike that lifts the {window} average\n"
        f"for less than {overload_for} never fires, and one evaluation below the threshold restarts the timer.\n"
        f"A step in load fires between {overload_for} and {overload_for} + {window} after it starts."
    )
    cpu = Rule(
        alert=ALERT_OVERLOAD,
        comment=f"CPU overload: the chosen CPU signal above cpu_high ({_percent(policy.cpu_high)}).\n{timing}",
        expr=f"{cpu_now}\n> {policy.cpu_high!r}",
        for_seconds=policy.overload_for,
        labels={"resource": "cpu", "severity": "warning"},
        annotations={
            "summary": f"Host {{{{ $labels.host }}}} CPU above {_percent(policy.cpu_high)} for {overload_for}",
            "description": (
                f"CPU on {{{{ $labels.host }}}} is at {{{{ $value | humanizePercentage }}}} "
                f"({_SIGNAL_TEXT[policy.cpu_signal]}, {window} rate), above {_percent(policy.cpu_high)} "
                f"for {overload_for}. The actioner moves VMs away until it is at or below "
                f"{_percent(policy.cpu_target)}."
            ),
            "runbook_url": runbook,
        },
    )
    memory = Rule(
        alert=ALERT_OVERLOAD,
        comment=(
            f"Memory overload: used memory above memory_high ({_percent(policy.memory_high)}).\n"
            "A gauge, so no rate window: the load must stay above the threshold for the whole `for:`."
        ),
        expr=f"{memory_now}\n> {policy.memory_high!r}",
        for_seconds=policy.overload_for,
        labels={"resource": "memory", "severity": "warning"},
        annotations={
            "summary": f"Host {{{{ $labels.host }}}} memory above {_percent(policy.memory_high)} for {overload_for}",
            "description": (
                f"Memory used on {{{{ $labels.host }}}} is at {{{{ $value | humanizePercentage }}}}, "
                f"above {_percent(policy.memory_high)} for {overload_for}. The actioner moves VMs away "
                f"until it is at or below {_percent(policy.memory_target)}."
            ),
            "runbook_url": runbook,
        },
    )
    under_for = format_duration(policy.underutilized_for)
    under = Rule(
        alert=ALERT_UNDERUTILIZED,
        comment=(
            f"Consolidation candidate: the chosen CPU signal below cpu_low ({_percent(policy.cpu_low)}) "
            f"for {under_for}.\nThe actioner empties hosts (consolidate mode) when Alertmanager routes it there;\n"
            "hosts it already emptied are left out (they idle on purpose)."
        ),
        expr=_awake(f"{cpu_now}\n< {policy.cpu_low!r}"),
        for_seconds=policy.underutilized_for,
        labels={"resource": "cpu", "severity": "info"},
        annotations={
            "summary": f"Host {{{{ $labels.host }}}} CPU below {_percent(policy.cpu_low)} for {under_for}",
            "description": (
                f"CPU on {{{{ $labels.host }}}} is at {{{{ $value | humanizePercentage }}}}, below "
                f"{_percent(policy.cpu_low)} for {under_for}: its VMs could move to other hosts and the "
                "host be freed."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_UNDERUTILIZED),
        },
    )
    balance_for = format_duration(policy.balance_for)
    awake = _awake(RECORD_CPU)
    imbalanced = Rule(
        alert=ALERT_IMBALANCED,
        comment=(
            f"Uneven load: the spread (max - min) of the hosts' CPU signal above balance_spread "
            f"({_percent(policy.balance_spread)})\nfor {balance_for}. One series for the cluster, no host "
            "label: the actioner's balance mode narrows it.\nHosts the actioner emptied are left out "
            "(an emptied host at 0% is not a reason to load it)."
        ),
        expr=f"(\n  max({awake})\n  -\n  min({awake})\n) > {policy.balance_spread!r}",
        for_seconds=policy.balance_for,
        labels={"resource": "cpu", "severity": "info"},
        annotations={
            "summary": (
                f"Host CPU spread above {_percent(policy.balance_spread)} for {balance_for}"
            ),
            "description": (
                "The most and least loaded hosts differ by {{ $value | humanizePercentage }} of CPU, "
                f"above {_percent(policy.balance_spread)} for {balance_for}: the actioner's balance "
                "mode moves VMs from the busiest hosts to the idlest."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_IMBALANCED),
        },
    )
    return (cpu, memory, hot_alert(policy, runbook_base, cpu_now), under, imbalanced)


def hot_alert(policy: Policy, runbook_base: str, cpu_now: str) -> Rule:
    """Chronically hot: short overloads that each end before ``overload_for`` but keep coming back.

    The share of the last ``hot_window``'s evaluations (the subquery's default resolution is the
    evaluation interval) with the recorded CPU signal above cpu_high; the record rather than the inline
    signal, since a subquery evaluates its expression at every point of the window (vmalert's records,
    one evaluation late, shift a 1h share by one point).
    """
    window = format_duration(policy.hot_window)
    hot_for = format_duration(policy.hot_for)
    high, target = _percent(policy.cpu_high), _percent(policy.cpu_target)
    share = f"avg_over_time(({RECORD_CPU} > bool {policy.cpu_high!r})[{window}:])"
    return Rule(
        alert=ALERT_HOT,
        comment=(
            f"Chronically hot: the CPU signal above cpu_high ({high}) for more than hot_share "
            f"({_percent(policy.hot_share)})\nof the evaluations in the last hot_window ({window}), "
            f"while above cpu_target ({target}) now, for {hot_for}.\n"
            f"Overloads shorter than overload_for never fire {ALERT_OVERLOAD}; a lone spike is too short "
            "a share to fire this.\nThe actioner relieves the host to cpu_target (relieve mode); the "
            "alert ends once it is there."
        ),
        expr=(
            f"{share}\n> {policy.hot_share!r}\nand on (host)\n{cpu_now}\n> {policy.cpu_target!r}"
        ),
        for_seconds=policy.hot_for,
        labels={"resource": "cpu", "severity": "warning"},
        annotations={
            "summary": f"Host {{{{ $labels.host }}}} CPU above {high} too often in the last {window}",
            "description": (
                f"CPU on {{{{ $labels.host }}}} was above {high} for {{{{ $value | humanizePercentage }}}} "
                f"of the last {window} and is above {target} now. The actioner moves VMs away until it "
                f"is at or below {target}."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_HOT),
        },
    )


def health_alerts(policy: Policy, runbook_base: str) -> tuple[Rule, ...]:
    """The inputs the overload alert depends on, and the actioner's own failures."""
    down_for = format_duration(policy.exporter_down_for)
    job = policy.exporter_job
    failure_window = format_duration(policy.migration_failure_window)
    blind = "so no overload alert can fire for it"
    exporter_down = Rule(
        alert=ALERT_EXPORTER_DOWN,
        comment=(
            f"Prometheus cannot scrape a host's exporter (job {job}) for {down_for}.\n"
            "Not for a host the actioner emptied: switching it off is what emptying it was for."
        ),
        expr=_awake(f'(up{{job="{job}"}} == 0)'),
        for_seconds=policy.exporter_down_for,
        labels={"severity": "warning"},
        annotations={
            "summary": f"libvirt exporter of {{{{ $labels.host }}}} down for {down_for}",
            "description": (
                f"Prometheus has failed to scrape {{{{ $labels.instance }}}} (job {job}, host "
                f"{{{{ $labels.host }}}}) for {down_for}: the host's load is unknown, {blind}."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_EXPORTER_DOWN),
        },
    )
    exporter_absent = Rule(
        alert=ALERT_EXPORTER_ABSENT,
        comment=(
            f"No target at all in job {job}: a broken service discovery or scrape config leaves every\n"
            "host unwatched without any `up == 0` to show it."
        ),
        expr=f'absent(up{{job="{job}"}})',
        for_seconds=policy.exporter_down_for,
        labels={"severity": "warning"},
        annotations={
            "summary": f"No libvirt exporter target in job {job}",
            "description": (
                f"Prometheus has had no target in job {job} for {down_for}: no host is watched, "
                "so no overload alert can fire anywhere."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_EXPORTER_ABSENT),
        },
    )
    libvirt_down = Rule(
        alert=ALERT_LIBVIRT_DOWN,
        comment=f"The exporter answers but cannot reach libvirtd (libvirt_up == 0) for {down_for}.",
        expr=_awake("(libvirt_up == 0)"),
        for_seconds=policy.exporter_down_for,
        labels={"severity": "warning"},
        annotations={
            "summary": f"libvirt unreachable on {{{{ $labels.host }}}} for {down_for}",
            "description": (
                f"The exporter on {{{{ $labels.host }}}} has not reached libvirtd for {down_for}: "
                f"no VM is reported, {blind}, and the actioner cannot migrate to or from it."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_LIBVIRT_DOWN),
        },
    )
    failing = Rule(
        alert=ALERT_MIGRATIONS_FAILING,
        comment=(
            f"The actioner had migrations fail, roll back or time out within {failure_window}.\n"
            "increase() handles an actioner restart (counter reset); the actioner creates every result\n"
            "label at 0, so the first failure already counts. Resolves once the window holds no failure."
        ),
        expr=(
            "sum without (result) (\n"
            f'  increase(virtbalance_migrations_total{{result=~"{_FAILED_RESULTS}"}}[{failure_window}])\n'
            ") > 0"
        ),
        labels={"severity": "warning"},
        annotations={
            "summary": f"virtbalance migrations failing (last {failure_window})",
            "description": (
                "About {{ $value | humanize }} migration(s) failed, rolled back or timed out in the last "
                f"{failure_window} on actioner {{{{ $labels.instance }}}}. Rolled-back chunks are whole "
                "again, but the overloads they were to relieve remain."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_MIGRATIONS_FAILING),
        },
    )
    unplaceable = Rule(
        alert=ALERT_UNPLACEABLE,
        comment=(
            "The actioner's last plan found chunks that fit on no host: it moves them together or not at all.\n"
            "A gauge set at each plan, so it fires at once and resolves with the next plan that places them."
        ),
        expr="virtbalance_unplaceable_chunks > 0",
        labels={"severity": "warning"},
        annotations={
            "summary": "Chunks that fit on no host",
            "description": (
                "{{ $value }} chunk(s) of VMs linked by host-local networks fit on no other host "
                "(actioner {{ $labels.instance }}): their host stays overloaded until capacity is added "
                "or the chunk is split by hand."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_UNPLACEABLE),
        },
    )
    ambiguous = Rule(
        alert=ALERT_AMBIGUOUS,
        comment=(
            "The actioner cannot prove where a domain runs after a migration ended badly (a host did not\n"
            "answer, two copies are active, ...) and left it exactly as it was. One series per domain, at\n"
            "once: a paused VM is an outage and two running copies corrupt its disks."
        ),
        expr="virtbalance_domain_ambiguous > 0",
        labels={"severity": "critical"},
        annotations={
            "summary": "VM {{ $labels.domain }} in doubt after a migration",
            "description": (
                "The actioner (instance {{ $labels.instance }}) cannot prove the state of domain "
                "{{ $labels.domain }} and left it untouched; nothing of its chunk moves until it is "
                "resolved. Its journal says what each host showed."
            ),
            "runbook_url": _runbook(runbook_base, ALERT_AMBIGUOUS),
        },
    )
    return (exporter_down, exporter_absent, libvirt_down, failing, unplaceable, ambiguous)


def build_groups(policy: Policy, runbook_base: str = DEFAULT_RUNBOOK_BASE) -> tuple[Group, ...]:
    """The rule groups for a policy; raises ConfigError if the policy cannot make rules."""
    problems = generation_problems(policy)
    if problems:
        raise ConfigError("policy", problems)
    records = recording_rules(policy)
    return (
        Group(
            name="virtbalance-host",
            comment="Per-host load, then the alerts on it (computed from the same raw series).",
            rules=records
            + host_alerts(policy, runbook_base, {r.record: r.expr for r in records if r.record}),
        ),
        Group(
            name="virtbalance-health",
            comment="Blind spots and the actioner's own failures.",
            rules=health_alerts(policy, runbook_base),
        ),
    )


def _quote(text: str) -> str:
    # JSON strings with ASCII escapes are valid YAML double-quoted scalars.
    return json.dumps(text, ensure_ascii=True)


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()]


def _render_rule(rule: Rule) -> list[str]:
    lines = _comment(rule.comment, "      ")
    if rule.record is not None:
        lines.append(f"      - record: {rule.record}")
    else:
        lines.append(f"      - alert: {rule.alert}")
    if "\n" in rule.expr:
        lines.append("        expr: |-")
        lines.extend(f"          {line}" for line in rule.expr.splitlines())
    else:
        lines.append(f"        expr: {_quote(rule.expr)}")
    if rule.for_seconds:
        lines.append(f"        for: {format_duration(rule.for_seconds)}")
    for key, mapping in (("labels", rule.labels), ("annotations", rule.annotations)):
        if mapping:
            lines.append(f"        {key}:")
            lines.extend(f"          {name}: {_quote(value)}" for name, value in mapping.items())
    return lines


def render(
    policy: Policy,
    source: str = "the default policy",
    runbook_base: str = DEFAULT_RUNBOOK_BASE,
) -> str:
    """The rule file text for a policy: byte-identical for the same inputs."""
    groups = build_groups(policy, runbook_base)
    values = policy.to_mapping()
    lines = [
        f"# Generated by `virtbalance rules` from {source}: edit the policy and regenerate, not this file.",
        "# Policy values used here:",
        *(f"#   {name}: {values[name]}" for name in _ALERTING_FIELDS),
        "groups:",
    ]
    for group in groups:
        lines.extend(_comment(group.comment, "  "))
        lines.append(f"  - name: {group.name}")
        lines.append("    rules:")
        for rule in group.rules:
            lines.extend(_render_rule(rule))
    return "\n".join(lines) + "\n"


_ALERTING_FIELDS = (
    "cpu_high",
    "cpu_target",
    "memory_high",
    "memory_target",
    "cpu_low",
    "balance_spread",
    "hot_share",
    "cpu_signal",
    "rate_window",
    "overload_for",
    "underutilized_for",
    "balance_for",
    "hot_window",
    "hot_for",
    "exporter_down_for",
    "migration_failure_window",
    "exporter_job",
)


def alert_names(groups: Sequence[Group]) -> list[str]:
    """Every alert name the groups define, in file order, repeated where one name has several rules."""
    return [rule.alert for group in groups for rule in group.rules if rule.alert is not None]
