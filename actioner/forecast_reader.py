"""The planner's forecast from Prometheus' demand history: recent peaks and averages, as the simulator has them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from virtbalance.actioner.prometheus_demand import DemandSeries, HistoryQuery
from virtbalance.durations import format_duration
from virtbalance.forecast import Forecast, window_points
from virtbalance.policy import Policy


@dataclass(frozen=True)
class ForecastReading:
    """The forecast for the plan (None: judge on the samples), and why a part of it is missing."""

    forecast: Forecast | None
    notes: tuple[str, ...] = ()


def history_step(policy: Policy) -> float:
    """Seconds between two points of the demand history: one ``rate_window`` (whole seconds, at least 1).

    Each point is then the mean demand of its own stretch and the points tile the window, as a trace's
    samples do in the simulator (whose peaks and averages are over those): a burst as long as two rate
    windows shows in full. Finer points would catch shorter bursts at a cost in points fetched
    (domains times points), five times more at a fifth of the window.
    """
    return float(max(1, round(policy.rate_window)))


def read_forecast(
    query: HistoryQuery,
    policy: Policy,
    placement: Mapping[str, str],
    vcpus: Mapping[str, int],
) -> ForecastReading:
    """Each domain's peak and host's peak over ``forecast_window``, each domain's mean over ``balance_window``.

    ``placement`` (domain -> host, from libvirt) is where the domains run now: a host's peak is the peak
    of the sum of those domains' demand at each point, not the sum of their peaks, nor what Prometheus
    saw on the host before a move. Points are clamped to [0, vCPUs] like the snapshot's demand.

    Any failure, or a history shorter than the window (a fresh Prometheus: the hour would average
    minutes), drops that part and says why; without peaks there is no forecast at all (a forecast judges
    destinations against ``cpu_high`` on the peaks, so averages alone cannot stand in for one).
    """
    if policy.forecast_window <= 0:
        return ForecastReading(None)
    step = history_step(policy)
    peak_points = window_points(policy.forecast_window, step)
    average_points = window_points(policy.balance_window, step) if policy.balance_window > 0 else 0
    span = (max(peak_points, average_points) - 1) * step
    try:
        series, end = query(policy.rate_window, span, step)
    except (
        Exception
    ) as exc:  # any failure of the HTTP client: plan on the samples, never fail the alert
        return ForecastReading(None, (f"no forecast: the demand history query failed ({exc})",))
    points = [t for name in placement for t in series.get(name, {})]
    if not points:
        return ForecastReading(None, ("no forecast: Prometheus holds no demand history",))
    held = end - min(points)

    def since(count: int) -> float | None:
        """The first instant of the last ``count`` points, None when the history does not reach it."""
        first = end - (count - 1) * step
        return first - step / 2 if held + step / 2 >= end - first else None

    peaks_from = since(peak_points)
    if peaks_from is None:
        return ForecastReading(None, (_short("forecast", held, policy.forecast_window),))
    demand = _clamped(series, placement, vcpus)
    domains = {
        name: max(v for t, v in row.items() if t >= peaks_from)
        for name, row in demand.items()
        if any(t >= peaks_from for t in row)
    }
    totals: defaultdict[str, defaultdict[float, float]] = defaultdict(lambda: defaultdict(float))
    for name, row in demand.items():
        for t, cores in row.items():
            if t >= peaks_from:
                totals[placement[name]][t] += cores
    hosts = {host: max(by_time.values()) for host, by_time in totals.items()}
    notes: list[str] = []
    averages: dict[str, float] = {}
    if average_points:
        averages_from = since(average_points)
        if averages_from is None:
            notes.append(_short("balance", held, policy.balance_window))
        else:
            for name, row in demand.items():
                recent = [v for t, v in row.items() if t >= averages_from]
                if recent:
                    averages[name] = sum(recent) / len(recent)
    return ForecastReading(Forecast(domains, hosts, averages), tuple(notes))


def _clamped(
    series: DemandSeries, placement: Mapping[str, str], vcpus: Mapping[str, int]
) -> dict[str, dict[float, float]]:
    """The history of the domains placed now, each point in [0, the domain's vCPUs]."""
    return {
        name: {t: min(float(vcpus.get(name, math.inf)), max(0.0, v)) for t, v in row.items()}
        for name, row in series.items()
        if name in placement and row
    }


def _short(part: str, held: float, window: float) -> str:
    """Why a part of the forecast is missing: the history is shorter than its window."""
    what, judged = (
        ("forecast", "destinations") if part == "forecast" else ("balance averages", "balance")
    )
    return (
        f"no {what}: Prometheus holds {format_duration(max(0.0, round(held)))} of the "
        f"{format_duration(window)} {part}_window; {judged} judged on the last sample"
    )
