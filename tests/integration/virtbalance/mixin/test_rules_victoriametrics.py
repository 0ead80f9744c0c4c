"""The generated rules on VictoriaMetrics + vmalert: they parse, and they decide as Prometheus does."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import requests

from tests.integration.actioner.test_lab import free_port
from tests.integration.load_fixture import Schedule, phases, serve
from virtbalance.durations import parse_duration
from virtbalance.lab.monitoring import (
    prometheus_config,
    victoriametrics_args,
    victoriametrics_scrape_config,
    vmalert_args,
)
from virtbalance.mixin import rulefile
from virtbalance.mixin.config import Config
from virtbalance.policy import Policy

VMALERT = shutil.which("vmalert")
VICTORIA_METRICS = shutil.which("victoria-metrics")
PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        VMALERT is None or VICTORIA_METRICS is None,
        reason="VictoriaMetrics not installed (scripts/bootstrap installs victoria-metrics)",
    ),
]
ALERT = "HostSustainedOverload"
HOST = "hv1"
SCRAPE = "2s"  # the lab's intervals (lab.demo.stack.Timings)
EVALUATION = "2s"
POLL = 0.25


def _dry_run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VMALERT), "-dryRun", f"-rule={path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("name", ["virtbalance.rules.yml", "virtbalance-lab.rules.yml"])
def test_vmalert_dry_run_accepts_the_checked_in_rule_files(repo_root, name):
    result = _dry_run(repo_root / "alerting-rules" / name)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("signal", ["demand", "node", "max"])
def test_vmalert_dry_run_accepts_the_rules_of_every_signal(tmp_path, signal):
    path = tmp_path / "rules.yml"
    path.write_text(
        rulefile.render(Config(policy=Policy().replace(cpu_signal=signal))), encoding="utf-8"
    )
    result = _dry_run(path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_vmalert_dry_run_refuses_a_broken_expression(tmp_path):
    # The check above means something only if vmalert's dry run does fail on a bad rule.
    path = tmp_path / "broken.yml"
    path.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'rate(x[5m] >'\n",
        encoding="utf-8",
    )
    result = _dry_run(path)
    assert result.returncode != 0
    assert "bad prometheus expr" in result.stderr


# ---- the same load through both backends ----------------------------------------------------------


@contextmanager
def _service(argv: list[str], ready_url: str, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(ready_url, timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


def _state(url: str) -> str:
    """The overload alert's state on host hv1 in a rule manager's /api/v1/alerts."""
    body = requests.get(f"{url}/api/v1/alerts", timeout=2).json()
    states = {
        a["state"]
        # vmalert answers null, not [], when no alert is active.
        for a in body["data"]["alerts"] or []
        if a["labels"].get("alertname") == ALERT and a["labels"].get("host") == HOST
    }
    assert len(states) <= 1, states
    return states.pop() if states else "inactive"


def _transitions(samples: list[tuple[float, str]]) -> list[tuple[float, str]]:
    out: list[tuple[float, str]] = []
    for at, state in samples:
        if not out or out[-1][1] != state:
            out.append((at, state))
    return out


# Two 95% bursts on a 2-CPU host with a 10% baseline: the first (40 s) lifts the 30 s rate above 75%
# for about 24 s, less than `for: 30s`, so it must stay pending; the second (75 s) must fire.
LOAD = Schedule(
    cpus=2.0,
    phases=phases((0, 0.2), (10, 1.9), (50, 0.2), (90, 1.9), (165, 0.2)),
)
RUN_FOR = 190.0
EXPECTED_STATES = ["inactive", "pending", "inactive", "pending", "firing", "inactive"]


def test_prometheus_and_vmalert_give_the_same_alert_timeline_for_the_same_load(repo_root, tmp_path):
    if PROMETHEUS is None or ALERTMANAGER is None:
        pytest.skip("Prometheus/Alertmanager not installed (scripts/bootstrap installs them)")
    rules = repo_root / "alerting-rules" / "virtbalance-lab.rules.yml"
    prom_port, vm_port, vmalert_port, am_port = (free_port() for _ in range(4))
    prom_url, vm_url = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{vm_port}"
    vmalert_url, am_url = f"http://127.0.0.1:{vmalert_port}", f"http://127.0.0.1:{am_port}"
    am_config = tmp_path / "am.yml"
    am_config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    with serve(LOAD, HOST) as (target, started), ExitStack() as services:
        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(prometheus_config({HOST: target}, [rules], SCRAPE, EVALUATION, None))
        vm_config = tmp_path / "scrape.yml"
        vm_config.write_text(victoriametrics_scrape_config({HOST: target}, SCRAPE))
        services.enter_context(
            _service(
                [
                    str(ALERTMANAGER),
                    f"--config.file={am_config}",
                    f"--storage.path={tmp_path / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                f"{am_url}/-/ready",
                tmp_path / "am.log",
            )
        )
        services.enter_context(
            _service(
                [
                    str(PROMETHEUS),
                    f"--config.file={prom_config}",
                    f"--storage.tsdb.path={tmp_path / 'prom'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                f"{prom_url}/-/ready",
                tmp_path / "prometheus.log",
            )
        )
        services.enter_context(
            _service(
                [
                    str(VICTORIA_METRICS),
                    *victoriametrics_args(vm_config, tmp_path / "vm", f"127.0.0.1:{vm_port}"),
                ],
                f"{vm_url}/health",
                tmp_path / "vm.log",
            )
        )
        services.enter_context(
            _service(
                [
                    str(VMALERT),
                    *vmalert_args(
                        [rules],
                        datasource=vm_url,
                        alertmanagers=[am_url],
                        listen=f"127.0.0.1:{vmalert_port}",
                        evaluation_interval=EVALUATION,
                    ),
                ],
                f"{vmalert_url}/health",
                tmp_path / "vmalert.log",
            )
        )
        seen: dict[str, list[tuple[float, str]]] = {"prometheus": [], "vmalert": []}
        while (now := time.time()) - started < RUN_FOR:
            seen["prometheus"].append((now - started, _state(prom_url)))
            seen["vmalert"].append((now - started, _state(vmalert_url)))
            time.sleep(POLL)
    timelines = {name: _transitions(samples) for name, samples in seen.items()}
    report = "\n".join(
        f"{name}: " + ", ".join(f"{state}@{at:.1f}s" for at, state in timeline)
        for name, timeline in timelines.items()
    )
    print(report)
    evaluation, scrape = parse_duration(EVALUATION), parse_duration(SCRAPE)
    overload_for = Policy.load(repo_root / "alerting-rules" / "policy-lab.yaml").overload_for
    for timeline in timelines.values():
        # The same decisions: the short burst stays pending, the long one fires, both resolve.
        assert [state for _, state in timeline] == EXPECTED_STATES, report
        # `for:` is held the same on both: pending to firing takes overload_for, to one evaluation.
        (pending_at, _), (firing_at, _) = timeline[3], timeline[4]
        assert abs(firing_at - pending_at - overload_for) <= evaluation + POLL, report
    # When: the two evaluate at their own phase (one evaluation interval) and scrape at their own
    # phase (one scrape interval); MetricsQL's rate() also counts the last sample before the window,
    # a window up to one scrape longer, and VictoriaMetrics answers "now" 1 s in the past
    # (-search.latencyOffset). vmalert is never earlier than Prometheus by more than the phases.
    late = evaluation + scrape + scrape + 1.0 + POLL
    early = evaluation + scrape + POLL
    for (at_prom, state), (at_vm, _) in zip(
        timelines["prometheus"][1:], timelines["vmalert"][1:], strict=True
    ):
        assert -early <= at_vm - at_prom <= late, (
            f"{state}: {at_prom:.1f}s vs {at_vm:.1f}s\n{report}"
        )
