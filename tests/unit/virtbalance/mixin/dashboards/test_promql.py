"""Every dashboard expression parses, and the non-obvious ones compute what they claim (promtool, no server)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from virtbalance.contract import MIGRATION_RECENT_DURATION
from virtbalance.mixin.dashboards import build_all, expressions, queries, rebalancing, substitute
from virtbalance.policy import Policy

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool comes with the bootstrap's prometheus package"
)
# Any values do for parsing; Grafana puts durations and label values in these places.
VALUES = {
    "__rate_interval": "5m",
    "__range": "1h",
    "__interval": "1m",
    "host": "h1",
    "domain": "d1",
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def check_parses(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Wrap each expression as a recording rule: ``promtool check rules`` parses every one of them."""
    rules = [{"record": f"dashboard:expr_{i}", "expr": expr} for i, expr in enumerate(exprs)]
    (tmp_path / "exprs.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]})
    )
    return promtool("check", "rules", "exprs.yml", cwd=tmp_path)


def test_every_dashboard_expression_parses(tmp_path):
    found = [e for dashboard in build_all().values() for e in expressions(dashboard)]
    assert len(found) > 80
    result = check_parses([substitute(e.expr, VALUES) for e in found], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(found)} rules found" in result.stdout


def test_the_parse_check_rejects_a_broken_expression(tmp_path):
    result = check_parses(["sum by (host) (rate(x[5m])", "up"], tmp_path)
    assert result.returncode != 0
    assert (
        "dashboard:expr_0" in result.stdout + result.stderr
        or "unclosed" in result.stdout + result.stderr
    )


def run_promql_tests(tmp_path: Path, input_series: list[dict], cases: list[dict]) -> None:
    (tmp_path / "empty.yml").write_text("groups: []\n")
    test_file = {
        "rule_files": ["empty.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "promql_expr_test": cases}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test_file, sort_keys=False))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def series(name: str, values: str, **labels: str) -> dict:
    rendered = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{rendered}}}", "values": values}


def test_best_slot_elsewhere_is_the_largest_slot_on_another_host(tmp_path):
    run_promql_tests(
        tmp_path,
        [
            series("slot", "5x5", host="a"),
            series("slot", "3x5", host="b"),
            series("slot", "1x5", host="c"),
            series("tie", "4x5", host="a"),
            series("tie", "4x5", host="b"),
            series("lone", "2x5", host="a"),
        ],
        [
            {
                "expr": queries.best_slot_elsewhere("slot"),
                "eval_time": "2m",
                "exp_samples": [
                    {"labels": '{host="a"}', "value": 3},
                    {"labels": '{host="b"}', "value": 5},
                    {"labels": '{host="c"}', "value": 5},
                ],
            },
            {
                "expr": queries.best_slot_elsewhere("tie"),
                "eval_time": "2m",
                "exp_samples": [
                    {"labels": '{host="a"}', "value": 4},
                    {"labels": '{host="b"}', "value": 4},
                ],
            },
            # A lone host has nowhere else to send anything.
            {"expr": queries.best_slot_elsewhere("lone"), "eval_time": "2m", "exp_samples": []},
        ],
    )


GIB = 2**30
# Binary fractions throughout, so promtool's exact comparison holds.
POLICY = Policy().replace(cpu_target=0.625, memory_target=0.875, memory_high=0.9375)
# (host, used memory ratio, CPU signal); every host has 4 CPUs and 16 GiB.
HOSTS = (("a", 0.8125, 0.875), ("b", 0.5, 0.375), ("c", 0.75, 0.5625))
# (host, uuid, domain, chunk, cores used, max memory in GiB)
DOMAINS = (
    ("a", "u1", "d1", "lan1", 0.25, 2),
    ("a", "u2", "d2", "lan1", 0.25, 2),
    ("a", "u3", "d3", "domain:d3", 0.125, 7),
    ("b", "u4", "d4", "domain:d4", 0.5, 1),
    ("c", "u5", "d5", "domain:d5", 0.125, 1),
)


def cluster_series() -> list[dict]:
    out = []
    for host, memory, cpu in HOSTS:
        target = {"host": host, "instance": f"{host}:9177", "job": "libvirt"}
        out += [
            series("libvirt_node_cpus", "4x15", **target),
            series("libvirt_node_memory_total_bytes", f"{16 * GIB}x15", **target),
            series("host:libvirt_memory_used:ratio", f"{memory}x15", host=host),
            series("host:libvirt_cpu:ratio", f"{cpu}x15", host=host),
        ]
    for host, uuid, domain, chunk, cores, memory_gib in DOMAINS:
        labels = {
            "host": host,
            "instance": f"{host}:9177",
            "job": "libvirt",
            "domain": domain,
            "uuid": uuid,
        }
        out += [
            series("libvirt_domain_chunk_info", "1x15", chunk=chunk, **labels),
            series("libvirt_domain_info_maximum_memory_bytes", f"{memory_gib * GIB}x15", **labels),
            # A counter growing by cores x 60 s every minute.
            series("libvirt_domain_info_cpu_time_seconds_total", f"0+{cores * 60}x15", **labels),
        ]
    return out


