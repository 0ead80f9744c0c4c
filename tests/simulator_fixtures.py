"""The simulator's test helpers: a scripted policy plug-in, hand-made clusters and views, the CLI run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from virtbalance.cli import main
from virtbalance.simulator.cluster import Cluster
from virtbalance.simulator.policies.base import PolicyPlugin
from virtbalance.simulator.state import ClusterView, Move
from virtbalance.simulator.traces import GIB


class Scripted(PolicyPlugin):
    """Moves given at given steps; lets a test construct exact histories."""

    name = "scripted"
    chunk_aware = False

    def __init__(self, script: dict[int, list[Move]]) -> None:
        self.script = script
        # What each step saw firing, for tests of the alerts' timing.
        self.firing: list[frozenset[str]] = []

    def decide(self, view: ClusterView) -> Sequence[Move]:
        self.firing.append(view.firing)
        return self.script.get(view.step, [])

    def parameters(self) -> dict[str, Any]:
        return {}


def cluster_view(
    placement: Mapping[str, str],
    cpu: Mapping[str, float],
    memory: Mapping[str, int],
    hosts: tuple[str, ...],
    *,
    host_cpus: float,
    host_memory: int = 64 * GIB,
    at: float = 0.0,
    vcpus: int = 1,
    firing: frozenset[str] = frozenset(),
    **extra: Any,
) -> ClusterView:
    """``hosts`` (all alike) running ``placement`` at time ``at`` (steps of 300 s), no history.

    Each host's domain list and used CPU and memory are summed from its domains, as the engine does.
    """
    by_host = {h: [d for d, where in placement.items() if where == h] for h in hosts}
    return ClusterView(
        time=at,
        step=int(at // 300),
        step_seconds=300.0,
        host_names=hosts,
        host_cpus=dict.fromkeys(hosts, host_cpus),
        host_memory=dict.fromkeys(hosts, host_memory),
        placement=placement,
        domains_by_host=by_host,
        cpu=cpu,
        memory=memory,
        vcpus=dict.fromkeys(placement, vcpus),
        networks={},
        host_cpu_used={h: sum(cpu[d] for d in by_host[h]) for h in hosts},
        host_memory_used={h: sum(memory[d] for d in by_host[h]) for h in hosts},
        firing=firing,
        history=(),
        **extra,
    )


def uniform_cluster(
    placement: Mapping[str, str],
    *,
    cpus: float,
    hosts: tuple[str, ...] = ("h0", "h1"),
    memory: int = 64 * GIB,
    networks: Mapping[str, tuple[str, ...]] | None = None,
    **extra: Any,
) -> Cluster:
    """``hosts`` alike (``cpus`` CPUs and ``memory`` bytes each) running ``placement``; no networks unless given."""
    return Cluster(
        host_names=hosts,
        host_cpus=dict.fromkeys(hosts, cpus),
        host_memory=dict.fromkeys(hosts, memory),
        networks=networks or {},
        placement=placement,
        **extra,
    )


def simulate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[str, dict[str, Any]]:
    """Run ``virtbalance simulate`` with ``flags`` and ``--json``, which must exit 0: (stdout, JSON)."""
    out = tmp_path / "simulate.json"
    assert main(["simulate", *flags, "--json", str(out)]) == 0
    document: dict[str, Any] = json.loads(out.read_text())
    return capsys.readouterr().out, document
