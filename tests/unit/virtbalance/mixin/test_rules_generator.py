"""The rule generator: policy values reach the rules, output is stable, bad policies are refused."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
import yaml

from virtbalance import contract
from virtbalance.commands import rules as rules_command
from virtbalance.errors import ConfigError, ValidationError
from virtbalance.mixin import rulefile
from virtbalance.mixin.config import Config, load_policy, profile_policy
from virtbalance.mixin.generated import rule_outputs, stale
from virtbalance.policy import Policy


def _rules_by_name(text: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            found.setdefault(rule.get("record") or rule["alert"], []).append(rule)
    return found


def test_checked_in_rule_files_equal_the_generator_output(repo_root):
    # The same check as `make verify-gen`, on the rule files only.
    stale_files = [path.relative_to(repo_root) for path in stale(rule_outputs(repo_root))]
    assert stale_files == [], f"{stale_files} stale: run `make generate`"


def test_policy_files_are_the_defaults_and_the_lab_profile(repo_root):
    assert load_policy(repo_root / "alerting-rules" / "policy.yaml") == Policy()
    lab = load_policy(repo_root / "alerting-rules" / "policy-lab.yaml")
    assert lab == profile_policy("lab")
    assert (lab.cpu_signal, lab.overload_for, lab.rate_window) == ("demand", 30.0, 30.0)


def test_output_is_deterministic_and_valid_yaml():
    policy = Policy()
    first = rulefile.render(Config(policy=policy))
    assert first == rulefile.render(Config(policy=Policy()))
    assert [g["name"] for g in yaml.safe_load(first)["groups"]] == [
        "virtbalance-host",
        "virtbalance-health",
    ]


def test_policy_values_reach_the_rules():
    policy = Policy().replace(
        cpu_high=0.8,
        cpu_target=0.7,
        memory_high=0.95,
        overload_for="15m",
        rate_window="2m",
        cpu_low=0.1,
        underutilized_for="3h",
        balance_spread=0.25,
        balance_for="45m",
        balance_window="30m",
        exporter_down_for="90s",
        migration_failure_window="2h",
        exporter_job="hypervisors",
    )
    by_name = _rules_by_name(rulefile.render(Config(policy=policy)))
    cpu, memory = by_name["HostSustainedOverload"]
    used = by_name["host:libvirt_memory_used:ratio"][0]["expr"]
    # The CPU signal's own form per cpu_signal is tested below.
    assert cpu["expr"].endswith(")\n> 0.8")
    assert memory["expr"] == _inline(used) + "\n> 0.95"
    assert cpu["for"] == memory["for"] == "15m"
    assert "above 80% for 15m" in cpu["annotations"]["description"]
    assert "at or below 70%" in cpu["annotations"]["description"]
    assert "[2m]" in by_name["host:libvirt_cpu_demand:ratio"][0]["expr"]
    assert "[5m]" not in rulefile.render(Config(policy=policy))
    (under,) = by_name["HostUnderutilized"]
    awake = " unless on (host) (virtbalance_host_emptied == 1)"
    assert (under["expr"].removesuffix("\n< 0.1" + awake), under["for"]) == (
        cpu["expr"].removesuffix("\n> 0.8"),
        "3h",
    )
    assert under["expr"].endswith("\n< 0.1" + awake)
    (spread,) = by_name["HostsImbalanced"]
    assert spread["for"] == "45m"
    # The spread above balance_spread while the busiest host is above cpu_target (70% here).
    assert ") > 0.25\nand\nmax(" in spread["expr"]
    assert spread["expr"].endswith(") > 0.7")
    assert spread["expr"].count(awake) == 3
    # Each host's recorded signal averaged over balance_window (30m here) before the spread.
    assert spread["expr"].count("avg_over_time(host:libvirt_cpu:ratio[30m])" + awake) == 3
    assert (
        "averaged over 30m, above 25% for 45m, the busiest above 70%"
        in (spread["annotations"]["description"])
    )
    assert "above 25% for 45m" in spread["annotations"]["description"]
    (down,) = by_name["LibvirtExporterDown"]
    assert (down["expr"], down["for"]) == ('(up{job="hypervisors"} == 0)' + awake, "1m30s")
    assert by_name["LibvirtExporterAbsent"][0]["expr"] == 'absent(up{job="hypervisors"})'
    assert "[2h]" in by_name["VirtBalanceMigrationsFailing"][0]["expr"]


def _inline(expr: str) -> str:
    """A record's expression as the alerts embed it."""
    return "(\n  " + expr.replace("\n", "\n  ") + "\n)"


MAX_OF = (
    "max by (host) (\n"
    '  label_replace({demand}, "signal", "demand", "", "")\n'
    "  or\n"
    '  label_replace({node}, "signal", "node", "", "")\n'
    ")"
)


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        ("demand", "{demand}"),
        ("node", "(\n  {node}\n  or on (host)\n  {demand}\n)"),
        ("max", MAX_OF),
    ],
)
def test_cpu_signal_chooses_the_recorded_ratio(signal, expected):
    by_name = _rules_by_name(rulefile.render(Config(policy=Policy().replace(cpu_signal=signal))))
    records = {"demand": contract.RECORD_CPU_DEMAND, "node": contract.RECORD_NODE_CPU}
    assert by_name["host:libvirt_cpu:ratio"][0]["expr"] == expected.format(**records)
    # The CPU alerts compute the same signal from the raw series, in the same evaluation, so a rule
    # engine that reads records back from storage (vmalert) decides when Prometheus does.
    inline = {
        key: _inline(by_name[name][0]["expr"]).replace("\n", "\n" if signal == "demand" else "\n  ")
        for key, name in records.items()
    }
    signal_now = expected.format(**inline)
    assert by_name["HostSustainedOverload"][0]["expr"] == f"{signal_now}\n> 0.75"
    assert by_name["HostUnderutilized"][0]["expr"] == (
        f"{signal_now}\n< 0.2 unless on (host) (virtbalance_host_emptied == 1)"
    )
    for alert in ("HostSustainedOverload", "HostUnderutilized"):
        for rule in by_name[alert]:
            assert "host:" not in rule["expr"], rule


