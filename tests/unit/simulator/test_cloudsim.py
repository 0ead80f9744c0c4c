"""The cloudsim-planetlab scenario on a small cut of a real PlanetLab day: loader, start placement, CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.simulator_fixtures import simulate
from virtbalance.cli import main
from virtbalance.simulator import cloudsim
from virtbalance.simulator.power import ML110_G4, ML110_G5
from virtbalance.simulator.traces import load_planetlab

TRACES = Path(
    os.environ.get("VIRTBALANCE_TRACES", Path(__file__).resolve().parents[4] / "shared" / "traces")
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


def test_vm_types_in_quarter_blocks_and_demand_is_the_percentage_of_their_mips():
    raw = load_planetlab(DAY, limit=8, strict=True)
    workload = cloudsim.load_day(str(DAY), limit=8, strict=True)
    assert [vm.name for vm in workload.vms] == [vm.name for vm in raw.vms]
    # CloudSim's Helper.createVmList: VM i has type i // ceil(8 / 4), two VMs of each type in order.
    mips = [2500, 2500, 2000, 2000, 1000, 1000, 500, 500]
    ram = [870, 870, 1740, 1740, 1740, 1740, 613, 613]
    for vm, plain, want_mips, want_ram in zip(workload.vms, raw.vms, mips, ram, strict=True):
        # The raw loader gives percent / 100 of one core; the scenario that times the type's MIPS,
        # in replay CPUs of 1000 MIPS.
        assert list(vm.cpu) == pytest.approx([v * want_mips / 1000 for v in plain.cpu])
        assert vm.memory_bytes == want_ram * MB
        assert vm.vcpus == 1
        assert vm.end == cloudsim.deletion_step(vm.cpu)
    assert workload.steps == 288 and workload.step == 300.0
    # Five VMs: ceil(5 / 4) = 2 a type, so the last type has none and the third one VM.
    assert [cloudsim.vm_type(i, 5).mips for i in range(5)] == [2500, 2500, 2000, 2000, 1000]


def test_a_vm_is_deleted_at_its_first_update_that_asks_for_nothing():
    # Updates come 0.1 s after samples 1, 2, ...: the demand there is 0 only if the sample and the
    # next are both 0 (the first sample is never looked at; the last counts as its own next).
    assert cloudsim.deletion_step([0.5, 0.0, 0.3, 0.0, 0.0, 1.0]) == 3
    assert cloudsim.deletion_step([0.0, 0.0, 1.0]) is None
    assert cloudsim.deletion_step([1.0, 1.0, 0.0]) == 2
    assert cloudsim.deletion_step([1.0, 0.1, 0.2]) is None


def test_hosts_alternate_g4_and_g5_and_the_start_is_cloudsims_creation():
    workload = cloudsim.load_day(str(DAY), limit=60)
    cluster = cloudsim.build(workload)
    assert len(cluster.host_names) == 800
    assert (cluster.host_cpus["host000"], cluster.host_cpus["host001"]) == (3.72, 5.32)
    assert (cluster.host_core["host000"], cluster.host_core["host001"]) == (1.86, 2.66)
    assert (cluster.host_power["host000"], cluster.host_power["host001"]) == (ML110_G4, ML110_G5)
    assert set(cluster.networks.values()) == {()}
    by_host: dict[str, list[int]] = {}
    for index, vm in enumerate(workload.vms):
        by_host.setdefault(cluster.placement[vm.name], []).append(index)
    for host, members in by_host.items():
        kinds = [cloudsim.vm_type(i, 60) for i in members]
        assert sum(k.ram_mb for k in kinds) <= 4096
        assert sum(k.mips for k in kinds) / 1000 <= cluster.host_cpus[host] + 1e-9
        assert all(k.mips / 1000 <= cluster.host_core[host] for k in kinds)
        assert len(members) <= cloudsim.VMS_PER_HOST_AT_START
    # VMs 0-14 are of 2500 MIPS: no G4 core takes them. On an idle G5 one raises the power from the
    # idle 93.7 W to 110 + 0.699 x 6 = 114.2 W (+20.5); on the G5 that has one already, to 94% of
    # 5.32: 133.8 W (+40.1, priced from idle: every host measures 0% while VMs are created). So
    # each takes the next idle G5.
    assert [cluster.placement[vm.name] for vm in workload.vms[:3]] == [
        "host001",
        "host003",
        "host005",
    ]
    # VM 15 (2000 MIPS): an idle G5 105 + 0.759 x 5 = 108.8 W (+15.1) beats an idle G4 (53.8%:
    # 103.5 W, +17.5) and a G5 with a 2500 (84.6%: 130.8 W, +37.1): the 16th G5.
    assert cluster.placement[workload.vms[15].name] == "host031"


def test_cli_scenario_writes_cloudsim_metrics_per_policy(tmp_path, capsys):
    day = cut(tmp_path, vms=12, steps=24)
    printed, document = simulate(
        tmp_path,
        capsys,
        *("--scenario", "cloudsim-planetlab", "--traces", str(day)),
        *("--policies", "none,thr-mmt,virtbalance-consolidate"),
    )
    assert "KWH" in printed.splitlines()[0] and "SLATAH%" in printed.splitlines()[0]
    assert "CloudSim 3.0.3 published, THR-MMT-0.8: energy_kwh 198.08" in printed
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
