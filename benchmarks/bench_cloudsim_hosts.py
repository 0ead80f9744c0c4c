"""Where the energy of a cloudsim-planetlab day goes: hosts kept on, their type, wakes, the start.

Replays one PlanetLab day on the scenario (simulator.cloudsim) under one policy and prints, beside
energy, migrations and both SLATAHs, the mean number of hosts running (and how many are G5), their
mean CPU ratio, how many hosts were woken (off at one step, running at the next) and the host-steps
of the first five steps (CloudSim's start runs every host). Variants, for before/after figures:
``--no-emptied`` replays virtbalance-consolidate without the emptied marks (relief may fill hosts
that are off), ``--marginal-pabfd`` prices THR-MMT's moves from the power after the earlier moves of
the same decision instead of the power the hosts measured before it, ``--keep-deleted`` keeps the
VMs CloudSim deletes when they ask for nothing.

    .venv/bin/python benchmarks/bench_cloudsim_hosts.py DAY_DIR [--policy thr-mmt]
        [--no-emptied] [--marginal-pabfd] [--keep-deleted] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

from virtbalance.policy import Policy
from virtbalance.simulator import cloudsim
from virtbalance.simulator.engine import replay
from virtbalance.simulator.pabfd import Floats, PowerTable
from virtbalance.simulator.policies import build_plugins
from virtbalance.simulator.policies.base import PolicyPlugin
from virtbalance.simulator.policies.thrmmt import ThrMmtParams, ThrMmtPolicy
from virtbalance.simulator.policies.virtbalance import VirtbalanceParams, snapshot_of
from virtbalance.simulator.policies.virtbalance_consolidate import VirtbalanceConsolidatePolicy
from virtbalance.simulator.power import ML110_G5
from virtbalance.simulator.state import ClusterView, Move
from virtbalance.snapshot import Snapshot

START_STEPS = 5


class NoEmptied(VirtbalanceConsolidatePolicy):
    """virtbalance-consolidate as before the emptied marks: off hosts look like running, empty ones."""

    def _snapshot(self, view: ClusterView) -> Snapshot:
        return snapshot_of(view)


class MarginalThrMmt(ThrMmtPolicy):
    """THR-MMT pricing each move from the power after the decision's earlier moves (not what was measured)."""

    def _pricing_base(self, table: PowerTable, initial: Floats) -> None:
        return None


class Watched(PolicyPlugin):
    """A plug-in wrapped to record, at every step, the hosts running and what changed."""

    name: ClassVar[str] = "watched"
    chunk_aware: ClassVar[bool] = False

    def __init__(self, inner: PolicyPlugin) -> None:
        self.inner = inner
        self.rows: list[tuple[int, int, float, int]] = []
        self.previous: set[str] | None = None

    def decide(self, view: ClusterView) -> Sequence[Move]:
        running = {h for h in view.host_names if view.domains_by_host[h]}
        g5 = sum(1 for h in running if view.host_power[h] == ML110_G5)
        capacity = sum(view.host_cpus[h] for h in running)
        used = sum(view.host_cpu_used[h] for h in running)
        woken = len(running - self.previous) if self.previous is not None else 0
        self.previous = running
        self.rows.append((len(running), g5, used / capacity if capacity else 0.0, woken))
        return self.inner.decide(view)

    def parameters(self) -> dict[str, Any]:
        return self.inner.parameters()


def plugin_for(args: argparse.Namespace, policy: Policy) -> PolicyPlugin:
    if args.policy == "virtbalance-consolidate" and args.no_emptied:
        return NoEmptied(VirtbalanceParams(), policy)
    if args.policy == "thr-mmt" and args.marginal_pabfd:
        return MarginalThrMmt(ThrMmtParams())
    (plugin,) = build_plugins([args.policy], {}, policy)
    return plugin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("day", help="a PlanetLab day directory")
    parser.add_argument("--policy", default="virtbalance-consolidate", choices=cloudsim.COMPARE)
    parser.add_argument("--no-emptied", action="store_true")
    parser.add_argument("--marginal-pabfd", action="store_true")
    parser.add_argument("--keep-deleted", action="store_true")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    workload = cloudsim.load_day(args.day)
    if args.keep_deleted:
        workload = replace(workload, vms=tuple(replace(vm, end=None) for vm in workload.vms))
    cluster = cloudsim.build(workload)
    policy = Policy.from_mapping(cloudsim.POLICY, source=cloudsim.SCENARIO)
    watched = Watched(plugin_for(args, policy))
    result = replay(
        workload, cluster, watched, policy, record_series=False, cost=cloudsim.cost_model()
    )
    rows = watched.rows
    figures = {
        **{k: v for k, v in result.metrics.to_dict().items() if k in FIELDS},
        "mean_hosts_running": round(statistics.mean(r[0] for r in rows), 1),
        "mean_g5_running": round(statistics.mean(r[1] for r in rows), 1),
        "mean_cpu_ratio_running": round(statistics.mean(r[2] for r in rows), 3),
        "hosts_woken": sum(r[3] for r in rows),
        "host_steps_first_five": sum(r[0] for r in rows[:START_STEPS]),
    }
    label = args.policy + (" --no-emptied" if args.no_emptied else "")
    label += " --marginal-pabfd" if args.marginal_pabfd else ""
    label += " --keep-deleted" if args.keep_deleted else ""
    print(f"{args.day}: {label}")
    for key, value in figures.items():
        print(f"  {key}: {value}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"day": args.day, "policy": label, **figures}, handle, indent=2)
    return 0


FIELDS = (
    "energy_kwh",
    "migrations",
    "slatah_pct",
    "slatah_cloudsim_pct",
    "pdm_pct",
    "replay_seconds",
)

if __name__ == "__main__":
    sys.exit(main())