def test_every_aggregation_keeps_the_host_label():
    by_name = _rules_by_name(rulefile.render(Config(policy=Policy())))
    for name in contract.RECORD_CPU_DEMAND, contract.RECORD_NODE_CPU, contract.RECORD_MEMORY:
        expr = by_name[name][0]["expr"]
        assert expr.count("by (host)") == expr.count("sum") + expr.count("max"), name
        assert " / on (host)" in " " + expr.replace("\n", " "), name


def test_profile_with_a_policy_file_on_top(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("cpu_high: 0.85\n", encoding="utf-8")
    policy = load_policy(path, profile="lab")
    assert (policy.cpu_high, policy.cpu_signal, policy.overload_for) == (0.85, "demand", 30.0)
    assert load_policy(path).cpu_signal == "max"


def test_bad_policy_file_lists_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "cpu_high: 2\ncpu_signal: avg\nexporter_job: 'a\"b'\nbogus: 1\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    problems = info.value.problems
    assert len(problems) == 4
    assert info.value.source == str(path)
    assert any(p.startswith("cpu_high: must be a ratio") for p in problems)
    assert any(p.startswith("cpu_signal: must be one of") for p in problems)
    assert any(p.startswith("exporter_job: expected a scrape job name") for p in problems)
    assert any(p.startswith("bogus: unknown key") for p in problems)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("rate_window: 0s\n", "rate_window: must be at least 1s"),
        ("migration_failure_window: 0s\n", "migration_failure_window: must be at least 1s"),
        ("- a list\n", "expected a mapping, got list"),
        ("cpu_high: [\n", "not valid YAML"),
    ],
)
def test_unusable_policy_files_are_refused(tmp_path, content, message):
    path = tmp_path / "p.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_policy(path)


def test_missing_policy_file_and_unknown_profile(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_policy(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="profile: must be one of default, lab"):
        load_policy(None, profile="prod")


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    rules_command.register(parser.add_subparsers())
    args = parser.parse_args(["rules", *argv])
    return int(args.func(args))


def test_command_writes_the_file_and_checks_it(tmp_path, repo_root, capsys):
    out = tmp_path / "rules.yml"
    policy = repo_root / "alerting-rules" / "policy-lab.yaml"
    assert _run("--policy", str(policy), "--output", str(out)) == 0
    text = out.read_text(encoding="utf-8")
    assert text == (repo_root / "alerting-rules" / "virtbalance-lab.rules.yml").read_text(
        encoding="utf-8"
    )
    assert _run("--policy", str(policy), "--output", str(out), "--check") == 0
    out.write_text(text.replace("for: 30s", "for: 1m", 1), encoding="utf-8")
    assert _run("--policy", str(policy), "--output", str(out), "--check") == 1
    assert "out of date" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["rules.yml"]  # no temporary file left behind


def test_command_profile_to_stdout_and_runbook_base(capsys):
    assert _run("--profile", "lab", "--runbook-base", "https://wiki.example.org/vb") == 0
    text = capsys.readouterr().out
    assert "from the lab profile" in text
    by_name = _rules_by_name(text)
    assert by_name["HostSustainedOverload"][0]["for"] == "30s"
    urls = {
        r["annotations"]["runbook_url"] for rules in by_name.values() for r in rules if "alert" in r
    }
    assert "https://wiki.example.org/vb#hostsustainedoverload" in urls
    assert all(url.startswith("https://wiki.example.org/vb#") for url in urls)


def test_command_bad_policy_raises_a_validation_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("overload_for: soon\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="overload_for: not a duration"):
        _run("--policy", str(path))


def test_exporter_job_matches_the_scrape_configs(repo_root):
    # The `up`-based alerts only see exporters scraped under the policy's job name.
    from virtbalance.lab.monitoring import SCRAPE_JOB  # noqa: PLC0415

    assert profile_policy("lab").exporter_job == SCRAPE_JOB
    example = yaml.safe_load((repo_root / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"] for job in example["scrape_configs"]}
    assert Policy().exporter_job in jobs


def test_the_virtbalance_command_has_the_rules_subcommand(tmp_path):
    from virtbalance.cli import main  # noqa: PLC0415

    out = tmp_path / "lab.rules.yml"
    assert main(["rules", "--profile", "lab", "--output", str(out)]) == 0
    assert 'absent(up{job=\\"virtbalance-exporter\\"})' in out.read_text(encoding="utf-8")


def test_balance_window_zero_spreads_the_last_sample():
    policy = Policy().replace(balance_window="0s")
    (spread,) = _rules_by_name(rulefile.render(Config(policy=policy)))["HostsImbalanced"]
    awake = "host:libvirt_cpu:ratio unless on (host) (virtbalance_host_emptied == 1)"
    assert spread["expr"] == (
        f"(\n  max({awake})\n  -\n  min({awake})\n) > 0.15\nand\nmax({awake}) > 0.65"
    )
    assert "avg_over_time" not in spread["expr"]
    assert (
        "differ by {{ $value | humanizePercentage }} of CPU, above 15%"
        in (spread["annotations"]["description"])
    )
