"""A short forecast of CPU demand: each domain's and host's recent peak, and each domain's recent average.

The last sample says little about the next minutes of a bursty domain: a destination judged on it can
be pushed over ``cpu_high`` by the next burst of what it already runs. The recent peak (over
``forecast_window``) is what the destination has shown it can reach. A host's peak is that of the sum
of the domains it runs now (plus its load outside them), not the sum of their peaks.

Balance judges the spread on the domains' recent averages (over ``balance_window``, what HostsImbalanced
averages): a burst that is ending looks large in the last sample and moving it evens nothing out, while
averages add up, so a host's average after a move is its domains' sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


def window_points(window: float, step: float) -> int:
    """How many evaluations ``step`` apart a window of ``window`` seconds holds (at least this one)."""
    return max(1, round(window / step))


@dataclass(frozen=True)
class Forecast:
    """Recent peak CPU demand in cores: per domain, and per host for the domains it runs now; and
    each domain's recent average (empty: balance judges the last sample)."""

    domains: Mapping[str, float]
    hosts: Mapping[str, float]
    averages: Mapping[str, float] = field(default_factory=dict)

    def domain(self, name: str, current: float) -> float:
        """The domain's forecast, never below its current demand."""
        return max(current, self.domains.get(name, current))

    def host(self, name: str, current: float) -> float:
        """The host's forecast, never below its current demand."""
        return max(current, self.hosts.get(name, current))

    def average(self, name: str, current: float) -> float:
        """The domain's recent average, or its current demand where there is none."""
        return self.averages.get(name, current)
