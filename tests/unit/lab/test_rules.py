"""The lab's rule and policy files, generated from the mixin without the repository's copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtbalance.errors import ConfigError
from virtbalance.lab.rules import POLICY_FILE, RULE_FILE, write_lab_files
from virtbalance.policy import Policy

REPO = Path(__file__).resolve().parents[3]
CHECKED_IN = REPO / "alerting-rules"


def test_the_lab_profile_alone_gives_the_checked_in_lab_files(tmp_path):
    rules, policy = write_lab_files(tmp_path / "stack")
    assert rules == tmp_path / "stack" / RULE_FILE
    assert rules.read_text(encoding="utf-8") == (CHECKED_IN / RULE_FILE).read_text(encoding="utf-8")
    assert Policy.load(policy) == Policy.load(CHECKED_IN / POLICY_FILE)


def test_a_policy_file_over_the_profile_reaches_the_rules_and_the_policy(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("cpu_high: 0.6\ncpu_target: 0.5\n", encoding="utf-8")
    rules, policy = write_lab_files(tmp_path / "out", mine)
    loaded = Policy.load(policy)
    assert loaded.cpu_high == 0.6
    # The rest stays the lab profile's.
    assert loaded.rate_window == Policy.load(CHECKED_IN / POLICY_FILE).rate_window
    text = rules.read_text(encoding="utf-8")
    assert "from mine.yaml over the lab profile" in text.splitlines()[0]
    assert "cpu_high: 0.6" in text


def test_a_bad_policy_file_lists_its_problems_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cpu_high: 7\nrate_window: soon\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        write_lab_files(tmp_path / "out", bad)
    assert "cpu_high" in str(error.value) and "rate_window" in str(error.value)
    assert not (tmp_path / "out").exists()