def samples(rows: tuple[tuple[str, ...], ...], value_scale: float = 1) -> list[dict]:
    """Expected samples from (host, [chunk,] value) rows."""
    out = []
    for *labels, value in rows:
        rendered = f'host="{labels[0]}"' + (f', chunk="{labels[1]}"' if len(labels) > 1 else "")
        out.append({"labels": "{" + rendered + "}", "value": float(value) * value_scale})
    return out


def test_chunk_sizes_slots_and_chunks_that_fit_nowhere(tmp_path):
    # Slots up to the targets (62.5% CPU, 87.5% memory): memory a 1, b 6, c 2 GiB; CPU a 0, b 1, c 0.25.
    # Best elsewhere: memory a 6, b 2, c 6 GiB; CPU a 1, b 0.25, c 1 core.
    # lan1 (4 GiB, 0.5 cores) fits on b; d3 (7 GiB) fits nowhere; d4 (0.5 cores) fits nowhere; d5 fits.
    def case(query: str, expected: list[dict]) -> dict:
        return {
            "expr": substitute(query, {"__rate_interval": "5m"}),
            "eval_time": "10m",
            "exp_samples": expected,
        }

    def per_chunk(*values: float, scale: float = 1) -> list[dict]:
        """One sample for each chunk of DOMAINS, in their order: lan1 and d3 on a, d4 on b, d5 on c."""
        chunks = (("a", "lan1"), ("a", "domain:d3"), ("b", "domain:d4"), ("c", "domain:d5"))
        return samples(tuple((*c, v) for c, v in zip(chunks, values, strict=True)), scale)

    memory_elsewhere = queries.best_slot_elsewhere(queries.free_memory_slot_bytes(POLICY))
    run_promql_tests(
        tmp_path,
        cluster_series(),
        [
            case(queries.chunk_memory_bytes(), per_chunk(4, 7, 1, 1, scale=GIB)),
            case(queries.chunk_cpu_cores(), per_chunk(0.5, 0.125, 0.5, 0.125)),
            case(memory_elsewhere, samples((("a", 6), ("b", 2), ("c", 6)), GIB)),
            case(
                queries.best_slot_elsewhere(queries.free_cpu_slot_cores(POLICY)),
                samples((("a", 1), ("b", 0.25), ("c", 1))),
            ),
            case(queries.per_chunk(memory_elsewhere), per_chunk(6, 6, 2, 6, scale=GIB)),
            case(queries.chunks_fitting_nowhere(POLICY), [{"labels": "{}", "value": 2}]),
        ],
    )


def test_overload_state_is_firing_pending_or_ok_for_every_host(tmp_path):
    alert = {"alertname": "HostSustainedOverload"}
    run_promql_tests(
        tmp_path,
        [
            series("host:libvirt_cpu:ratio", "0.9x5", host="a"),
            series("host:libvirt_cpu:ratio", "0.8x5", host="b"),
            series("host:libvirt_cpu:ratio", "0.1x5", host="c"),
            series("ALERTS", "1x5", alertstate="firing", host="a", resource="cpu", **alert),
            series("ALERTS", "1x5", alertstate="pending", host="a", resource="memory", **alert),
            series("ALERTS", "1x5", alertstate="pending", host="b", resource="cpu", **alert),
        ],
        [
            {
                "expr": substitute(queries.overload_state('host=~".+"'), {"__interval": "1m"}),
                "eval_time": "2m",
                "exp_samples": [
                    {"labels": '{host="a"}', "value": 2},
                    {"labels": '{host="b"}', "value": 1},
                    {"labels": '{host="c"}', "value": 0},
                ],
            }
        ],
    )


def test_a_migration_is_annotated_once_and_dated_by_its_first_sample(tmp_path):
    # The actioner exports a migration's series from the scrape after it ends (minute 5 here) and keeps
    # it while it is among the last 50; the annotation must fire at one 1-minute step only.
    migration = {
        "domain": "web1",
        "chunk": "lan11",
        "source": "hv1",
        "destination": "hv2",
        "result": "done",
    }
    annotation = rebalancing.migration_annotation().build().expr
    first_seen = substitute(queries.migration_first_seen(), {"__range": "1h"})
    scrape = {"instance": "actioner:9096", "job": "virtbalance"}
    labels = "{" + ", ".join(f'{k}="{v}"' for k, v in migration.items()) + "}"
    target = "{" + ", ".join(f'{k}="{v}"' for k, v in {**migration, **scrape}.items()) + "}"
    cases = [
        {"expr": annotation, "eval_time": f"{minute}m", "exp_samples": []}
        for minute in (4, 6, 7, 9)
    ]
    cases.append(
        {
            "expr": annotation,
            "eval_time": "5m",
            "exp_samples": [{"labels": f"{MIGRATION_RECENT_DURATION}{target}", "value": 3.5}],
        }
    )
    cases.append(
        {
            "expr": first_seen,
            "eval_time": "9m",
            "exp_samples": [{"labels": labels, "value": 300_000}],
        }
    )
    run_promql_tests(
        tmp_path,
        [series(MIGRATION_RECENT_DURATION, "_x5 3.5x5", **scrape, **migration)],
        cases,
    )
