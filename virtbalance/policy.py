"""The rebalancing policy: one validated object, shared by the rules generator, planner, actioner and simulator."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from virtbalance.durations import format_duration, parse_duration
from virtbalance.errors import ConfigError
from virtbalance.yamlfile import read_yaml

CPU_SIGNALS = ("demand", "node", "max")
PLAN_SOLVERS = ("auto", "greedy")
_JOB_NAME = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class Policy:
    """Thresholds, windows and limits. Durations are seconds; ratios are fractions of capacity.

    The defaults here are the only defaults: every reader of a policy file goes through ``from_mapping``.
    """

    # Placement: an overloaded source must end at or below the targets, no destination may go above them.
    cpu_high: float = 0.75
    cpu_target: float = 0.65
    memory_high: float = 0.90
    memory_target: float = 0.85
    # Barriers against migration storms.
    vm_cooldown: float = 3600.0
    # The cooldown doubles with each move of a domain within vm_cooldown_window, up to vm_cooldown_max
    # (at or below vm_cooldown: a fixed cooldown). See virtbalance.barriers.cooldown.
    vm_cooldown_max: float = 21600.0
    vm_cooldown_window: float = 86400.0
    host_settle: float = 600.0
    anti_flap: float = 86400.0
    max_migrations: int = 8
    max_per_host: int = 4
    max_migrations_per_hour: int = 30
    # Partial relief (targets out of reach): a chunk moves only if it carries this share of the host's
    # capacity in a resource the host is over (smaller moves cost a migration and relieve nothing).
    partial_min_relief: float = 0.05
    # Planning time: after this long the best plan found so far is returned, marked as cut short.
    plan_budget: float = 2.0
    # auto: CP-SAT (OR-Tools) refines the greedy plan within the budget where OR-Tools is installed;
    # greedy: never.
    plan_solver: str = "auto"
    # Destinations are judged on their recent peak over this window, which must stay at or below
    # cpu_high, when the caller supplies one (virtbalance.forecast); 0: on the last sample, cpu_target.
    forecast_window: float = 3600.0
    # Other planner modes: balance narrows the spread (max - min) of host CPU ratios below
    # balance_spread; HostsImbalanced fires when the spread of the hosts' CPU averaged over
    # balance_window (0: the last sample) stays above it for balance_for while the busiest host's
    # average is above cpu_target. The average keeps bursts, which no placement evens out, from
    # firing it (virtbalance.mixin.alerts, docs/runbook.md).
    balance_spread: float = 0.15
    balance_for: float = 1800.0
    balance_window: float = 3600.0
    cpu_low: float = 0.20
    # Chronically hot: above cpu_high for more than hot_share of the last hot_window (short overloads
    # that each end before overload_for), held for hot_for, while above cpu_target now:
    # HostChronicallyHot, relieved to cpu_target like an overload. hot_share 1 never fires.
    hot_share: float = 0.25
    hot_window: float = 3600.0
    hot_for: float = 300.0
    # Alerting (Prometheus decides *when*): durations a condition must hold, the windows rates use.
    overload_for: float = 600.0
    cpu_signal: str = "max"
    rate_window: float = 300.0
    underutilized_for: float = 3600.0
    exporter_down_for: float = 300.0
    # Failed migrations count against this window; the scrape job whose `up` series tells the exporter is down.
    migration_failure_window: float = 3600.0
    exporter_job: str = "libvirt"

    @classmethod
    def from_mapping(cls, data: Any, source: str = "policy", prefix: str = "") -> Policy:
        """Validate a parsed YAML mapping; raise ConfigError listing every problem at once."""
        policy, problems = cls.parse(data, prefix)
        if problems:
            raise ConfigError(source, problems)
        return policy

    @classmethod
    def parse(cls, data: Any, prefix: str = "") -> tuple[Policy, list[str]]:
        """Validate without raising: the policy (defaults where invalid) and the problems found.

        ``prefix`` names where the mapping sits in a larger file (``policy.``) so problems name full paths.
        """
        problems: list[str] = []
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            return cls(), [f"{prefix or 'policy'}: expected a mapping, got {type(data).__name__}"]
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in data.items():
            path = f"{prefix}{key}"
            if key not in known:
                problems.append(f"{path}: unknown key (known: {', '.join(sorted(known))})")
                continue
            try:
                values[key] = _coerce(key, known[key].default, raw)
            except ValueError as exc:
                problems.append(f"{path}: {exc}")
        policy = cls(**values)
        problems.extend(f"{prefix}{p}" for p in policy._cross_field_problems())
        return (policy if not problems else cls()), problems

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        """Read a policy YAML file; ``None`` gives the defaults."""
        if path is None:
            return cls()
        return cls.from_mapping(read_yaml(path), source=str(path))

    def replace(self, **changes: Any) -> Policy:
        """A copy with some fields changed, validated like a file would be."""
        return Policy.from_mapping({**self.to_mapping(raw=True), **changes}, source="policy")

    def to_mapping(self, raw: bool = False) -> dict[str, Any]:
        """The policy as a YAML-ready mapping; durations written as ``10m`` unless ``raw``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _DURATION_FIELDS and not raw:
                value = format_duration(value)
            out[f.name] = value
        return out

    def _cross_field_problems(self) -> list[str]:
        problems = []
        if self.cpu_target > self.cpu_high:
            problems.append(
                f"cpu_target: {self.cpu_target} must not exceed cpu_high {self.cpu_high}"
            )
        if self.memory_target > self.memory_high:
            problems.append(
                f"memory_target: {self.memory_target} must not exceed memory_high {self.memory_high}"
            )
        if 0 < self.balance_window < self.rate_window:
            # A shorter average adds nothing to the rate's, and may hold no recorded point at all.
            problems.append(
                f"balance_window: {format_duration(self.balance_window)} must be 0s (the last "
                f"sample) or at least rate_window {format_duration(self.rate_window)}"
            )
        if self.cpu_low >= self.cpu_target:
            problems.append(f"cpu_low: {self.cpu_low} must be below cpu_target {self.cpu_target}")
        return problems


