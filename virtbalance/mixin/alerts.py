"""The alerts: host overload, underuse and imbalance (what the actioner acts on), and blind spots."""

from __future__ import annotations

from collections.abc import Mapping

from virtbalance.contract import (
    ALERT_AMBIGUOUS,
    ALERT_EXPORTER_ABSENT,
    ALERT_EXPORTER_DOWN,
    ALERT_HOT,
    ALERT_IMBALANCED,
    ALERT_JOB_STUCK,
    ALERT_LIBVIRT_DOWN,
    ALERT_MIGRATIONS_FAILING,
    ALERT_OVERLOAD,
    ALERT_UNDERUTILIZED,
    ALERT_UNPLACEABLE,
    MIGRATION_JOB_STUCK,
    RECORD_CPU,
    RECORD_CPU_DEMAND,
    RECORD_MEMORY,
    RECORD_NODE_CPU,
)
from virtbalance.durations import format_duration
from virtbalance.mixin.config import Config
from virtbalance.mixin.promql import SIGNAL_TEXT, awake, cpu_signal_expr, indent
from virtbalance.mixin.rule import Rule
from virtbalance.policy import Policy

FAILED_RESULTS = "failed|rolled_back|timeout"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


def _runbook(base: str, alert: str) -> str:
    # GitHub and most renderers anchor a "## HostSustainedOverload" heading as #hostsustainedoverload.
    return f"{base}#{alert.lower()}"


def _alert(
    alert: str,
    runbook_base: str,
    *,
    comment: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    for_seconds: float = 0.0,
    resource: str | None = None,
) -> Rule:
    """An alert with its severity (and resource) labels, texts and the runbook section named after it."""
    labels = {"resource": resource} if resource is not None else {}
    return Rule(
        alert=alert,
        comment=comment,
        expr=expr,
        for_seconds=for_seconds,
        labels={**labels, "severity": severity},
        annotations={
            "summary": summary,
            "description": description,
            "runbook_url": _runbook(runbook_base, alert),
        },
    )


def _inline(records: Mapping[str, str], name: str) -> str:
    return f"(\n  {indent(records[name])}\n)"


def _moves_away(target: float) -> str:
    return f"The actioner moves VMs away until it is at or below {_percent(target)}."


def _overload_alert(
    policy: Policy,
    runbook_base: str,
    *,
    resource: str,
    noun: str,
    subject: str,
    comment: str,
    now: str,
    high: float,
    target: float,
    measure: str = "",
) -> Rule:
    """The overload alert of one resource: its signal ``now`` above ``high`` for ``overload_for``.

    ``noun`` names the resource in the summary, ``subject`` in the description, ``measure`` says how
    the signal is taken (after the value).
    """
    overload_for = format_duration(policy.overload_for)
    return _alert(
        ALERT_OVERLOAD,
        runbook_base,
        comment=comment,
        expr=f"{now}\n> {high!r}",
        for_seconds=policy.overload_for,
        severity="warning",
        resource=resource,
        summary=f"Host {{{{ $labels.host }}}} {noun} above {_percent(high)} for {overload_for}",
        description=(
            f"{subject} on {{{{ $labels.host }}}} is at {{{{ $value | humanizePercentage }}}}{measure}, "
            f"above {_percent(high)} for {overload_for}. {_moves_away(target)}"
        ),
    )


def host_alerts(config: Config, records: Mapping[str, str]) -> tuple[Rule, ...]:
    """Overload (what the actioner acts on) and underutilisation (consolidation candidates).

    The alerts compute their signal from the raw series (``records``: record name -> expression) rather
    than read the recorded names: Prometheus sees this round's records within a group, but vmalert
    reads them back from storage, one evaluation or more late, and would fire later on the same load.
    """
    policy, runbook_base = config.policy, config.runbook_base
    window = format_duration(policy.rate_window)
    cpu_now = cpu_signal_expr(
        policy, _inline(records, RECORD_CPU_DEMAND), _inline(records, RECORD_NODE_CPU)
    )
    memory_now = _inline(records, RECORD_MEMORY)
    overload_for = format_duration(policy.overload_for)
    timing = (
        f"The {window} rate window smooths the load and `for: {overload_for}` demands that the smoothed\n"
        f"value stays above the threshold at every evaluation: a spike that lifts the {window} average\n"
        f"for less than {overload_for} never fires, and one evaluation below the threshold restarts the timer.\n"
        f"A step in load fires between {overload_for} and {overload_for} + {window} after it starts."
    )
    cpu = _overload_alert(
        policy,
        runbook_base,
        resource="cpu",
        noun="CPU",
        subject="CPU",
        comment=f"CPU overload: the chosen CPU signal above cpu_high ({_percent(policy.cpu_high)}).\n{timing}",
        now=cpu_now,
        high=policy.cpu_high,
        target=policy.cpu_target,
        measure=f" ({SIGNAL_TEXT[policy.cpu_signal]}, {window} rate)",
    )
    memory = _overload_alert(
        policy,
        runbook_base,
        resource="memory",
        noun="memory",
        subject="Memory used",
        comment=(
            f"Memory overload: used memory above memory_high ({_percent(policy.memory_high)}).\n"
            "A gauge, so no rate window: the load must stay above the threshold for the whole `for:`."
        ),
        now=memory_now,
        high=policy.memory_high,
        target=policy.memory_target,
    )
    under_for = format_duration(policy.underutilized_for)
    under = _alert(
        ALERT_UNDERUTILIZED,
        runbook_base,
        comment=(
            f"Consolidation candidate: the chosen CPU signal below cpu_low ({_percent(policy.cpu_low)}) "
            f"for {under_for}.\nThe actioner empties hosts (consolidate mode) when Alertmanager routes it there;\n"
            "hosts it already emptied are left out (they idle on purpose)."
        ),
        expr=awake(f"{cpu_now}\n< {policy.cpu_low!r}"),
        for_seconds=policy.underutilized_for,
        severity="info",
        resource="cpu",
        summary=f"Host {{{{ $labels.host }}}} CPU below {_percent(policy.cpu_low)} for {under_for}",
        description=(
            f"CPU on {{{{ $labels.host }}}} is at {{{{ $value | humanizePercentage }}}}, below "
            f"{_percent(policy.cpu_low)} for {under_for}: its VMs could move to other hosts and the "
            "host be freed."
        ),
    )
    return (cpu, memory, hot_alert(policy, runbook_base, cpu_now), under, imbalanced_alert(config))


