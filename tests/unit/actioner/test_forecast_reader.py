"""The actioner's forecast from the demand history: peaks, host peaks, averages, and every fallback."""

from __future__ import annotations

import dataclasses

import pytest

from virtbalance.actioner.forecast_reader import history_step, read_forecast
from virtbalance.actioner.prometheus_demand import DemandHistory
from virtbalance.policy import Policy

END = 100_000.0
STEP = 60.0  # the rate window
# Three points of peak (3m), five of average (5m): the history spans four steps back from END.
POLICY = dataclasses.replace(
    Policy(), rate_window=STEP, forecast_window=180.0, balance_window=300.0
)


def at(*values: float | None) -> list[float | None]:
    """A domain's points, the last at END, one step apart (None: no point at that step)."""
    return list(values)


class History:
    """A HistoryQuery answering canned series; remembers what it was asked."""

    def __init__(self, series, end=END, error=None):
        self.series = series
        self.end = end
        self.error = error
        self.asked: list[tuple[float, float, float]] = []

    def __call__(self, window, span, step):
        self.asked.append((window, span, step))
        if self.error is not None:
            raise self.error
        return DemandHistory(self.end, STEP, self.series)


def test_peaks_per_domain_and_of_each_hosts_current_domains_and_averages():
    history = History(
        {
            # a and b burst in turn on h1: their host's peak is 4 cores at once, not 3 + 3.
            "a": at(1.0, 10.0, 3.0, 1.0, 1.0),  # 10 cores on 4 vCPUs: clamped to 4
            "b": at(1.0, 1.0, 1.0, 3.0, 1.0),
            # c ran on h1 until a minute ago and runs on h2 now: it counts on h2 only.
            "c": at(0.5, 0.5, 0.5, 0.5, 2.0),
            "gone": at(9.0, 9.0, 9.0, 9.0, 9.0),  # no longer in the cluster
        }
    )
    placement = {"a": "h1", "b": "h1", "c": "h2", "new": "h2"}
    reading = read_forecast(history, POLICY, placement, {"a": 4, "b": 4, "c": 4, "new": 1})
    assert history.asked == [(STEP, 4 * STEP, STEP)]
    forecast = reading.forecast
    assert forecast is not None
    assert reading.notes == ()
    # The 10-core point is two steps before the last three: outside the peak, inside the average.
    assert forecast.domains == {"a": 3.0, "b": 3.0, "c": 2.0}
    assert forecast.hosts == {"h1": 4.0, "h2": 2.0}
    assert forecast.averages == pytest.approx({"a": 2.0, "b": 1.4, "c": 0.8})
    # A domain Prometheus has nothing of keeps its sample.
    assert forecast.domain("new", 0.25) == 0.25
    assert forecast.average("new", 0.25) == 0.25


def test_steps_without_a_point_count_in_no_peak_average_or_host_total():
    # b was not scraped at the last step: its mean is over its four points, and h1's total at
    # that step, a's burst, is a's alone.
    history = History({"a": at(1.0, 1.0, 1.0, 1.0, 3.0), "b": at(2.0, 2.0, 2.0, 0.5, None)})
    reading = read_forecast(history, POLICY, {"a": "h1", "b": "h1"}, {"a": 4, "b": 4})
    assert reading.forecast is not None
    assert reading.forecast.domains == {"a": 3.0, "b": 2.0}
    assert reading.forecast.hosts == {"h1": 3.0}
    assert reading.forecast.averages == pytest.approx({"a": 1.4, "b": 1.625})


def test_negative_points_count_zero():
    reading = read_forecast(
        History({"a": at(-1.0, -1.0, -1.0, -1.0, -1.0)}), POLICY, {"a": "h1"}, {"a": 2}
    )
    assert reading.forecast is not None
    assert reading.forecast.domains == {"a": 0.0}
    assert reading.forecast.averages == {"a": 0.0}


def test_a_failing_query_gives_no_forecast_and_says_why():
    history = History({}, error=ConnectionError("connection refused"))
    reading = read_forecast(history, POLICY, {"a": "h1"}, {"a": 1})
    assert reading.forecast is None
    assert reading.notes == ("no forecast: the demand history query failed (connection refused)",)


def test_no_history_of_the_placed_domains_gives_no_forecast():
    reading = read_forecast(History({"gone": at(1.0, 1.0)}), POLICY, {"a": "h1"}, {"a": 1})
    assert reading.forecast is None
    assert reading.notes == ("no forecast: Prometheus holds no demand history",)


def test_history_shorter_than_the_forecast_window_gives_no_forecast():
    # Two points: a minute of history for a 3m peak (a fresh Prometheus).
    reading = read_forecast(History({"a": at(1.0, 2.0)}), POLICY, {"a": "h1"}, {"a": 4})
    assert reading.forecast is None
    assert reading.notes == (
        "no forecast: Prometheus holds 1m of the 3m forecast_window; "
        "destinations judged on the last sample",
    )


def test_history_covering_the_peaks_but_not_the_average_drops_the_averages_only():
    reading = read_forecast(History({"a": at(1.0, 2.0, 1.5)}), POLICY, {"a": "h1"}, {"a": 4})
    assert reading.forecast is not None
    assert reading.forecast.domains == {"a": 2.0}
    assert reading.forecast.hosts == {"h1": 2.0}
    assert reading.forecast.averages == {}
    assert reading.notes == (
        "no balance averages: Prometheus holds 2m of the 5m balance_window; "
        "balance judged on the last sample",
    )


def test_one_domain_with_the_whole_window_is_history_enough_for_a_newer_one():
    # b started two minutes ago: its peak and average are over what it has, like the rule's average.
    series = {"a": at(1.0, 1.0, 1.0, 1.0, 1.0), "b": at(2.0, 4.0)}
    reading = read_forecast(History(series), POLICY, {"a": "h1", "b": "h1"}, {"a": 4, "b": 4})
    assert reading.forecast is not None
    assert reading.forecast.domains == {"a": 1.0, "b": 4.0}
    assert reading.forecast.hosts == {"h1": 5.0}
    assert reading.forecast.averages == {"a": 1.0, "b": 3.0}


def test_a_zero_forecast_window_asks_nothing_and_judges_on_the_samples():
    history = History({"a": at(1.0)})
    policy = dataclasses.replace(POLICY, forecast_window=0.0)
    assert read_forecast(history, policy, {"a": "h1"}, {"a": 1}).forecast is None
    assert history.asked == []


def test_a_zero_balance_window_spans_the_peaks_only_and_keeps_no_averages():
    history = History({"a": at(1.0, 3.0, 2.0)})
    policy = dataclasses.replace(POLICY, balance_window=0.0)
    reading = read_forecast(history, policy, {"a": "h1"}, {"a": 4})
    assert history.asked == [(STEP, 2 * STEP, STEP)]
    assert reading.forecast is not None
    assert reading.forecast.domains == {"a": 3.0}
    assert reading.forecast.averages == {}
    assert reading.notes == ()


def test_the_step_is_the_rate_window_in_whole_seconds():
    assert history_step(Policy()) == 300.0
    assert history_step(dataclasses.replace(Policy(), rate_window=0.4)) == 1.0
