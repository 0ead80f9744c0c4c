"""A scripted policy plug-in for the simulator's tests: given moves at given steps, nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from virtbalance.simulator.policies.base import PolicyPlugin
from virtbalance.simulator.state import ClusterView, Move


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
