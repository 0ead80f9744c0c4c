"""The mixin's one configuration object: thresholds, windows, selectors and names, and how to load it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virtbalance.durations import format_duration
from virtbalance.errors import ConfigError
from virtbalance.policy import Policy
from virtbalance.yamlfile import read_yaml

DEFAULT_RUNBOOK_BASE = "https://github.com/virtbalance/virtbalance/blob/main/docs/runbook.md"

PROFILES = ("default", "lab")

# The lab's hosts share one machine: node CPU is the same for all of them, so only the VMs' own demand
# tells them apart. Its Prometheus scrapes every few seconds, so short windows still hold many samples.
LAB_PROFILE: Mapping[str, Any] = {
    "cpu_signal": "demand",
    "rate_window": "30s",
    "overload_for": "30s",
    "underutilized_for": "2m",
    "balance_for": "1m",
    "balance_window": "1m",
    "exporter_down_for": "30s",
    "migration_failure_window": "5m",
    # The lab's Prometheus scrape job (lab/monitoring.py).
    "exporter_job": "virtbalance-exporter",
}


@dataclass(frozen=True)
class Config:
    """What the alerts, recording rules and dashboards are generated from.

    The policy holds the thresholds, windows and the exporter's scrape job (the one selector the rules
    need); the rest are the names an operator may want to change without touching a policy.
    """

    policy: Policy = field(default_factory=Policy)
    # The alerts' runbook_url anchors point into this page.
    runbook_base: str = DEFAULT_RUNBOOK_BASE
    # Every dashboard carries this tag, and links to its siblings by it.
    dashboard_tag: str = "virtbalance"


def profile_policy(
    profile: str, overrides: Mapping[str, Any] | None = None, source: str = "policy"
) -> Policy:
    """The policy of a profile with a policy file's values on top; raises ConfigError on bad input."""
    if profile not in PROFILES:
        raise ConfigError(
            source, [f"profile: must be one of {', '.join(PROFILES)}, got {profile!r}"]
        )
    base: dict[str, Any] = dict(LAB_PROFILE) if profile == "lab" else {}
    if overrides is not None:
        base.update(overrides)
    policy = Policy.from_mapping(base, source=source)
    problems = generation_problems(policy)
    if problems:
        raise ConfigError(source, problems)
    return policy


def load_policy(path: str | Path | None, profile: str = "default") -> Policy:
    """Read a policy file over a profile (``None``: the profile alone); every problem in one ConfigError."""
    if path is None:
        return profile_policy(profile, source=f"profile {profile}")
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(str(path), [f"expected a mapping, got {type(data).__name__}"])
    return profile_policy(profile, data, source=str(path))


def generation_problems(policy: Policy) -> list[str]:
    """What makes a valid policy unusable for rules: a rate needs a window of some length."""
    problems = []
    if policy.rate_window < 1:
        problems.append(
            f"rate_window: must be at least 1s for rate(), got {format_duration(policy.rate_window)}"
        )
    if policy.migration_failure_window < 1:
        problems.append(
            "migration_failure_window: must be at least 1s for increase(), "
            f"got {format_duration(policy.migration_failure_window)}"
        )
    if policy.hot_window < 1:
        problems.append(
            "hot_window: must be at least 1s for a subquery, "
            f"got {format_duration(policy.hot_window)}"
        )
    return problems
