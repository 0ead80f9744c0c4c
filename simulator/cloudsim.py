"""The ``cloudsim-planetlab`` scenario: CloudSim 3.0.3's PlanetLab experiment set up on the replay.

800 hosts, HP ProLiant ML110 G4 and G5 in turn (2 cores of 1860 or 2660 MIPS, 4 GB, their SPECpower
tables); the day's VMs (files in name order) in four types, a quarter each in order (CloudSim's
``Helper.createVmList``: VM i has type i // ceil(n / 4); 2500 MIPS/870 MB, 2000/1740, 1000/1740,
500/613), one core each, demanding the trace's percentage of their MIPS; 300 s steps. In the replay a
"CPU" is 1000 MIPS.

What CloudSim does that the setup copies, and why:
- The start: VMs are created in order, each on the host where its full MIPS raise the power least
  above the host's idle figure (every host measures 0% while VMs are created), among those with a core
  of at least its MIPS, the MIPS still unallocated, its RAM free, and its bandwidth (100 of the host's
  1000 Mbit/s, so at most 10 VMs a host); the 0.8 threshold never binds there (the VMs created before
  request nothing until their cloudlets start). Every policy starts from that placement.
- Cores: a VM runs on one core, so it gets at most the core's MIPS (CloudSim's
  VmSchedulerTimeSharedOverSubscription caps each virtual core at a physical one): a 2500 MIPS VM on a
  G4 host runs at most 1860 MIPS. The host then runs less than asked (SLATAH) and draws power for what
  it runs; PABFD places a VM only on a host whose core takes its current demand.
- VMs that stop: CloudSim deletes a VM for good the first time it asks for no CPU at a datacenter
  update (``HostDynamicWorkload.getCompletedVms``: requested MIPS 0). Updates come 0.1 s after each
  5-minute sample from the second one on, where the trace is interpolated, so a VM goes at the first
  sample k >= 1 that is 0 with the next one 0 too (the last sample counts as its own next). The
  replay deletes it then (``VmTrace.end``): it holds no host from there on, so its host can be off.
- Memory: the runner gives cloudlets no RAM demand (UtilizationModelNull), so once running a VM holds
  no host memory for placement; a host's 4 GB limits only the start. The replay's hosts therefore have
  room for every VM, while a migration still copies the VM's whole RAM.
- Migrations: all those of a decision run at once, each at half the host's 1 Gbit/s (62.5 MB/s), with
  no dirty-page round and no copying load; the VM loses 10% of its CPU meanwhile (PDM, simulator.sla).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from virtbalance.simulator.cluster import Cluster
from virtbalance.simulator.migration import CostModel
from virtbalance.simulator.pabfd import PowerTable
from virtbalance.simulator.power import ML110_G4, ML110_G5, PowerModel
from virtbalance.simulator.traces import VmTrace, Workload, load_planetlab

SCENARIO = "cloudsim-planetlab"
MB = 1024**2
# One replay "CPU" in MIPS.
MIPS_PER_CPU = 1000.0
HOSTS = 800
# CloudSim migrates at half the host's bandwidth: 1 Gbit/s / 2 = 62.5 MB/s.
MIGRATION_BYTES_PER_SECOND = 62.5 * MB
# VMs a host can create: its 1 Gbit/s over each VM's 100 Mbit/s (BwProvisionerSimple at creation).
VMS_PER_HOST_AT_START = 10


@dataclass(frozen=True)
class HostType:
    name: str
    cores: int
    core_mips: float
    ram_mb: int
    power: PowerModel

    @property
    def cpus(self) -> float:
        return self.cores * self.core_mips / MIPS_PER_CPU


@dataclass(frozen=True)
class VmType:
    mips: float
    ram_mb: int


HOST_TYPES = (
    HostType("ml110-g4", 2, 1860.0, 4096, ML110_G4),
    HostType("ml110-g5", 2, 2660.0, 4096, ML110_G5),
)
VM_TYPES = (VmType(2500.0, 870), VmType(2000.0, 1740), VmType(1000.0, 1740), VmType(500.0, 613))


def vm_type(index: int, count: int) -> VmType:
    """The type of VM ``index`` of ``count``: a quarter of the VMs each, in order (CloudSim's blocks)."""
    return VM_TYPES[index // math.ceil(count / len(VM_TYPES))]


def host_type(index: int) -> HostType:
    return HOST_TYPES[index % len(HOST_TYPES)]


def load_day(path: str, limit: int | None = None, strict: bool = False) -> Workload:
    """A PlanetLab day as the scenario's VMs: demand = trace percentage x the VM type's MIPS."""
    raw = load_planetlab(path, limit=limit, vcpus=1, memory_bytes=MB, strict=strict)
    vms = []
    for index, vm in enumerate(raw.vms):
        kind = vm_type(index, len(raw.vms))
        scale = kind.mips / MIPS_PER_CPU
        cpu = array("d", (value * scale for value in vm.cpu))
        vms.append(VmTrace(vm.name, 1, kind.ram_mb * MB, cpu, end=deletion_step(cpu)))
    return Workload(raw.start, raw.step, tuple(vms), raw.skipped_lines)


def deletion_step(cpu: Sequence[float]) -> int | None:
    """The sample at which CloudSim deletes a VM with this demand (see the module docstring), or None."""
    for k in range(1, len(cpu)):
        following = cpu[k + 1] if k + 1 < len(cpu) else cpu[k]
        if cpu[k] == 0.0 and following == 0.0:
            return k
    return None


def host_names(count: int = HOSTS) -> tuple[str, ...]:
    width = len(str(count - 1))
    return tuple(f"host{index:0{width}d}" for index in range(count))


def start_placement(workload: Workload, hosts: int = HOSTS) -> dict[str, str]:
    """CloudSim's creation (see the module docstring); ValueError if a VM fits nowhere."""
    names = host_names(hosts)
    types = [host_type(i) for i in range(hosts)]
    cpus = [t.cpus for t in types]
    table = PowerTable(cpus, [t.core_mips / MIPS_PER_CPU for t in types], [t.power for t in types])
    idle = table.power(np.zeros(hosts))
    used = np.zeros(hosts)
    count = np.zeros(hosts, dtype=np.int64)
    ram_free = np.array([float(t.ram_mb) for t in types])
    placement = {}
    for index, vm in enumerate(workload.vms):
        kind = vm_type(index, len(workload.vms))
        demand = kind.mips / MIPS_PER_CPU
        fits = (
            (table.core >= demand)
            & (used + demand <= table.capacity)
            & (ram_free >= kind.ram_mb)
            & (count < VMS_PER_HOST_AT_START)
        )
        if not fits.any():
            raise ValueError(f"{vm.name}: no host can take a VM of {kind.mips:.0f} MIPS")
        rise = np.where(fits, table.power(used + demand) - idle, np.inf)
        chosen = int(np.argmin(rise))
        used[chosen] += demand
        count[chosen] += 1
        ram_free[chosen] -= kind.ram_mb
        placement[vm.name] = names[chosen]
    return placement


def build(workload: Workload, hosts: int = HOSTS) -> Cluster:
    """The scenario's cluster with CloudSim's start placement (no chunks: CloudSim has none)."""
    names = host_names(hosts)
    types = [host_type(i) for i in range(hosts)]
    # Room for every VM: memory does not limit a running VM's placement (see the module docstring).
    memory = sum(vm.memory_bytes for vm in workload.vms) + HOST_TYPES[0].ram_mb * MB
    return Cluster(
        host_names=names,
        host_cpus={n: t.cpus for n, t in zip(names, types, strict=True)},
        host_memory=dict.fromkeys(names, memory),
        networks={vm.name: () for vm in workload.vms},
        placement=start_placement(workload, hosts),
        host_power={n: t.power for n, t in zip(names, types, strict=True)},
        host_core={n: t.core_mips / MIPS_PER_CPU for n, t in zip(names, types, strict=True)},
    )


def cost_model(base: CostModel | None = None) -> CostModel:
    """CloudSim's migrations: concurrent, 62.5 MB/s each, no dirty round, no copying load."""
    return replace(
        base or CostModel(),
        enabled=True,
        concurrent=True,
        bandwidth=MIGRATION_BYTES_PER_SECOND,
        dirty_per_core=0.0,
        overhead_cores=0.0,
    )


# The policies the scenario compares by default: CloudSim's baseline and virtbalance's two alerts.
COMPARE = ("thr-mmt", "virtbalance-consolidate")

# virtbalance's policy for this 800-host cluster: its defaults, with the per-plan and hourly caps
# scaled to the cluster (the defaults suit tens of hosts) and the underutilisation alert after one
# evaluation period, as CloudSim consolidates at every step.
POLICY = {
    "cpu_high": 0.8,
    "cpu_target": 0.7,
    "cpu_low": 0.3,
    "underutilized_for": "5m",
    "max_migrations": 400,
    "max_per_host": 20,
    "max_migrations_per_hour": 2000,
    "plan_solver": "greedy",
}

# CloudSim 3.0.3's own PlanetLab runner, as published: day -> policy -> figures.
PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "20110303": {
        "THR-MMT-0.8": {
            "energy_kwh": 198.08,
            "migrations": 27728,
            "slatah_pct": 5.00,
            "pdm_pct": 0.07,
        },
        "IQR-MMT-1.5": {
            "energy_kwh": 193.63,
            "migrations": 27592,
            "slatah_pct": 5.02,
            "pdm_pct": 0.07,
        },
        "MAD-MMT-2.5": {
            "energy_kwh": 189.79,
            "migrations": 27781,
            "slatah_pct": 5.09,
            "pdm_pct": 0.07,
        },
        "LR-MMT-1.2": {
            "energy_kwh": 167.83,
            "migrations": 27649,
            "slatah_pct": 5.72,
            "pdm_pct": 0.08,
        },
        "DVFS": {"energy_kwh": 764.96},
    },
    "20110322": {"THR-MMT-0.8": {"energy_kwh": 194.23, "migrations": 28381, "slatah_pct": 5.14}},
    "20110403": {"THR-MMT-0.8": {"energy_kwh": 268.37, "migrations": 36577, "slatah_pct": 4.95}},
}


def published(path: str) -> dict[str, dict[str, float]]:
    """CloudSim's published figures for the day directory ``path`` (by its name), or none."""
    return PUBLISHED.get(Path(path).name, {})


def setup(workload: Workload, cluster: Cluster, path: str) -> dict[str, Any]:
    """The scenario as the JSON's ``setup``."""
    return {
        "scenario": SCENARIO,
        "traces": {
            "path": path,
            "vms": len(workload.vms),
            "steps": workload.steps,
            "step_seconds": workload.step,
        },
        "hosts": len(cluster.host_names),
        "host_types": [
            {
                "name": t.name,
                "cores": t.cores,
                "core_mips": t.core_mips,
                "ram_mb": t.ram_mb,
                "watts": list(t.power.watts),
            }
            for t in HOST_TYPES
        ],
        "vm_types": [{"mips": v.mips, "ram_mb": v.ram_mb} for v in VM_TYPES],
        "active_hosts_at_start": len(set(cluster.placement.values())),
        "vms_deleted": sum(1 for vm in workload.vms if vm.end is not None),
        "published": published(path),
    }
