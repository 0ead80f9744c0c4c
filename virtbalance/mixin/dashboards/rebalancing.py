"""The rebalancing dashboard: what the actioner did, what held it back, and how to freeze it."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard

from virtbalance import contract as c
from virtbalance.durations import format_duration
from virtbalance.mixin.config import Config
from virtbalance.mixin.dashboards import queries as q
from virtbalance.mixin.dashboards.annotations import annotation
from virtbalance.mixin.dashboards.board import Row
from virtbalance.mixin.dashboards.board import build as board
from virtbalance.mixin.dashboards.panels import (
    Column,
    Panel,
    Query,
    Threshold,
    stat,
    table,
    text,
    timeseries,
)

UID = "virtbalance-rebalancing"
FAILED = 'result=~"failed|rolled_back|timeout"'


def migration_annotation(*selectors: str) -> Builder[dashboard.AnnotationQuery]:
    """One event per migration, when its series first appears (the actioner exports it as it ends)."""
    now = [f"{c.MIGRATION_RECENT_DURATION}{{{matcher}}}" for matcher in selectors or ("",)]
    before = " or ".join(f"{series} offset 1m" for series in now)
    return annotation(
        "Migrations",
        f"({' or '.join(now)}) unless ({before})",
        title="{{domain}}: {{source}} → {{destination}}",
        text="chunk {{chunk}}, {{result}}",
        tags=("result", "chunk"),
        color="blue",
        step="1m",
    )


def overload_annotation(matcher: str = "") -> Builder[dashboard.AnnotationQuery]:
    """A region for each stretch of time a host's overload alert was firing.

    Over each 1-minute step, so a firing relieved within seconds is not lost between two steps.
    """
    extra = f", {matcher}" if matcher else ""
    return annotation(
        "Host overloads",
        f'max_over_time(ALERTS{{alertname="{c.ALERT_OVERLOAD}", alertstate="firing"{extra}}}[1m])',
        title="{{host}} overloaded ({{resource}})",
        text=f"{c.ALERT_OVERLOAD} firing",
        tags=("host", "resource"),
        color="red",
        step="1m",
    )


def freeze_help(scope_matchers: tuple[tuple[str, str], ...]) -> Panel:
    """The amtool commands that freeze migrations, with ``scope_matchers`` as (what, matcher) examples."""
    add = f"amtool silence add alertname={c.ALERT_MIGRATION}"
    lines = [
        "Before each move the actioner matches it, as the synthetic alert "
        f"`{c.ALERT_MIGRATION}{{domain, chunk, source, destination}}`, against Alertmanager's active "
        "silences. A matching silence freezes that move; an expired one lifts the freeze.",
        "",
        "| freeze | command |",
        "| --- | --- |",
    ]
    lines += [
        f"| {what} | `{' '.join(filter(None, (add, matcher)))} --duration=2h --comment='why'` |"
        for what, matcher in scope_matchers
    ]
    lines += [
        "",
        f"List freezes: `amtool silence query alertname={c.ALERT_MIGRATION}`. "
        "Lift one: `amtool silence expire ID`.",
        "Point amtool at Alertmanager with `--alertmanager.url=URL` or `alertmanager.url:` in "
        "`~/.config/amtool/config.yml`. Matchers combine with AND: freezing a host both ways takes two "
        "silences (`source=`, `destination=`).",
    ]
    return text("Freeze migrations with a silence", "\n".join(lines), height=9)


CLUSTER_FREEZES = (
    ("the whole cluster", ""),
    ("moves off a host", "source=HOST"),
    ("moves onto a host", "destination=HOST"),
    ("one VM", "domain=NAME"),
    ("one chunk", "chunk=ID"),
)


def _migrations_row() -> Row:
    return Row(
        "Migrations",
        [
            stat(
                "Migrations in range by result",
                "virtbalance_migrations_total increase over the dashboard's time range.",
                [
                    Query(
                        "sum by (result) (increase(virtbalance_migrations_total[$__range]))",
                        "{{result}}",
                    )
                ],
                "short",
                decimals=0,
                width=16,
            ),
            stat(
                "Failures and rollbacks in range",
                "Migrations that failed, were rolled back or timed out. Each left its VMs running once, "
                "where they were; look at the actioner's log for the reason.",
                [
                    Query(
                        f"sum(increase(virtbalance_migrations_total{{{FAILED}}}[$__range])) or vector(0)",
                        "failed",
                    )
                ],
                "short",
                thresholds=(Threshold(1, "red"),),
                decimals=0,
                width=8,
            ),
            table(
                "Recent migrations",
                "The actioner's last 50 migrations. Finished: when Prometheus first saw it (to a scrape).",
                [
                    Column(Query(q.migration_first_seen()), "Finished", "dateTimeAsIso"),
                    Column(Query(q.recent_migrations()), "Duration", "s"),
                ],
                labels=q.MIGRATION_LABELS,
                sort_by="Finished",
                height=10,
            ),
            timeseries(
                "Migrations by result",
                "Migrations finished per interval, by result.",
                [
                    Query(
                        f"sum by (result) (increase(virtbalance_migrations_total[{q.RATE}]))",
                        "{{result}}",
                    )
                ],
                "short",
                bars=True,
                stack=True,
            ),
            timeseries(
                "Migration duration",
                "Quantiles of virtbalance_migration_duration_seconds over the rate window.",
                [
                    Query(
                        f"histogram_quantile({quantile}, sum by (le) "
                        f"(rate(virtbalance_migration_duration_seconds_bucket[{q.RATE}])))",
                        f"p{round(quantile * 100)}",
                    )
                    for quantile in (0.5, 0.95)
                ],
                "s",
            ),
        ],
    )


def _chunks_row() -> Row:
    return Row(
        "Chunk split windows",
        [
            timeseries(
                "Chunk split window",
                "While a chunk moves, its members sit on two hosts and their private networks are cut "
                "between them: how long that lasted (virtbalance_chunk_split_seconds).",
                [
                    Query(
                        f"histogram_quantile({quantile}, sum by (le) "
                        f"(rate(virtbalance_chunk_split_seconds_bucket[{q.RATE}])))",
                        f"p{round(quantile * 100)}",
                    )
                    for quantile in (0.5, 0.95)
                ]
                + [
                    Query(
                        f"sum(rate(virtbalance_chunk_split_seconds_sum[{q.RATE}])) "
                        f"/ sum(rate(virtbalance_chunk_split_seconds_count[{q.RATE}]))",
                        "mean",
                    )
                ],
                "s",
            ),
            timeseries(
                "Chunk moves",
                "Chunks moved per interval (each a split window).",
                [
                    Query(
                        f"sum(increase(virtbalance_chunk_split_seconds_count[{q.RATE}]))",
                        "chunks moved",
                    )
                ],
                "short",
                bars=True,
            ),
        ],
    )


def _barriers_row() -> Row:
    return Row(
        "Barriers",
        [
            timeseries(
                "Active cooldowns by kind",
                "Per VM, per host (settle), anti-flap and rate-cap barriers holding moves back now.",
                [Query("sum by (kind) (virtbalance_cooldowns_active)", "{{kind}}")],
                "short",
                stack=True,
                width=12,
            ),
            timeseries(
                "Unplaceable chunks",
                "Chunks the last plan wanted to move but no destination could take.",
                [Query("max(virtbalance_unplaceable_chunks)", "unplaceable")],
                "short",
                thresholds=(Threshold(1, "red"),),
                width=12,
            ),
        ],
    )


def _plans_row() -> Row:
    return Row(
        "Plans and webhook",
        [
            timeseries(
                "Plans by outcome",
                "Plans made per interval: executed, empty, unresolved, failed, cancelled, dry_run, frozen.",
                [
                    Query(
                        f"sum by (outcome) (increase(virtbalance_plans_total[{q.RATE}]))",
                        "{{outcome}}",
                    )
                ],
                "short",
                bars=True,
                stack=True,
                width=8,
            ),
            timeseries(
                "Plan duration",
                "Quantiles of virtbalance_plan_duration_seconds: snapshot to plan.",
                [
                    Query(
                        f"histogram_quantile({quantile}, sum by (le) "
                        f"(rate(virtbalance_plan_duration_seconds_bucket[{q.RATE}])))",
                        f"p{round(quantile * 100)}",
                    )
                    for quantile in (0.5, 0.95)
                ],
                "s",
                width=8,
            ),
            timeseries(
                "Webhook requests by code",
                "Alertmanager notifications received; 4xx means a payload was refused (see the reason in "
                "the actioner's log).",
                [
                    Query(
                        f"sum by (code) (rate(virtbalance_webhook_requests_total[{q.RATE}]))",
                        "{{code}}",
                    )
                ],
                "reqps",
                width=8,
            ),
            stat(
                "Since the last successful plan",
                "Time since a plan last ran to completion.",
                [
                    Query(
                        "time() - max(virtbalance_last_successful_plan_timestamp_seconds > 0)",
                        "age",
                    )
                ],
                "s",
                width=8,
            ),
        ],
    )


def build(config: Config) -> dashboard.Dashboard:
    """The rebalancing dashboard; ``policy`` only feeds the texts."""
    policy = config.policy
    barriers = (
        f"Barriers: {format_duration(policy.vm_cooldown)} per VM, {format_duration(policy.host_settle)} "
        f"per host, anti-flap {format_duration(policy.anti_flap)}, at most "
        f"{policy.max_migrations_per_hour} migrations an hour."
    )
    return board(
        config,
        uid=UID,
        title="virtbalance / Rebalancing",
        description=f"What the actioner did: migrations, chunk moves, barriers, plans. {barriers}",
        rows=[
            _migrations_row(),
            _chunks_row(),
            _barriers_row(),
            _plans_row(),
            Row("Freeze", [freeze_help(CLUSTER_FREEZES)]),
        ],
        annotations=[migration_annotation(), overload_annotation()],
    )
