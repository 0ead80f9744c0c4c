"""The cloudsim-planetlab scenario on a small cut of a real PlanetLab day: loader, start placement, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from simulator import cloudsim
from simulator.power import ML110_G4, ML110_G5
from simulator.traces import load_planetlab
from virtbalance.cli import main

TRACES = Path(
    os.environ.get("VIRTBALANCE_TRACES", Path(__file__).resolve().parents[3] / "shared" / "traces")
)
DAY = TRACES / "planetlab" / "20110303"
MB = 1024**2

pytestmark = pytest.mark.skipif(
    not DAY.is_dir(), reason=f"the shared traces are not at {TRACES} on this machine"
)


def cut(target: Path, vms: int, steps: int) -> Path:
    """The first ``vms`` files of the day, their first ``steps`` lines, in a directory named like the day."""
    day = target / "20110303"
    day.mkdir()
    for source in sorted(DAY.iterdir())[:vms]:
        lines = source.read_text(encoding="utf-8").splitlines()[:steps]
        (day / source.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return day


def test_vm_types_in_turn_and_demand_is_the_percentage_of_their_mips():
    raw = load_planetlab(DAY, limit=8, strict=True)
    workload = cloudsim.load_day(str(DAY), limit=8, strict=True)
    assert [vm.name for vm in workload.vms] == [vm.name for vm in raw.vms]
    mips = [2500, 2000, 1000, 500] * 2
    ram = [870, 1740, 1740, 613] * 2
    for vm, plain, want_mips, want_ram in zip(workload.vms, raw.vms, mips, ram, strict=True):
        # The raw loader gives percent / 100 of one core; the scenario that times the type's MIPS,
        # in replay CPUs of 1000 MIPS.
        assert list(vm.cpu) == pytest.approx([v * want_mips / 1000 for v in plain.cpu])
        assert vm.memory_bytes == want_ram * MB
        assert vm.vcpus == 1
    assert workload.steps == 288 and workload.step == 300.0


def test_hosts_alternate_g4_and_g5_and_the_start_respects_ram_and_the_threshold():
    workload = cloudsim.load_day(str(DAY), limit=60)
    cluster = cloudsim.build(workload)
    assert len(cluster.host_names) == 800
    assert (cluster.host_cpus["host000"], cluster.host_cpus["host001"]) == (3.72, 5.32)
    assert (cluster.host_power["host000"], cluster.host_power["host001"]) == (ML110_G4, ML110_G5)
    assert set(cluster.networks.values()) == {()}
    by_host: dict[str, list[int]] = {}
    for index, vm in enumerate(workload.vms):
        by_host.setdefault(cluster.placement[vm.name], []).append(index)
    for host, members in by_host.items():
        ram = sum(cloudsim.vm_type(i).ram_mb for i in members)
        full = sum(cloudsim.vm_type(i).mips for i in members) / 1000
        assert ram <= 4096
        # Full MIPS within 0.8 of the host, unless it is the host's only VM (an idle host takes any).
        assert len(members) == 1 or full <= 0.8 * cluster.host_cpus[host] + 1e-9
    # The first VM (2500 MIPS) goes where power rises least: a G5 (5.32: 93.7 -> 107.75 W, +14.05)
    # rather than a G4 (3.72: 86 -> 108.9 W, +22.9); the first such host.
    assert cluster.placement[workload.vms[0].name] == "host001"


def test_cli_scenario_writes_cloudsim_metrics_per_policy(tmp_path, capsys):
    day = cut(tmp_path, vms=12, steps=24)
    out = tmp_path / "result.json"
    code = main(
        [
            "simulate",
            "--scenario",
            "cloudsim-planetlab",
            "--traces",
            str(day),
            "--policies",
            "none,thr-mmt,virtbalance-consolidate",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "KWH" in printed.splitlines()[0] and "SLATAH%" in printed.splitlines()[0]
    assert "CloudSim 3.0.3 published, THR-MMT-0.8: energy_kwh 198.08" in printed
    document = json.loads(out.read_text())
    setup = document["setup"]
    assert (setup["scenario"], setup["hosts"], setup["traces"]["vms"]) == (
        "cloudsim-planetlab",
        800,
        12,
    )
    assert setup["published"]["THR-MMT-0.8"]["migrations"] == 27728
    policies = {p["policy"]: p for p in document["policies"]}
    assert list(policies) == ["none", "thr-mmt", "virtbalance-consolidate"]
    for entry in policies.values():
        for field in ("energy_kwh", "slatah_pct", "pdm_pct", "slav_pct", "migrations"):
            assert field in entry
        assert entry["slav_pct"] == pytest.approx(
            entry["slatah_pct"] * entry["pdm_pct"] / 100, abs=1e-6
        )
    none = policies["none"]
    assert none["migrations"] == 0 and none["pdm_pct"] == 0.0
    # Twelve VMs start on several hosts; both consolidating policies switch hosts off and save energy.
    assert setup["active_hosts_at_start"] > 1
    for name in ("thr-mmt", "virtbalance-consolidate"):
        assert policies[name]["migrations"] > 0
        assert 0 < policies[name]["energy_kwh"] < none["energy_kwh"]


def test_cli_scenario_refuses_flags_it_fixes(tmp_path, capsys):
    code = main(
        ["simulate", "--scenario", "cloudsim-planetlab", "--hosts", "3", "--power", "ml110-g4"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--hosts: not with --scenario" in err
    assert "--power: not with --scenario" in err
    assert "--traces: missing" in err
