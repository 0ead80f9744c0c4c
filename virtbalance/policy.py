"""The rebalancing policy: one validated object, shared by the rules generator, planner, actioner and simulator."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from virtbalance.durations import format_duration
from virtbalance.errors import ConfigError
from virtbalance.reader import (
    DURATION,
    NOT_NEGATIVE,
    RATIO,
    SHARE,
    Check,
    option,
    option_of,
    read_section,
)
from virtbalance.yamlfile import read_yaml

CPU_SIGNALS = ("demand", "node", "max")
PLAN_SOLVERS = ("auto", "greedy")
_JOB_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
# Fractions of a host's capacity.
_RATIO = (RATIO,)
_SHARE = (SHARE,)
_COUNT = (NOT_NEGATIVE,)


def _ratio(default: float) -> Any:
    return option(default, checks=_RATIO)


def _duration(default: float) -> Any:
    return option(default, unit=DURATION)


def _count(default: int) -> Any:
    return option(default, checks=_COUNT)


@dataclass(frozen=True)
class Policy:
    """Thresholds, windows and limits. Durations are seconds; ratios are fractions of capacity.

    The defaults here are the only defaults: every reader of a policy file goes through ``from_mapping``.
    """

    # Placement: an overloaded source must end at or below the targets, no destination may go above them.
    cpu_high: float = _ratio(0.75)
    cpu_target: float = _ratio(0.65)
    memory_high: float = _ratio(0.90)
    memory_target: float = _ratio(0.85)
    # Barriers against migration storms.
    vm_cooldown: float = _duration(3600.0)
    # The cooldown doubles with each move of a domain within vm_cooldown_window, up to vm_cooldown_max
    # (at or below vm_cooldown: a fixed cooldown). See virtbalance.barriers.cooldown.
    vm_cooldown_max: float = _duration(21600.0)
    vm_cooldown_window: float = _duration(86400.0)
    host_settle: float = _duration(600.0)
    anti_flap: float = _duration(86400.0)
    max_migrations: int = _count(8)
    max_per_host: int = _count(4)
    max_migrations_per_hour: int = _count(30)
    # Partial relief (targets out of reach): a chunk moves only if it carries this share of the host's
    # capacity in a resource the host is over (smaller moves cost a migration and relieve nothing).
    partial_min_relief: float = option(0.05, checks=_SHARE)
    # Planning time: after this long the best plan found so far is returned, marked as cut short.
    plan_budget: float = option(
        2.0, unit=DURATION, checks=(Check(lambda v: v > 0, "must be a positive duration"),)
    )
    # auto: CP-SAT (OR-Tools) refines the greedy plan within the budget where OR-Tools is installed;
    # greedy: never.
    plan_solver: str = option("auto", choices=PLAN_SOLVERS)
    # Destinations are judged on their recent peak over this window, which must stay at or below
    # cpu_high, when the caller supplies one (virtbalance.forecast); 0: on the last sample, cpu_target.
    forecast_window: float = _duration(3600.0)
    # Other planner modes: balance narrows the spread (max - min) of host CPU ratios below
    # balance_spread; HostsImbalanced fires when the spread of the hosts' CPU averaged over
    # balance_window (0: the last sample) stays above it for balance_for while the busiest host's
    # average is above cpu_target. The average keeps bursts, which no placement evens out, from
    # firing it (virtbalance.mixin.alerts, docs/runbook.md).
    balance_spread: float = _ratio(0.15)
    balance_for: float = _duration(1800.0)
    balance_window: float = _duration(3600.0)
    cpu_low: float = _ratio(0.20)
    # Chronically hot: above cpu_high for more than hot_share of the last hot_window (short overloads
    # that each end before overload_for), held for hot_for, while above cpu_target now:
    # HostChronicallyHot, relieved to cpu_target like an overload. hot_share 1 never fires.
    hot_share: float = _ratio(0.25)
    hot_window: float = _duration(3600.0)
    hot_for: float = _duration(300.0)
    # Alerting (Prometheus decides *when*): durations a condition must hold, the windows rates use.
    overload_for: float = _duration(600.0)
    cpu_signal: str = option("max", choices=CPU_SIGNALS)
    rate_window: float = _duration(300.0)
    underutilized_for: float = _duration(3600.0)
    exporter_down_for: float = _duration(300.0)
    # Failed migrations count against this window; the scrape job whose `up` series tells the exporter is down.
    migration_failure_window: float = _duration(3600.0)
    # It lands inside a PromQL string literal: characters that need no escaping.
    exporter_job: str = option(
        "libvirt",
        checks=(
            Check(
                lambda v: _JOB_NAME.fullmatch(v) is not None,
                "expected a scrape job name ([A-Za-z0-9_.:-]+)",
            ),
        ),
    )

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
        if data is not None and not isinstance(data, Mapping):
            return cls(), [f"{prefix or 'policy'}: expected a mapping, got {type(data).__name__}"]
        found: list[str] = []
        policy = read_section(cls, data, "", found)
        problems = [f"{prefix}{p}" for p in found]
        return (policy if policy is not None and not problems else cls()), problems

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
            if option_of(f).unit == DURATION and not raw:
                value = format_duration(value)
            out[f.name] = value
        return out

    def section_problems(self) -> list[tuple[str, str]]:
        """Problems of one field against another, as (key, problem)."""
        problems = []
        if self.cpu_target > self.cpu_high:
            problems.append(
                ("cpu_target", f"{self.cpu_target} must not exceed cpu_high {self.cpu_high}")
            )
        if self.memory_target > self.memory_high:
            problems.append(
                (
                    "memory_target",
                    f"{self.memory_target} must not exceed memory_high {self.memory_high}",
                )
            )
        if 0 < self.balance_window < self.rate_window:
            # A shorter average adds nothing to the rate's, and may hold no recorded point at all.
            problems.append(
                (
                    "balance_window",
                    f"{format_duration(self.balance_window)} must be 0s (the last sample) or at "
                    f"least rate_window {format_duration(self.rate_window)}",
                )
            )
        if self.cpu_low >= self.cpu_target:
            problems.append(
                ("cpu_low", f"{self.cpu_low} must be below cpu_target {self.cpu_target}")
            )
        return problems
