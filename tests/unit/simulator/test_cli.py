"""``virtbalance simulate`` end to end on the fixture traces, and the simulation file's validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.simulator_fixtures import simulate
from virtbalance.cli import main
from virtbalance.errors import ValidationError
from virtbalance.simulator.config import parse_simulation

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "traces"


def test_simulate_writes_table_json_and_plot(tmp_path, capsys):
    out_png = tmp_path / "hosts.png"
    printed, document = simulate(
        tmp_path,
        capsys,
        *("--traces", str(FIXTURES / "bitbrains"), "--hosts", "2", "--cpus", "2"),
        *("--memory-gib", "16", "--policies", "none,livemigrationspec", "--plot", str(out_png)),
    )
    assert printed.splitlines()[0].split()[:3] == ["POLICY", "OVERLOAD%", "WORST"]
    assert [p["policy"] for p in document["policies"]] == ["none", "livemigrationspec"]
    assert document["setup"]["traces"]["vms"] == 2
    assert document["setup"]["cluster"]["hosts"] == 2
    none = document["policies"][0]
    # First fit (largest first): VM 1 (3 GiB) lands on host0, VM 2 no longer fits there under the
    # auto fill (4/32 + 0.05 of 16 GiB) and goes to host1. host0 peaks at 1.5 of 2 cores (0.75, not
    # above); host1 carries 2 and 4 cores of 2 at steps 1 and 3 (1.0 and 2.0).
    assert none["overloaded_host_steps"] == 2
    assert none["worst_cpu_ratio"] == 2.0
    assert none["migrations"] == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_reports_every_problem(tmp_path, capsys):
    config = tmp_path / "sim.yaml"
    config.write_text(
        "traces: {format: csv, limit: 0}\n"
        "cluster: {hosts: 0, cpus: -1, colour: red}\n"
        "policy: {cpu_high: 2}\n"
        "compare: [none, magic]\n"
        "extra: 1\n"
    )
    code = main(["simulate", "--config", str(config)])
    assert code == 2
    err = capsys.readouterr().err
    for needle in (
        "extra: unknown key",
        "traces.format: must be one of bitbrains, planetlab",
        "traces.limit: must be at least 1",
        "cluster.colour: unknown key",
        "policy.cpu_high: must be a ratio",
        "compare: unknown policy 'magic'",
    ):
        assert needle in err


def test_simulation_file_relative_paths_and_fill_auto(tmp_path):
    (tmp_path / "policy.yaml").write_text("cpu_high: 0.8\ncpu_target: 0.7\n")
    simulation = parse_simulation(
        {
            "traces": {"path": "traces"},
            "cluster": {"hosts": 3, "memory_gib": 64, "fill": "auto"},
            "policy": "policy.yaml",
            "compare": ["none"],
            "policies": {"drs": {"tolerance": 0.2}},
        },
        "sim.yaml",
        base=tmp_path,
    )
    assert simulation.traces.path == str(tmp_path / "traces")
    assert simulation.cluster.fill is None
    assert simulation.cluster.memory_bytes == 64 * 1024**3
    assert simulation.policy.cpu_high == 0.8
    with pytest.raises(ValidationError, match=r"missing\.yaml\): cannot read"):
        parse_simulation({"policy": "missing.yaml"}, "sim.yaml", base=tmp_path)
