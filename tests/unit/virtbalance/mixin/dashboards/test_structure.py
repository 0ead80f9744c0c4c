"""The checked-in dashboards follow the conventions: datasource variable, ids, units, names from the contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from virtbalance.mixin.dashboards import BUILDERS, expressions
from virtbalance.mixin.dashboards.board import GRID_WIDTH, SCHEMA_VERSION
from virtbalance.mixin.dashboards.panels import DATASOURCE as DATASOURCE_REF

DATASOURCE = DATASOURCE_REF.to_json()

REPO = Path(__file__).resolve().parents[5]
DASHBOARDS = REPO / "grafana" / "dashboards"
STABLE_UIDS = {
    "virtbalance-capacity.json": "virtbalance-capacity",
    "virtbalance-rebalancing.json": "virtbalance-rebalancing",
    "virtbalance-host.json": "virtbalance-host",
    "virtbalance-vm.json": "virtbalance-vm",
}
GRAFANA_BUILTINS = {"__rate_interval", "__range", "__interval"}
LABELS_THAT_NAME_THINGS = (
    "host",
    "instance",
    "job",
    "domain",
    "uuid",
    "source",
    "destination",
    "chunk",
)
NO_DATA_PANELS = {"row", "text"}


def load(name: str) -> dict:
    return json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))


def data_panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] not in NO_DATA_PANELS]


@pytest.fixture(params=sorted(STABLE_UIDS), ids=lambda name: name.removesuffix(".json"))
def dashboard(request) -> dict:
    return load(request.param)


def test_the_folder_holds_exactly_the_generated_dashboards():
    assert sorted(p.name for p in DASHBOARDS.iterdir()) == sorted(BUILDERS) == sorted(STABLE_UIDS)


def test_uids_are_stable_and_titles_unique():
    dashboards = {name: load(name) for name in STABLE_UIDS}
    assert {name: d["uid"] for name, d in dashboards.items()} == STABLE_UIDS
    titles = [d["title"] for d in dashboards.values()]
    assert len(set(titles)) == len(titles)


def test_schema_version_is_current(dashboard):
    assert dashboard["schemaVersion"] == SCHEMA_VERSION == 39
    assert dashboard.get("id") is None, "a provisioned dashboard must not carry a database id"


def test_datasource_is_a_prometheus_variable(dashboard):
    variables = dashboard["templating"]["list"]
    first = variables[0]
    assert (first["name"], first["type"], first["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    for variable in variables[1:]:
        assert variable["datasource"] == DATASOURCE, variable["name"]
        # The editor's form and the classic query name the same metric and label.
        query = variable["query"]
        assert query["qryType"] == 1 and query["label"] == variable["name"]
        assert (
            query["query"]
            == variable["definition"]
            == f"label_values({query['metric']}, {variable['name']})"
        )


def test_every_panel_target_and_annotation_uses_the_datasource_variable(dashboard):
    assert DATASOURCE == {"type": "prometheus", "uid": "${datasource}"}
    for panel in data_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']}: no targets"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for item in dashboard["annotations"]["list"]:
        if not item.get("builtIn"):
            assert item["datasource"] == DATASOURCE, item["name"]


def test_no_empty_targets_and_unique_ref_ids(dashboard):
    for panel in data_panels(dashboard):
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']} target {target['refId']} is empty"


def test_panel_ids_are_unique(dashboard):
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(i, int) and i > 0 for i in ids)


def test_panels_fit_the_grid_without_overlapping(dashboard):
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_WIDTH, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_data_panel_has_a_unit(dashboard):
    for panel in data_panels(dashboard):
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        if panel["type"] == "table":
            # Every value column gets its own unit, matched by its header.
            overrides = {
                o["matcher"]["options"]: o["properties"] for o in panel["fieldConfig"]["overrides"]
            }
            assert len(overrides) == len(panel["targets"]), panel["title"]
            assert all(
                props[0]["id"] == "unit" and props[0]["value"] for props in overrides.values()
            )


def test_every_panel_says_what_it_shows(dashboard):
    for panel in data_panels(dashboard):
        assert len(panel["description"]) > 20, panel["title"]


def test_no_host_instance_or_job_is_hard_coded(dashboard):
    matcher = re.compile(
        r"\b(" + "|".join(LABELS_THAT_NAME_THINGS) + r")\s*(=~|!~|!=|=)\s*\"([^\"]*)\""
    )
    for expression in expressions(dashboard):
        for label, _, value in matcher.findall(expression.expr):
            assert value.startswith("$"), f"{expression.where}: {label} pinned to {value!r}"


def test_every_template_variable_used_is_defined(dashboard):
    defined = {variable["name"] for variable in dashboard["templating"]["list"]} | GRAFANA_BUILTINS
    for expression in expressions(dashboard):
        used = {a or b for a, b in re.findall(r"\$\{(\w+)\}|\$(\w+)", expression.expr)}
        assert used <= defined, f"{expression.where}: undefined {used - defined}"


def contract_metric_names() -> tuple[set[str], list[str]]:
    """Metric and recording-rule names from docs/architecture.md, and its wildcard prefixes."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    names, prefixes = set(), []
    for token in re.findall(r"`([^`]+)`", text):
        for part in re.split(r"[\s,]+", token):
            if part.endswith("_*"):
                prefixes.append(part[:-1])
            elif re.fullmatch(r"(libvirt_|virtbalance_|host:)[\w:]+", part):
                names.add(part)
    # "`libvirt_node_memory_free_bytes` / `_available_bytes`" names the second by its suffix only.
    names |= {"libvirt_node_memory_available_bytes"}
    return names, prefixes


def test_every_metric_is_a_contract_name(dashboard):
    names, prefixes = contract_metric_names()
    histogram_parts = ("_bucket", "_sum", "_count")
    for expression in expressions(dashboard):
        for token in set(re.findall(r"\b(?:libvirt_|virtbalance_|host:)[\w:]*\w", expression.expr)):
            base = next(
                (token.removesuffix(s) for s in histogram_parts if token.endswith(s)), token
            )
            known = token in names or base in names or any(token.startswith(p) for p in prefixes)
            assert known, f"{expression.where}: {token} is not in docs/architecture.md"


def test_alert_names_match_the_rule_files():
    rules = yaml.safe_load(
        (REPO / "alerting-rules" / "virtbalance.rules.yml").read_text(encoding="utf-8")
    )
    alerts = {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }
    records = {
        rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule
    }
    used_alerts, used_records = set(), set()
    for name in STABLE_UIDS:
        for expression in expressions(load(name)):
            used_alerts |= set(re.findall(r'alertname="(\w+)"', expression.expr))
            used_records |= set(re.findall(r"\bhost:[\w:]*\w", expression.expr))
    assert used_alerts == {"HostSustainedOverload"} <= alerts
    assert used_records and used_records <= records


def test_provisioning_points_grafana_at_the_dashboards():
    provisioning = REPO / "grafana" / "provisioning"
    datasources = yaml.safe_load(
        (provisioning / "datasources" / "virtbalance-prometheus.yml").read_text()
    )
    (source,) = datasources["datasources"]
    assert (datasources["apiVersion"], source["type"], source["access"]) == (
        1,
        "prometheus",
        "proxy",
    )
    assert source["uid"] and source["url"].startswith("http")
    providers = yaml.safe_load((provisioning / "dashboards" / "virtbalance.yml").read_text())
    (provider,) = providers["providers"]
    assert (providers["apiVersion"], provider["type"]) == (1, "file")
    assert provider["options"]["path"] and provider["folderUid"]