def balance_signal(policy: Policy) -> tuple[str, str]:
    """The per-host CPU signal HostsImbalanced spreads, and the words its texts add for the average.

    The recorded ratio averaged over ``balance_window`` (a range over the record, which is stored), or
    the record itself at 0. The simulator averages the same way (``virtbalance.simulator.alerting.window_mean``).
    """
    if policy.balance_window <= 0:
        return RECORD_CPU, ""
    window = format_duration(policy.balance_window)
    return f"avg_over_time({RECORD_CPU}[{window}])", f" averaged over {window}"


def imbalanced_alert(config: Config) -> Rule:
    """Uneven load: the spread of the hosts' (averaged) CPU signal above ``balance_spread``."""
    policy, runbook_base = config.policy, config.runbook_base
    balance_for = format_duration(policy.balance_for)
    signal, averaged = balance_signal(policy)
    awake_cpu = awake(signal)
    smoothing = (
        f"\nEach host's signal is averaged over balance_window ({format_duration(policy.balance_window)}): "
        "a burst, which no placement evens out,\nmoves the average little."
        if averaged
        else ""
    )
    return _alert(
        ALERT_IMBALANCED,
        runbook_base,
        comment=(
            f"Uneven load: the spread (max - min) of the hosts' CPU signal above balance_spread "
            f"({_percent(policy.balance_spread)})\nfor {balance_for}. One series for the cluster, no host "
            "label: the actioner's balance mode narrows it.\nHosts the actioner emptied are left out "
            f"(an emptied host at 0% is not a reason to load it).{smoothing}\n"
            f"Only while the busiest host is above cpu_target ({_percent(policy.cpu_target)}): below "
            "it no host is near overload,\nand evening load out is not worth a migration."
        ),
        expr=(
            f"(\n  max({awake_cpu})\n  -\n  min({awake_cpu})\n) > {policy.balance_spread!r}\n"
            f"and\nmax({awake_cpu}) > {policy.cpu_target!r}"
        ),
        for_seconds=policy.balance_for,
        severity="info",
        resource="cpu",
        summary=(f"Host CPU spread above {_percent(policy.balance_spread)} for {balance_for}"),
        description=(
            "The most and least loaded hosts differ by {{ $value | humanizePercentage }} of CPU"
            f"{averaged}, above {_percent(policy.balance_spread)} for {balance_for}, the busiest "
            f"above {_percent(policy.cpu_target)}: the actioner's balance mode moves VMs from "
            "the busiest hosts to the idlest."
        ),
    )


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
    return _alert(
        ALERT_HOT,
        runbook_base,
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
        severity="warning",
        resource="cpu",
        summary=f"Host {{{{ $labels.host }}}} CPU above {high} too often in the last {window}",
        description=(
            f"CPU on {{{{ $labels.host }}}} was above {high} for {{{{ $value | humanizePercentage }}}} "
            f"of the last {window} and is above {target} now. {_moves_away(policy.cpu_target)}"
        ),
    )


