"""The one duration parser: Prometheus's units and Go's (the exporter's flags), bare numbers as seconds."""

from __future__ import annotations

import pytest

from virtbalance.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7ns", 7e-9),
        ("7us", 7e-6),
        ("7µs", 7e-6),
        ("7ms", 0.007),
        ("7s", 7.0),
        ("7m", 420.0),
        ("7h", 25200.0),
        ("7d", 604800.0),
        ("7w", 4233600.0),
    ],
)
def test_every_unit(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1d12h", 129600.0),
        ("1.5s", 1.5),
        (".5s", 0.5),  # Go's forms, which the exporter's --exporter.timeout took
        ("1.s", 1.0),
        ("2s500ms", 2.5),
        (" 30s ", 30.0),
        (12, 12.0),
        (0.25, 0.25),
    ],
)
def test_combinations_fractions_and_numbers(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "10", "m10", "10x", "-5s", "10m5", "1..5s", "5 s", "1y", True, None, -3]
)
def test_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (5400, "1h30m"), (691200, "1w1d"), (0.25, "250ms")],
)
def test_format_duration_reads_back(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
