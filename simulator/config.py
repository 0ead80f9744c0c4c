"""The simulation file (YAML) and command-line overrides, validated into one object up front."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.reader import option, read_section, recheck
from virtbalance.simulator.cluster import ClusterSpec
from virtbalance.simulator.migration import CostModel
from virtbalance.simulator.policies import PLUGINS
from virtbalance.simulator.traces import (
    GIB,
    MEMORY_BASES,
    MemoryBasis,
    Workload,
    load_bitbrains,
    load_planetlab,
)
from virtbalance.yamlfile import read_yaml

TRACE_FORMATS = ("bitbrains", "planetlab")
DEFAULT_COMPARE = ("none", "virtbalance", "xenguard", "livemigrationspec", "mcollective", "drs")


@dataclass(frozen=True)
class TraceSpec:
    """Where the traces are and how to read them."""

    path: str = option("", relative=True)  # from the simulation file's folder
    format: str = "bitbrains"
    limit: int | None = None
    memory: MemoryBasis = "used-max"
    strict: bool = False
    # PlanetLab traces have no sizes: every VM gets these.
    planetlab_vcpus: int = 1
    planetlab_memory_gib: float = 2.0

    def problems(self, require_path: bool = True) -> list[str]:
        found = []
        if require_path and not self.path:
            found.append("traces.path: missing (a trace directory or file)")
        if self.format not in TRACE_FORMATS:
            found.append(
                f"traces.format: must be one of {', '.join(TRACE_FORMATS)}, got {self.format!r}"
            )
        if self.limit is not None and self.limit < 1:
            found.append(f"traces.limit: must be at least 1, got {self.limit}")
        if self.memory not in MEMORY_BASES:
            found.append(
                f"traces.memory: must be one of {', '.join(MEMORY_BASES)}, got {self.memory!r}"
            )
        if self.planetlab_vcpus < 1:
            found.append(f"traces.planetlab_vcpus: must be at least 1, got {self.planetlab_vcpus}")
        if self.planetlab_memory_gib <= 0:
            found.append(
                f"traces.planetlab_memory_gib: must be positive, got {self.planetlab_memory_gib}"
            )
        return found

    def load(self) -> Workload:
        if self.format == "planetlab":
            return load_planetlab(
                self.path,
                limit=self.limit,
                vcpus=self.planetlab_vcpus,
                memory_bytes=int(self.planetlab_memory_gib * GIB),
                strict=self.strict,
            )
        return load_bitbrains(
            self.path, limit=self.limit, memory_basis=self.memory, strict=self.strict
        )


@dataclass(frozen=True)
class Simulation:
    """Everything one ``virtbalance simulate`` run needs."""

    traces: TraceSpec = field(default_factory=TraceSpec)
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    policy: Policy = field(default_factory=Policy)
    compare: tuple[str, ...] = DEFAULT_COMPARE
    # The file's `policies:` section, each plug-in's parameters (read by the plug-in).
    parameters: Mapping[str, Mapping[str, Any] | None] = option(factory=dict, read=False)
    # What a migration costs; every policy pays the same.
    migration: CostModel = field(default_factory=CostModel)

    def problems(self, require_path: bool = True) -> list[str]:
        found = self.traces.problems(require_path)
        found += recheck(self.cluster, "cluster") + recheck(self.migration, "migration")
        found += [
            f"compare: unknown policy {n!r} (known: {', '.join(PLUGINS)})"
            for n in self.compare
            if n not in PLUGINS
        ]
        if not self.compare:
            found.append("compare: empty (name at least one policy)")
        return found


def load_simulation(path: str | Path | None) -> Simulation:
    """Read a simulation YAML file (None: all defaults); ValidationError listing every problem."""
    if path is None:
        return Simulation()
    return parse_simulation(read_yaml(path), str(path), base=Path(path).parent)


def parse_simulation(data: Any, source: str, base: Path | None = None) -> Simulation:
    """Validate a decoded simulation document. Relative paths are taken from ``base``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValidationError(source, [f"expected a mapping, got {type(data).__name__}"])
    problems: list[str] = []
    given: dict[str, Any] = {}
    raw_policy = data.get("policy")
    if isinstance(raw_policy, str):  # a policy file, relative to this one
        policy_path = Path(raw_policy)
        if base is not None and not policy_path.is_absolute():
            policy_path = base / policy_path
        try:
            given["policy"] = Policy.load(policy_path)
        except ValidationError as exc:
            problems += [f"policy ({exc.source}): {p}" for p in exc.problems]
    elif raw_policy is not None:
        given["policy"], found = Policy.parse(raw_policy, prefix="policy.")
        problems += found
    parameters = data.get("policies") or {}
    if isinstance(parameters, Mapping):
        given["parameters"] = cast(Mapping[str, Mapping[str, Any] | None], parameters)
    else:
        problems.append(
            f"policies: expected a mapping of policy name to parameters, got {parameters!r}"
        )
    skip = ("policy", "policies")
    read = read_section(Simulation, data, "", problems, base=base, skip=skip, **given)
    simulation = read or Simulation(**given)
    # The trace path may still come from the command line; the read listed the sections' checks.
    problems += [
        p
        for p in simulation.problems(False)
        if not p.startswith("cluster.") and not p.startswith("migration.")
    ]
    if problems:
        raise ValidationError(source, problems)
    return simulation
