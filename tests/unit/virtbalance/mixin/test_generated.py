"""``python -m virtbalance.mixin``: generate writes every file, verify names each stale one."""

from __future__ import annotations

import shutil

import yaml

from virtbalance.mixin import rulefile
from virtbalance.mixin.__main__ import main
from virtbalance.mixin.config import Config
from virtbalance.mixin.dashboards import build_all
from virtbalance.mixin.generated import RULE_FILES, repository_outputs, stale

GENERATED = [
    "alerting-rules/virtbalance.rules.yml",
    "alerting-rules/virtbalance-lab.rules.yml",
    "grafana/dashboards/virtbalance-capacity.json",
    "grafana/dashboards/virtbalance-rebalancing.json",
    "grafana/dashboards/virtbalance-host.json",
    "grafana/dashboards/virtbalance-vm.json",
]


def policies_only(repo_root, tmp_path):
    for policy_file, _ in RULE_FILES:
        (tmp_path / policy_file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_root / policy_file, tmp_path / policy_file)
    return tmp_path


def test_the_repository_files_are_current(repo_root):
    outputs = repository_outputs(repo_root)
    assert [str(o.path.relative_to(repo_root)) for o in outputs] == GENERATED
    assert stale(outputs) == []


def test_generate_then_verify(repo_root, tmp_path, capsys):
    root = policies_only(repo_root, tmp_path)
    assert main(["verify", "--root", str(root)]) == 1
    assert capsys.readouterr().err.count("is stale; run `make generate`") == len(GENERATED)
    assert main(["generate", "--root", str(root)]) == 0
    assert capsys.readouterr().out.split() == [str(root / name) for name in GENERATED]
    for name in GENERATED:
        assert (root / name).read_text() == (repo_root / name).read_text(), name
    assert main(["verify", "--root", str(root)]) == 0


def test_verify_names_the_stale_file(repo_root, tmp_path, capsys):
    root = policies_only(repo_root, tmp_path)
    assert main(["generate", "--root", str(root)]) == 0
    capsys.readouterr()
    edited = root / "alerting-rules" / "virtbalance-lab.rules.yml"
    edited.write_text(edited.read_text().replace("for: 30s", "for: 31s", 1))
    assert main(["verify", "--root", str(root)]) == 1
    assert capsys.readouterr().err == f"mixin: {edited} is stale; run `make generate`\n"


def test_a_bad_policy_file_is_refused_before_anything_is_written(repo_root, tmp_path, capsys):
    root = policies_only(repo_root, tmp_path)
    (root / "alerting-rules" / "policy.yaml").write_text("cpu_high: 2\n")
    assert main(["generate", "--root", str(root)]) == 2
    assert "cpu_high" in capsys.readouterr().err
    assert not (root / "grafana").exists()


def test_one_config_names_the_runbook_and_the_dashboards_tag():
    config = Config(runbook_base="https://runbooks.example/vb", dashboard_tag="kvm")
    groups = yaml.safe_load(rulefile.render(config))["groups"]
    urls = {r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r}
    assert "https://runbooks.example/vb#hostsustainedoverload" in urls
    assert all(url.startswith("https://runbooks.example/vb#") for url in urls)
    for dashboard in build_all(config).values():
        assert dashboard["tags"] == ["kvm"]
        assert [link["tags"] for link in dashboard["links"]] == [["kvm"]]
