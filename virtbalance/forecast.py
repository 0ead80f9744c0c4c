"""A short forecast of CPU demand for judging destinations: each domain's and host's recent peak.

The last sample says little about the next minutes of a bursty domain: a destination judged on it can
be pushed over ``cpu_high`` by the next burst of what it already runs. The recent peak (over
``forecast_window``) is what the destination has shown it can reach. A host's peak is that of the sum
of the domains it runs now (plus its load outside them), not the sum of their peaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Forecast:
    """Recent peak CPU demand in cores: per domain, and per host for the domains it runs now."""

    domains: Mapping[str, float]
    hosts: Mapping[str, float]

    def domain(self, name: str, current: float) -> float:
        """The domain's forecast, never below its current demand."""
        return max(current, self.domains.get(name, current))

    def host(self, name: str, current: float) -> float:
        """The host's forecast, never below its current demand."""
        return max(current, self.hosts.get(name, current))
