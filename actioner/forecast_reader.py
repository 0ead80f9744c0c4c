"""The planner's forecast from Prometheus' demand history: recent peaks and averages, as the simulator has them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from virtbalance.actioner.prometheus_demand import DemandHistory, HistoryQuery
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


@dataclass(frozen=True)
class HistoryRequest:
    """The history a forecast reads: Prometheus' (rate window, span, step), and each part's points."""

    window: float
    span: float
    step: float
    peak_points: int
    average_points: int  # 0: the policy keeps no averages


def history_request(policy: Policy) -> HistoryRequest | None:
    """What to ask Prometheus for ``policy``'s forecast; None when it wants none (no forecast_window)."""
    if policy.forecast_window <= 0:
        return None
    step = history_step(policy)
    peak_points = window_points(policy.forecast_window, step)
    average_points = window_points(policy.balance_window, step) if policy.balance_window > 0 else 0
    span = (max(peak_points, average_points) - 1) * step
    return HistoryRequest(policy.rate_window, span, step, peak_points, average_points)


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
    request = history_request(policy)
    if request is None:
        return ForecastReading(None)
    try:
        history = query(request.window, request.span, request.step)
    except (
        Exception
    ) as exc:  # any failure of the HTTP client: plan on the samples, never fail the alert
        return ForecastReading(None, (f"no forecast: the demand history query failed ({exc})",))
    return _reading(history, request, policy, placement, vcpus)


def _reading(
    history: DemandHistory,
    request: HistoryRequest,
    policy: Policy,
    placement: Mapping[str, str],
    vcpus: Mapping[str, int],
) -> ForecastReading:
    """The forecast of ``read_forecast`` from the history Prometheus answered.

    The last N points of a row are the last N steps (rows end at the history's end): the peaks are
    over each row's last ``peak_points``, the averages over its last ``average_points``, each point
    clamped as it is read, in one pass over the rows.
    """
    rows: dict[str, list[float | None]] = {}
    steps_held = -1  # steps from the oldest point of any placed domain to the end
    for name in placement:
        row = history.rows.get(name, [])
        oldest = _oldest(row)
        if oldest is not None:
            rows[name] = row
            steps_held = max(steps_held, len(row) - 1 - oldest)
    if not rows:
        return ForecastReading(None, ("no forecast: Prometheus holds no demand history",))
    held = steps_held * history.step
    peak_points, average_points = request.peak_points, request.average_points
    if steps_held < peak_points - 1:
        return ForecastReading(None, (_short("forecast", held, policy.forecast_window),))
    notes: list[str] = []
    if average_points and steps_held < average_points - 1:
        notes.append(_short("balance", held, policy.balance_window))
        average_points = 0
    read_points = max(peak_points, average_points)
    domains: dict[str, float] = {}
    averages: dict[str, float] = {}
    totals: dict[str, list[float]] = {}
    for name, row in rows.items():
        cap = float(vcpus.get(name, math.inf))
        tail = row[-read_points:]
        # Position in the window read, 0 its first step: the peak's steps are its last peak_points.
        first = read_points - len(tail)
        peak_from, average_from = read_points - peak_points, read_points - average_points
        peak = -1.0
        total, count = 0.0, 0
        by_step: list[float] | None = None  # the host's total at each step of the peak
        for at, value in enumerate(tail, first):
            if value is None:
                continue
            cores = min(cap, max(0.0, value))
            if at >= average_from:
                total += cores
                count += 1
            if at >= peak_from:
                peak = max(peak, cores)
                if by_step is None:
                    by_step = totals.get(placement[name])
                    if by_step is None:
                        by_step = totals[placement[name]] = [0.0] * peak_points
                by_step[at - peak_from] += cores
        if peak >= 0.0:
            domains[name] = peak
        if average_points and count:
            averages[name] = total / count
    hosts = {host: max(by_step) for host, by_step in totals.items()}
    return ForecastReading(Forecast(domains, hosts, averages), tuple(notes))


def _oldest(row: list[float | None]) -> int | None:
    """The index of the row's first point, None when it has none."""
    return next((i for i, value in enumerate(row) if value is not None), None)


def _short(part: str, held: float, window: float) -> str:
    """Why a part of the forecast is missing: the history is shorter than its window."""
    what, judged = (
        ("forecast", "destinations") if part == "forecast" else ("balance averages", "balance")
    )
    return (
        f"no {what}: Prometheus holds {format_duration(max(0.0, round(held)))} of the "
        f"{format_duration(window)} {part}_window; {judged} judged on the last sample"
    )
