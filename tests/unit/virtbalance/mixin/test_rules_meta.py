"""Meta-tests over the checked-in rule files: names, labels, annotations, runbooks and test coverage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from virtbalance.mixin import rulefile
from virtbalance.mixin.config import DEFAULT_RUNBOOK_BASE, Config, profile_policy

RULE_FILES = ("virtbalance.rules.yml", "virtbalance-lab.rules.yml")
SEVERITIES = {"info", "warning", "critical"}
# The recording rule names docs/architecture.md fixes.
BINDING_RECORDS = {
    "host:libvirt_cpu_demand:ratio",
    "host:libvirt_node_cpu_utilisation:ratio",
    "host:libvirt_cpu:ratio",
    "host:libvirt_memory_used:ratio",
    "host:libvirt_cpu_immovable:cores",
}


def _rules(path: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts(path: Path) -> list[dict[str, Any]]:
    return [rule for rule in _rules(path) if "alert" in rule]


@pytest.fixture(params=RULE_FILES)
def rule_file(request, repo_root) -> Path:
    return Path(repo_root / "alerting-rules" / request.param)


def test_alert_names_are_camel_case(rule_file):
    for alert in _alerts(rule_file):
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", alert["alert"]), alert["alert"]


def test_every_alert_has_severity_and_the_three_annotations(rule_file):
    for alert in _alerts(rule_file):
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert alert["annotations"].get(key, "").strip(), f"{alert['alert']}: no {key}"
        assert alert["annotations"]["runbook_url"].startswith("https://"), alert["alert"]


def test_alert_names_are_unique_up_to_their_labels(rule_file):
    # One name may cover several rules only when static labels tell them apart
    # (HostSustainedOverload: resource=cpu and resource=memory), as promtool's duplicate check does.
    seen = set()
    for alert in _alerts(rule_file):
        key = (alert["alert"], tuple(sorted(alert["labels"].items())))
        assert key not in seen, f"duplicate alert {key}"
        seen.add(key)
    names = [a["alert"] for a in _alerts(rule_file)]
    assert {n for n in names if names.count(n) > 1} <= {"HostSustainedOverload"}


def test_overload_alerts_carry_host_resource_and_the_value(rule_file):
    overloads = [a for a in _alerts(rule_file) if a["alert"] == "HostSustainedOverload"]
    assert sorted(a["labels"]["resource"] for a in overloads) == ["cpu", "memory"]
    for alert in overloads:
        assert "{{ $labels.host }}" in alert["annotations"]["summary"]
        assert "{{ $value | humanizePercentage }}" in alert["annotations"]["description"]
        assert alert.get("for"), "an overload must be sustained"


def test_recording_rules_are_the_binding_names(rule_file):
    records = [rule["record"] for rule in _rules(rule_file) if "record" in rule]
    assert set(records) == BINDING_RECORDS
    assert len(records) == len(set(records))
    for name in records:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z_]+", name), name


def test_every_metric_the_rules_read_is_a_documented_name(rule_file, repo_root):
    architecture = (repo_root / "docs" / "architecture.md").read_text(encoding="utf-8")
    text = "\n".join(rule["expr"] for rule in _rules(rule_file))
    metrics = set(re.findall(r"(?<![:\w])((?:libvirt|virtbalance)_[a-z_]+)(?![:\w])", text))
    assert "libvirt_domain_info_cpu_time_seconds_total" in metrics
    documented = set(re.findall(r"`([a-z_]+)`", architecture))

    def is_documented(metric: str) -> bool:
        # The page abbreviates siblings: `libvirt_node_memory_free_bytes` / `_available_bytes`.
        return metric in documented or any(
            suffix.startswith("_")
            and metric.endswith(suffix)
            and any(name.startswith(metric[: -len(suffix)] + "_") for name in documented)
            for suffix in documented
        )

    for metric in metrics:
        assert is_documented(metric), f"{metric} is not in docs/architecture.md"


def test_every_runbook_url_points_at_a_runbook_section(rule_file, repo_root):
    runbook = (repo_root / "docs" / "runbook.md").read_text(encoding="utf-8")
    anchors = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    for alert in _alerts(rule_file):
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(DEFAULT_RUNBOOK_BASE + "#"), url
        assert url.rsplit("#", 1)[1] in anchors, f"{alert['alert']}: no section in docs/runbook.md"


def _tested_alert_names(repo_root: Path, rule_file: Path) -> set[str]:
    """Alert names some promtool test expects to fire, over the tests that load this rule file."""
    names = set()
    for test_file in sorted((repo_root / "alerting-rules" / "tests").glob("*.yml")):
        spec = yaml.safe_load(test_file.read_text(encoding="utf-8"))
        loaded = {(test_file.parent / path).resolve() for path in spec["rule_files"]}
        if rule_file.resolve() not in loaded:
            continue
        for test in spec["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    names.add(case["alertname"])
    return names


def test_every_alert_of_the_default_rules_fires_in_a_promtool_test(repo_root):
    rule_file = repo_root / "alerting-rules" / "virtbalance.rules.yml"
    defined = {a["alert"] for a in _alerts(rule_file)}
    missing = defined - _tested_alert_names(repo_root, rule_file)
    assert not missing, f"alerts without a firing promtool test: {sorted(missing)}"


def test_the_lab_rules_have_a_promtool_test_of_their_overload(repo_root):
    rule_file = repo_root / "alerting-rules" / "virtbalance-lab.rules.yml"
    assert "HostSustainedOverload" in _tested_alert_names(repo_root, rule_file)


def test_alert_names_match_the_generator_constants(rule_file):
    names = {a["alert"] for a in _alerts(rule_file)}
    assert names == set(
        rulefile.alert_names(rulefile.build_groups(Config(policy=profile_policy("default"))))
    )
