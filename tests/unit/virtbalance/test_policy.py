"""The shared policy object: defaults, parsing, and errors that list every problem."""

from __future__ import annotations

import pytest

from virtbalance.durations import format_duration, parse_duration
from virtbalance.errors import ConfigError
from virtbalance.policy import Policy


def test_defaults_match_the_documented_policy():
    policy = Policy()
    assert (policy.cpu_high, policy.cpu_target) == (0.75, 0.65)
    assert (policy.memory_high, policy.memory_target) == (0.90, 0.85)
    assert (policy.vm_cooldown, policy.host_settle, policy.anti_flap) == (3600, 600, 86400)
    assert (policy.max_migrations, policy.max_per_host) == (8, 4)
    assert policy.overload_for == 600 and policy.cpu_signal == "max"


def test_durations_and_numbers_are_parsed():
    policy = Policy.from_mapping({"vm_cooldown": "90m", "host_settle": 30, "cpu_high": 0.8})
    assert policy.vm_cooldown == 5400.0
    assert policy.host_settle == 30.0
    assert policy.cpu_high == 0.8


def test_every_problem_is_listed_with_its_path():
    with pytest.raises(ConfigError) as info:
        Policy.from_mapping(
            {"cpu_high": 1.5, "vm_cooldown": "ten minutes", "bogus": 1, "max_migrations": -1},
            source="p.yaml",
            prefix="policy.",
        )
    problems = info.value.problems
    assert len(problems) == 4
    assert any(p.startswith("policy.cpu_high: must be a ratio") for p in problems)
    assert any(p.startswith("policy.vm_cooldown: not a duration") for p in problems)
    assert any(p.startswith("policy.bogus: unknown key") for p in problems)
    assert any(p.startswith("policy.max_migrations: must not be negative") for p in problems)
    assert str(info.value).startswith("p.yaml: 4 problems")


def test_targets_above_thresholds_are_rejected():
    with pytest.raises(ConfigError, match="cpu_target: 0.8 must not exceed cpu_high 0.75"):
        Policy.from_mapping({"cpu_target": 0.8})


def test_bad_cpu_signal_names_the_choices():
    with pytest.raises(ConfigError, match="must be one of demand, node, max"):
        Policy.from_mapping({"cpu_signal": "avg"})


def test_round_trip_through_mapping():
    policy = Policy.from_mapping({"overload_for": "30s", "rate_window": "1m"})
    assert Policy.from_mapping(policy.to_mapping()) == policy
    assert policy.to_mapping()["overload_for"] == "30s"


def test_load_missing_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        Policy.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("1h30m", 5400), ("24h", 86400), ("45s", 45), ("500ms", 0.5), (12, 12)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m10", "10x", "-5s", "10m5", True, None, -3])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (600, "10m"), (5400, "1h30m"), (0.5, "500ms")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_balance_window_is_an_average_at_least_the_rate_window_or_none():
    assert Policy().balance_window == 3600.0
    assert Policy.from_mapping({"balance_window": "0s"}).balance_window == 0.0
    assert Policy.from_mapping({"balance_window": "5m"}).balance_window == 300.0
    with pytest.raises(
        ConfigError,
        match=r"balance_window: 2m must be 0s \(the last sample\) or at least rate_window 5m",
    ):
        Policy.from_mapping({"balance_window": "2m"})
    with pytest.raises(ConfigError, match="balance_window: duration must not be negative"):
        Policy.from_mapping({"balance_window": -60})