_DURATION_FIELDS = frozenset(
    {
        "vm_cooldown",
        "vm_cooldown_max",
        "vm_cooldown_window",
        "forecast_window",
        "host_settle",
        "anti_flap",
        "overload_for",
        "rate_window",
        "underutilized_for",
        "balance_for",
        "balance_window",
        "exporter_down_for",
        "migration_failure_window",
        "plan_budget",
        "hot_window",
        "hot_for",
    }
)
_RATIO_FIELDS = frozenset(
    {
        "cpu_high",
        "cpu_target",
        "memory_high",
        "memory_target",
        "balance_spread",
        "cpu_low",
        "hot_share",
    }
)


def _coerce(key: str, default: Any, raw: Any) -> Any:
    """Turn one raw YAML value into the field's type, or raise ValueError saying why not."""
    if key == "plan_budget":
        budget = parse_duration(raw)
        if budget <= 0:
            raise ValueError(f"must be a positive duration, got {raw!r}")
        return budget
    if key in _DURATION_FIELDS:
        return parse_duration(raw)
    if key == "exporter_job":
        # It lands inside a PromQL string literal: keep to characters that need no escaping.
        if not isinstance(raw, str) or not _JOB_NAME.fullmatch(raw):
            raise ValueError(f"expected a scrape job name ([A-Za-z0-9_.:-]+), got {raw!r}")
        return raw
    if key == "plan_solver":
        if raw not in PLAN_SOLVERS:
            raise ValueError(f"must be one of {', '.join(PLAN_SOLVERS)}, got {raw!r}")
        return raw
    if key == "cpu_signal":
        if raw not in CPU_SIGNALS:
            raise ValueError(f"must be one of {', '.join(CPU_SIGNALS)}, got {raw!r}")
        return raw
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    if isinstance(default, int) and not isinstance(default, bool):
        if not isinstance(raw, int):
            raise ValueError(f"expected a whole number, got {raw!r}")
        if raw < 0:
            raise ValueError(f"must not be negative, got {raw}")
        return raw
    if not isinstance(raw, int | float):
        raise ValueError(f"expected a number, got {raw!r}")
    value = float(raw)
    if key in _RATIO_FIELDS and not 0.0 < value <= 1.0:
        raise ValueError(f"must be a ratio in (0, 1], got {raw}")
    if key == "partial_min_relief" and not 0.0 <= value <= 1.0:
        raise ValueError(f"must be a share in [0, 1], got {raw}")
    return value
