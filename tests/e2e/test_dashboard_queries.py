"""Every dashboard query runs against the lab's Prometheus after an overload and a migration, and finds data."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from virtbalance.contract import MIGRATION_RECENT_DURATION
from virtbalance.mixin.dashboards import build_all, expressions, substitute

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.lab]

# What Grafana would put in its built-in variables for a 30-minute view of a lab scraped every 2 s.
BUILTINS = {"__rate_interval": "1m", "__range": "30m", "__interval": "15s"}
WINDOW_SECONDS = 1800
STEP = "15s"

# Queries that cannot find a series in the lab, and why. Keep this short: every entry hides a panel
# that the live check does not cover.
NO_SERIES_IN_LAB = {
    # libvirt reports a dirty rate only after a dirty-rate calculation, which nothing starts in the lab.
    "virtbalance-vm panel 'Memory dirty rate'": "libvirt_domain_dirty_rate_bytes_per_second",
}


@dataclass(frozen=True)
class Target:
    """One query of one panel (or annotation) of one dashboard."""

    dashboard: str
    panel: str
    where: str
    expr: str
    instant: bool
    table_labels: tuple[str, ...] | None


def targets() -> Iterator[Target]:
    for dashboard in build_all().values():
        for panel in dashboard["panels"]:
            labels = None
            for transformation in panel.get("transformations", []):
                if transformation["id"] == "filterFieldsByName":
                    names = transformation["options"]["include"]["names"]
                    labels = tuple(n for n in names if not n.startswith("Value"))
            for target in panel.get("targets", []):
                yield Target(
                    dashboard["uid"],
                    panel["title"],
                    f"{dashboard['uid']} panel {panel['title']!r} {target['refId']}",
                    target["expr"],
                    bool(target.get("instant")),
                    labels,
                )
        for expression in expressions(dashboard):
            if " annotation " in expression.where:
                yield Target(dashboard["uid"], "", expression.where, expression.expr, False, None)


def prometheus(url: str, path: str, **params: Any) -> list[dict[str, Any]]:
    """Run one query; a parse or evaluation error fails the test with Prometheus's message."""
    response = requests.get(f"{url}/api/v1/{path}", params=params, timeout=60)
    body = response.json()
    assert body["status"] == "success", f"{params['query']}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def run(url: str, target: Target, values: dict[str, str]) -> list[dict[str, Any]]:
    expr = substitute(target.expr, {**BUILTINS, **values})
    if target.instant:
        return prometheus(url, "query", query=expr)
    end = time.time()
    return prometheus(
        url, "query_range", query=expr, start=end - WINDOW_SECONDS, end=end, step=STEP
    )


def scrape_actioner(stack) -> None:
    """Wait until the stack's Prometheus has scraped the actioner (as deploy/prometheus.yml does) enough.

    Three samples are enough for rate() and increase() over the rate window.
    """
    url = stack.prometheus_url
    deadline = time.monotonic() + 60
    while not prometheus(url, "query", query="count_over_time(virtbalance_plans_total[1m]) >= 3"):
        assert time.monotonic() < deadline, "Prometheus did not scrape the actioner within 60 s"
        time.sleep(1)


@pytest.fixture(scope="module")
def candidates(rebalanced_stack) -> dict[str, list[str]]:
    """Values for $host and $domain an operator would pick: the migration's first, then the others.

    A panel passes if one of them shows data: a VM without a NIC has no network panel, and that is
    no fault of the dashboard.
    """
    rebalanced_stack.record.require("overload", "firing", "migrating")
    scrape_actioner(rebalanced_stack.stack)
    url = rebalanced_stack.stack.prometheus_url
    moves = prometheus(url, "query", query=f"max_over_time({MIGRATION_RECENT_DURATION}[1h])")
    assert moves, "the scenario left no migration in virtbalance_migration_recent_duration_seconds"
    moved = moves[0]["metric"]
    hosts = [moved["source"], moved["destination"]]
    hosts += [h for h in rebalanced_stack.stack.hosts if h not in hosts]
    running = prometheus(url, "query", query="max by (domain) (libvirt_domain_chunk_info)")
    domains = [
        moved["domain"],
        *sorted({r["metric"]["domain"] for r in running} - {moved["domain"]}),
    ]
    return {"host": hosts, "domain": domains}


def assignments(candidates: dict[str, list[str]]) -> Iterator[dict[str, str]]:
    hosts, domains = candidates["host"], candidates["domain"]
    # The migration's own host and domain first; then every other combination.
    yield from ({"host": h, "domain": d} for h, d in itertools.product(hosts, domains))


@pytest.mark.parametrize("target", list(targets()), ids=lambda t: t.where)
def test_query_runs_and_finds_series(rebalanced_stack, candidates, target):
    url = rebalanced_stack.stack.prometheus_url
    exception = NO_SERIES_IN_LAB.get(f"{target.dashboard} panel {target.panel!r}")
    uses_variables = "$host" in target.expr or "$domain" in target.expr or "${" in target.expr
    tried = list(assignments(candidates)) if uses_variables else [{}]
    for values in tried:
        result = run(url, target, values)
        if result:
            break
    if exception:
        # Still parsed and evaluated above; an excepted query that starts finding data must leave the list.
        assert not result, f"{target.where} now finds data: remove it from NO_SERIES_IN_LAB"
        return
    assert result, f"{target.where}: no series for any of {tried[:3]}...: {target.expr}"
    if target.table_labels is not None:
        # The table merges its queries row by row on their labels: each must carry only the table's
        # label columns (Prometheus drops a label whose value is empty, so a subset is fine).
        for series in result:
            assert set(series["metric"]) <= set(target.table_labels), (
                target.where,
                series["metric"],
            )


def test_variables_resolve_to_lab_values(rebalanced_stack):
    url = rebalanced_stack.stack.prometheus_url
    for dashboard in build_all().values():
        for variable in dashboard["templating"]["list"][1:]:
            metric, label = (
                variable["definition"].removeprefix("label_values(").rstrip(")").split(", ")
            )
            response = requests.get(
                f"{url}/api/v1/label/{label}/values", params={"match[]": metric}, timeout=30
            )
            values = response.json()["data"]
            if label == "host":
                assert set(values) == set(rebalanced_stack.stack.hosts), dashboard["uid"]
            else:
                assert set(rebalanced_stack.record.domains) <= set(values), (
                    dashboard["uid"],
                    values,
                )
