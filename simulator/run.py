"""Run a comparison: load the traces once, build the cluster once, replay it under each policy."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from virtbalance.simulator.cluster import Cluster, build_cluster
from virtbalance.simulator.config import Simulation
from virtbalance.simulator.engine import Result, replay
from virtbalance.simulator.policies import build_plugins
from virtbalance.simulator.traces import GIB, Workload


@dataclass
class Comparison:
    """The results in ``compare`` order, and what was set up."""

    workload: Workload
    cluster: Cluster
    results: list[Result]
    load_seconds: float
    total_seconds: float

    def setup(self, simulation: Simulation) -> dict[str, Any]:
        spec = simulation.cluster
        return {
            "traces": {
                "path": simulation.traces.path,
                "format": simulation.traces.format,
                "memory": simulation.traces.memory,
                "vms": len(self.workload.vms),
                "steps": self.workload.steps,
                "step_seconds": self.workload.step,
                "days": round(self.workload.days, 4),
                "skipped_lines": len(self.workload.skipped_lines),
            },
            "cluster": {
                "hosts": spec.host_count,
                "groups": [
                    {"hosts": g.hosts, "cpus": g.cpus, "memory_gib": g.memory_bytes / GIB}
                    for g in spec.host_groups()
                ],
                "chunk_share": spec.chunk_share,
                "chunks": len(self.cluster.chunks()),
                "seed": spec.seed,
                "fill": "auto" if spec.fill is None else spec.fill,
            },
            "policy": simulation.policy.to_mapping(),
            "migration": simulation.migration.to_mapping(),
            "load_seconds": round(self.load_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
        }


def compare(
    simulation: Simulation,
    *,
    workload: Workload | None = None,
    cluster: Cluster | None = None,
    record_series: bool = True,
    progress: Callable[[Result], None] | None = None,
) -> Comparison:
    """Replay the same workload and starting placement under every policy of ``simulation.compare``.

    ``workload`` and ``cluster``: already built (a scenario's), instead of from ``simulation``.
    """
    started = time.perf_counter()
    plugins = build_plugins(list(simulation.compare), simulation.parameters, simulation.policy)
    if workload is None:
        workload = simulation.traces.load()
    loaded = time.perf_counter()
    if cluster is None:
        cluster = build_cluster(workload.vms, simulation.cluster)
    results = []
    for plugin in plugins:
        result = replay(
            workload,
            cluster,
            plugin,
            simulation.policy,
            record_series=record_series,
            cost=simulation.migration,
        )
        results.append(result)
        if progress is not None:
            progress(result)
    return Comparison(workload, cluster, results, loaded - started, time.perf_counter() - started)