def health_alerts(config: Config) -> tuple[Rule, ...]:
    """The inputs the overload alert depends on, and the actioner's own failures."""
    policy, runbook_base = config.policy, config.runbook_base
    down_for = format_duration(policy.exporter_down_for)
    job = policy.exporter_job
    failure_window = format_duration(policy.migration_failure_window)
    blind = "so no overload alert can fire for it"
    exporter_down = _alert(
        ALERT_EXPORTER_DOWN,
        runbook_base,
        comment=(
            f"Prometheus cannot scrape a host's exporter (job {job}) for {down_for}.\n"
            "Not for a host the actioner emptied: switching it off is what emptying it was for."
        ),
        expr=awake(f'(up{{job="{job}"}} == 0)'),
        for_seconds=policy.exporter_down_for,
        severity="warning",
        summary=f"libvirt exporter of {{{{ $labels.host }}}} down for {down_for}",
        description=(
            f"Prometheus has failed to scrape {{{{ $labels.instance }}}} (job {job}, host "
            f"{{{{ $labels.host }}}}) for {down_for}: the host's load is unknown, {blind}."
        ),
    )
    exporter_absent = _alert(
        ALERT_EXPORTER_ABSENT,
        runbook_base,
        comment=(
            f"No target at all in job {job}: a broken service discovery or scrape config leaves every\n"
            "host unwatched without any `up == 0` to show it."
        ),
        expr=f'absent(up{{job="{job}"}})',
        for_seconds=policy.exporter_down_for,
        severity="warning",
        summary=f"No libvirt exporter target in job {job}",
        description=(
            f"Prometheus has had no target in job {job} for {down_for}: no host is watched, "
            "so no overload alert can fire anywhere."
        ),
    )
    libvirt_down = _alert(
        ALERT_LIBVIRT_DOWN,
        runbook_base,
        comment=f"The exporter answers but cannot reach libvirtd (libvirt_up == 0) for {down_for}.",
        expr=awake("(libvirt_up == 0)"),
        for_seconds=policy.exporter_down_for,
        severity="warning",
        summary=f"libvirt unreachable on {{{{ $labels.host }}}} for {down_for}",
        description=(
            f"The exporter on {{{{ $labels.host }}}} has not reached libvirtd for {down_for}: "
            f"no VM is reported, {blind}, and the actioner cannot migrate to or from it."
        ),
    )
    failing = _alert(
        ALERT_MIGRATIONS_FAILING,
        runbook_base,
        comment=(
            f"The actioner had migrations fail, roll back or time out within {failure_window}.\n"
            "increase() handles an actioner restart (counter reset); the actioner creates every result\n"
            "label at 0, so the first failure already counts. Resolves once the window holds no failure."
        ),
        expr=(
            "sum without (result) (\n"
            f'  increase(virtbalance_migrations_total{{result=~"{FAILED_RESULTS}"}}[{failure_window}])\n'
            ") > 0"
        ),
        severity="warning",
        summary=f"virtbalance migrations failing (last {failure_window})",
        description=(
            "About {{ $value | humanize }} migration(s) failed, rolled back or timed out in the last "
            f"{failure_window} on actioner {{{{ $labels.instance }}}}. Rolled-back chunks are whole "
            "again, but the overloads they were to relieve remain."
        ),
    )
    unplaceable = _alert(
        ALERT_UNPLACEABLE,
        runbook_base,
        comment=(
            "The actioner's last plan found chunks that fit on no host: it moves them together or not at all.\n"
            "A gauge set at each plan, so it fires at once and resolves with the next plan that places them."
        ),
        expr="virtbalance_unplaceable_chunks > 0",
        severity="warning",
        summary="Chunks that fit on no host",
        description=(
            "{{ $value }} chunk(s) of VMs linked by host-local networks fit on no other host "
            "(actioner {{ $labels.instance }}): their host stays overloaded until capacity is added "
            "or the chunk is split by hand."
        ),
    )
    ambiguous = _alert(
        ALERT_AMBIGUOUS,
        runbook_base,
        comment=(
            "The actioner cannot prove where a domain runs after a migration ended badly (a host did not\n"
            "answer, two copies are active, ...) and left it exactly as it was. One series per domain, at\n"
            "once: a paused VM is an outage and two running copies corrupt its disks."
        ),
        expr="virtbalance_domain_ambiguous > 0",
        severity="critical",
        summary="VM {{ $labels.domain }} in doubt after a migration",
        description=(
            "The actioner (instance {{ $labels.instance }}) cannot prove the state of domain "
            "{{ $labels.domain }} and left it untouched; nothing of its chunk moves until it is "
            "resolved. Its journal says what each host showed."
        ),
    )
    stuck = _alert(
        ALERT_JOB_STUCK,
        runbook_base,
        comment=(
            "libvirt on a host holds a migration job that outlived its abort (or the migration timeout\n"
            "with no migration of the actioner in flight) and will not end it; its guest is held, often\n"
            "paused. Only that libvirtd's restart ends the job, so the alert names the host, at once."
        ),
        expr=f"{MIGRATION_JOB_STUCK} > 0",
        severity="critical",
        summary="libvirt on {{ $labels.host }} holds a migration job of {{ $labels.domain }} it cannot end",
        description=(
            "The migration job of domain {{ $labels.domain }} on host {{ $labels.host }} did not end "
            "after its abort or its timeout (actioner {{ $labels.instance }}). Restart libvirtd on "
            "{{ $labels.host }}: libvirt then ends the job and the actioner resolves the domain; "
            "nothing of its chunk moves until then."
        ),
    )
    return (exporter_down, exporter_absent, libvirt_down, failing, unplaceable, ambiguous, stuck)
