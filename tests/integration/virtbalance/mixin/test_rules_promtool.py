"""The rules against the real promtool and amtool/Alertmanager: syntax, unit tests, signal modes, routing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.waiting import wait_answering
from virtbalance.mixin import rulefile
from virtbalance.mixin.config import Config
from virtbalance.policy import Policy

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (scripts/bootstrap installs prometheus)"
)
needs_amtool = pytest.mark.skipif(
    AMTOOL is None,
    reason="amtool not installed (scripts/bootstrap installs prometheus-alertmanager)",
)
pytestmark = pytest.mark.integration


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _rules_dir(repo_root: Path) -> Path:
    return repo_root / "alerting-rules"


def _unit_test_with_policy(
    repo_root: Path, tmp_path: Path, unit_test: str, changes: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    """promtool running the checked-in unit test ``unit_test`` on rules from a policy with ``changes``."""
    (tmp_path / "tests").mkdir()
    shutil.copy(_rules_dir(repo_root) / "tests" / unit_test, tmp_path / "tests")
    text = rulefile.render(Config(policy=Policy().replace(**changes)), source="policy.yaml")
    (tmp_path / "virtbalance.rules.yml").write_text(text, encoding="utf-8")
    return _run(str(PROMTOOL), "test", "rules", f"tests/{unit_test}", cwd=tmp_path)


@needs_promtool
@pytest.mark.parametrize("name", ["virtbalance.rules.yml", "virtbalance-lab.rules.yml"])
def test_promtool_check_rules_on_the_checked_in_files(repo_root, name):
    path = _rules_dir(repo_root) / name
    result = _run(str(PROMTOOL), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(g["rules"]) for g in yaml.safe_load(path.read_text())["groups"])
    assert count >= 14  # records and alerts: the file is not an empty shell
    assert f"SUCCESS: {count} rules found" in result.stdout


@needs_promtool
@pytest.mark.parametrize("signal", ["demand", "node", "max"])
def test_promtool_check_rules_for_every_signal(tmp_path, signal):
    path = tmp_path / "rules.yml"
    path.write_text(
        rulefile.render(Config(policy=Policy().replace(cpu_signal=signal))), encoding="utf-8"
    )
    result = _run(str(PROMTOOL), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _test_files(repo_root: Path) -> list[Path]:
    return sorted((_rules_dir(repo_root) / "tests").glob("*.test.yml"))


@needs_promtool
def test_promtool_unit_tests_pass(repo_root):
    files = _test_files(repo_root)
    assert len(files) >= 5
    result = _run(str(PROMTOOL), "test", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


@needs_promtool
@pytest.mark.parametrize(
    ("changes", "failing_at"),
    [
        ({"overload_for": "9m"}, "time: 24m"),  # fires one evaluation early
        ({"overload_for": "11m"}, "time: 25m"),  # fires one evaluation late
        ({"rate_window": "4m"}, "time: 24m"),  # the window shapes when the threshold is crossed
        ({"cpu_high": 0.7}, "time: 24m"),  # 72% at 14m is now above the threshold
    ],
)
def test_the_cpu_unit_test_catches_a_changed_policy(repo_root, tmp_path, changes, failing_at):
    # The promtool tests pin the boundaries: rules from another policy must fail them.
    result = _unit_test_with_policy(repo_root, tmp_path, "cpu-overload.test.yml", changes)
    assert result.returncode != 0, result.stdout
    assert failing_at in result.stdout + result.stderr


# Four hosts with 4 CPUs, loads constant from the start (1m samples):
#   hv-node:   VMs 10%, node 90% busy (something outside the VMs)
#   hv-demand: VMs 90% of the declared 4 CPUs, node 50% (a declared capacity below the machine's)
#   hv-nonode: VMs 90%, no node CPU time exported (e.g. the Go drop-in exporter)
#   hv-low:    VMs 10%, node 20%
_LOADS = {
    "hv-node": (0.1, 0.9),
    "hv-demand": (0.9, 0.5),
    "hv-nonode": (0.9, None),
    "hv-low": (0.1, 0.2),
}
_FIRING = {
    "demand": ["hv-demand", "hv-nonode"],
    "node": ["hv-node", "hv-nonode"],
    "max": ["hv-demand", "hv-node", "hv-nonode"],
}
_SIGNAL = {
    "demand": {"hv-node": 0.1, "hv-demand": 0.9, "hv-nonode": 0.9, "hv-low": 0.1},
    "node": {"hv-node": 0.9, "hv-demand": 0.5, "hv-nonode": 0.9, "hv-low": 0.2},
    "max": {"hv-node": 0.9, "hv-demand": 0.9, "hv-nonode": 0.9, "hv-low": 0.2},
}


def _signal_test_file(signal: str) -> dict[str, Any]:
    series = []
    for host, (demand, node) in _LOADS.items():
        base = f'host="{host}",instance="{host}:9178",job="libvirt"'
        series.append({"series": f"libvirt_node_cpus{{{base}}}", "values": "4x40"})
        series.append(
            {
                "series": f'libvirt_domain_info_cpu_time_seconds_total{{{base},domain="vm",uuid="u"}}',
                "values": f"0+{round(demand * 240)}x40",
            }
        )
        if node is not None:
            for mode, share in (("user", node), ("idle", 1 - node)):
                series.append(
                    {
                        "series": f'libvirt_node_cpu_seconds_total{{{base},mode="{mode}"}}',
                        "values": f"0+{round(share * 240)}x40",
                    }
                )
    firing = 'ALERTS{alertname="HostSustainedOverload",alertstate="firing"}'

    def alerts(hosts: list[str]) -> list[dict[str, Any]]:
        return [
            {
                "labels": (
                    f'ALERTS{{alertname="HostSustainedOverload",alertstate="firing",host="{host}",'
                    'resource="cpu",severity="warning"}'
                ),
                "value": 1,
            }
            for host in hosts
        ]

    signal_values: list[dict[str, Any]] = [
        {"labels": f'host:libvirt_cpu:ratio{{host="{host}"}}', "value": value}
        for host, value in sorted(_SIGNAL[signal].items())
    ]
    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    # Still inside the first 10 minutes: nothing fires yet in any mode.
                    {"expr": firing, "eval_time": "9m", "exp_samples": []},
                    {"expr": firing, "eval_time": "30m", "exp_samples": alerts(_FIRING[signal])},
                    {
                        "expr": "round(host:libvirt_cpu:ratio * 100) / 100",
                        "eval_time": "30m",
                        "exp_samples": [
                            {**s, "labels": s["labels"].replace("host:libvirt_cpu:ratio", "")}
                            for s in signal_values
                        ],
                    },
                ],
            }
        ],
    }


@needs_promtool
@pytest.mark.parametrize("signal", ["demand", "node", "max"])
def test_each_signal_mode_fires_on_the_hosts_it_should(tmp_path, signal):
    (tmp_path / "rules.yml").write_text(
        rulefile.render(Config(policy=Policy().replace(cpu_signal=signal))), encoding="utf-8"
    )
    (tmp_path / "signal.test.yml").write_text(
        yaml.safe_dump(_signal_test_file(signal), sort_keys=False), encoding="utf-8"
    )
    result = _run(str(PROMTOOL), "test", "rules", "signal.test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_signal_expectations_differ_between_modes(tmp_path):
    # The mode-specific expectations are not interchangeable: demand's test fails on max's rules.
    (tmp_path / "rules.yml").write_text(
        rulefile.render(Config(policy=Policy().replace(cpu_signal="max"))), encoding="utf-8"
    )
    (tmp_path / "signal.test.yml").write_text(
        yaml.safe_dump(_signal_test_file("demand"), sort_keys=False), encoding="utf-8"
    )
    result = _run(str(PROMTOOL), "test", "rules", "signal.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert 'host="hv-node"' in result.stdout + result.stderr


# --- Alertmanager side -------------------------------------------------------------------------


@needs_amtool
def test_example_alertmanager_config_is_valid(repo_root):
    result = _run(str(AMTOOL), "check-config", str(repo_root / "deploy" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_amtool
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            ["alertname=HostSustainedOverload", "host=hv1", "resource=cpu"],
            "virtbalance-actioner,operators",
        ),
        (
            ["alertname=HostSustainedOverload", "host=hv2", "resource=memory"],
            "virtbalance-actioner,operators",
        ),
        (
            ["alertname=HostUnderutilized", "host=hv1", "severity=info"],
            "virtbalance-actioner,operators",
        ),
        (["alertname=HostsImbalanced", "severity=info"], "virtbalance-actioner,operators"),
        (
            ["alertname=HostChronicallyHot", "host=hv1", "resource=cpu"],
            "virtbalance-actioner,operators",
        ),
        (["alertname=LibvirtExporterDown", "host=hv1", "severity=warning"], "operators"),
    ],
)
def test_the_actioners_alerts_reach_it_and_the_others_only_the_operators(
    repo_root, labels, receivers
):
    config = str(repo_root / "deploy" / "alertmanager.yml")
    result = _run(str(AMTOOL), "config", "routes", "test", f"--config.file={config}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_actioner_receiver_settings(repo_root):
    config = yaml.safe_load((repo_root / "deploy" / "alertmanager.yml").read_text(encoding="utf-8"))
    routes = {
        r["matchers"][0]: r
        for r in config["route"]["routes"]
        if r["receiver"] == "virtbalance-actioner"
    }
    assert set(routes) == {
        'alertname = "HostSustainedOverload"',
        'alertname = "HostUnderutilized"',
        'alertname = "HostsImbalanced"',
        'alertname = "HostChronicallyHot"',
    }
    route = routes['alertname = "HostSustainedOverload"']
    assert route["group_by"] == ["alertname", "host"]
    # Relief at any time; consolidation only inside named intervals that the file defines.
    assert "active_time_intervals" not in route
    consolidation = routes['alertname = "HostUnderutilized"']
    intervals = {t["name"] for t in config["time_intervals"]}
    assert consolidation["active_time_intervals"] == ["nights", "weekends"]
    assert set(consolidation["active_time_intervals"]) <= intervals
    (receiver,) = [r for r in config["receivers"] if r["name"] == "virtbalance-actioner"]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"].endswith("/api/v1/alerts")
    assert webhook["send_resolved"] is True
    auth = webhook["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and auth["credentials_file"].startswith("/")
    assert "credentials" not in auth


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> None:
    """OSError (urllib's HTTPError is one) until ``url`` answers 200."""
    with urllib.request.urlopen(url, timeout=1) as response:
        if response.status != 200:
            raise OSError(f"{url} answered {response.status}")


@pytest.fixture
def alertmanager(tmp_path):
    if ALERTMANAGER is None or AMTOOL is None:
        pytest.skip(
            "Alertmanager not installed (scripts/bootstrap installs prometheus-alertmanager)"
        )
    config = tmp_path / "am.yml"
    config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n", encoding="utf-8")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_answering("Alertmanager", lambda: _ready(f"{url}/-/ready"), proc, 20)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _documented_silence_commands(repo_root: Path) -> list[str]:
    readme = (repo_root / "alerting-rules" / "README.md").read_text(encoding="utf-8")
    return [
        line.strip()
        for line in readme.splitlines()
        if line.startswith("amtool --alertmanager.url=$AM silence add ")
    ]


def test_documented_freeze_commands_create_the_silences_the_actioner_matches(
    repo_root, alertmanager
):
    commands = _documented_silence_commands(repo_root)
    assert len(commands) == 4
    for command in commands:
        argv = command.replace("$AM", alertmanager)
        # The README quotes comments for a shell; split the same way a shell would.
        result = subprocess.run(
            ["sh", "-c", argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "PATH": f"{Path(str(AMTOOL)).parent}:{os.environ['PATH']}"},
        )
        assert result.returncode == 0, result.stderr
    with urllib.request.urlopen(f"{alertmanager}/api/v2/silences", timeout=5) as response:
        silences = json.load(response)
    matchers = sorted(
        tuple(sorted((m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in s["matchers"]))
        for s in silences
        if s["status"]["state"] == "active"
    )
    alertname = ("alertname", "VirtBalanceMigration", True, False)
    assert matchers == sorted(
        [
            (alertname,),
            (alertname, ("source", "hv1", True, False)),
            (alertname, ("destination", "hv1", True, False)),
            (alertname, ("domain", "db1", True, False)),
        ]
    )


@needs_promtool
@pytest.mark.parametrize(
    ("changes", "failing_at"),
    [
        ({"hot_for": "4m"}, "time: 1h35m"),  # fires one evaluation early
        ({"hot_for": "6m"}, "time: 1h36m"),  # fires one evaluation late
        ({"hot_share": 0.2}, "time: 1h35m"),  # 15 of 61 evaluations above is now enough
        ({"hot_window": "50m"}, "time: 1h35m"),  # fewer points: the same bursts are a larger share
        ({"cpu_target": 0.6}, "time: 1h41m"),  # 62% at 102m still counts as hot now
    ],
)
def test_the_chronically_hot_unit_test_catches_a_changed_policy(
    repo_root, tmp_path, changes, failing_at
):
    result = _unit_test_with_policy(repo_root, tmp_path, "chronically-hot.test.yml", changes)
    assert result.returncode != 0, result.stdout
    assert failing_at in result.stdout + result.stderr
