"""The checked-in JSON is the generator's output, and the generator draws its thresholds from the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtbalance.mixin.config import Config
from virtbalance.mixin.dashboards import build_all, render, substitute
from virtbalance.mixin.dashboards.__main__ import main
from virtbalance.mixin.generated import dashboard_outputs, stale, write
from virtbalance.policy import Policy

REPO = Path(__file__).resolve().parents[5]
CHECKED_IN = REPO / "grafana" / "dashboards"


def panel(dashboard: dict, title: str) -> dict:
    (found,) = [p for p in dashboard["panels"] if p["title"] == title]
    return found


def stale_files(directory, policy: Policy | None = None) -> list[str]:
    outputs = dashboard_outputs(directory, Config(policy=policy or Policy()))
    return [path.name for path in stale(outputs)]


def threshold_values(p: dict) -> list[float]:
    return [step["value"] for step in p["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]


def test_checked_in_dashboards_equal_the_generator_output():
    assert stale_files(CHECKED_IN) == [], "run: make generate"


def test_generation_is_deterministic():
    assert {n: render(d) for n, d in build_all().items()} == {
        n: render(d) for n, d in build_all().items()
    }


def test_thresholds_come_from_the_policy():
    default = build_all()["virtbalance-capacity.json"]
    assert threshold_values(
        panel(default, "CPU signal per host (the one the policy alerts on)")
    ) == [0.65, 0.75]
    assert threshold_values(panel(default, "Memory used per host")) == [0.85, 0.90]

    policy = Policy().replace(cpu_high=0.8, cpu_target=0.6, memory_high=0.95, memory_target=0.8)
    custom = build_all(Config(policy=policy))["virtbalance-capacity.json"]
    assert threshold_values(
        panel(custom, "CPU signal per host (the one the policy alerts on)")
    ) == [0.6, 0.8]
    assert threshold_values(panel(custom, "Memory used per host")) == [0.8, 0.95]
    headroom = panel(custom, "CPU headroom (cores before the overload threshold)")["targets"][0][
        "expr"
    ]
    assert headroom.startswith("(0.8 - max by (host) (host:libvirt_cpu:ratio")
    slots = panel(custom, "Largest chunk vs largest free slot: CPU")["targets"][1]["expr"]
    assert "clamp_min((0.6 - " in slots
    host_cpu = panel(
        build_all(Config(policy=policy))["virtbalance-host.json"],
        "CPU signal, demand and node utilisation",
    )
    assert threshold_values(host_cpu) == [0.6, 0.8]


def test_cli_writes_then_checks(tmp_path, capsys):
    assert main(["--output", str(tmp_path), "--check"]) == 1
    assert "differs from the generator" in capsys.readouterr().err
    assert main(["--output", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(build_all())
    assert main(["--output", str(tmp_path), "--check"]) == 0


def test_cli_check_catches_a_hand_edit(tmp_path):
    write(dashboard_outputs(tmp_path, Config()))
    edited = tmp_path / "virtbalance-vm.json"
    edited.write_text(edited.read_text().replace('"refresh": "30s"', '"refresh": "5s"'))
    assert stale_files(tmp_path) == ["virtbalance-vm.json"]


def test_cli_policy_file_sets_the_thresholds(tmp_path):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("cpu_high: 0.9\ncpu_target: 0.7\n")
    out = tmp_path / "out"
    assert main(["--output", str(out), "--policy", str(policy_file)]) == 0
    assert stale_files(out, Policy.load(policy_file)) == []
    assert "virtbalance-capacity.json" in stale_files(out)


def test_cli_bad_policy_names_the_problem(tmp_path, capsys):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("cpu_high: 2\nbogus: 1\n")
    assert main(["--output", str(tmp_path / "out"), "--policy", str(policy_file)]) == 2
    err = capsys.readouterr().err
    assert "cpu_high" in err and "bogus" in err
    assert not (tmp_path / "out").exists()


def test_substitute_replaces_both_forms_and_refuses_unknown_names():
    assert substitute(
        'x{host="$host"}[$__rate_interval] ${domain}',
        {"host": "h1", "__rate_interval": "1m", "domain": "d"},
    ) == ('x{host="h1"}[1m] d')
    with pytest.raises(KeyError, match=r"\$nope"):
        substitute("x[$nope]", {})
