"""Silences as freezes: Alertmanager's matcher semantics on the synthetic VirtBalanceMigration alert."""

from __future__ import annotations

import pytest

from virtbalance.actioner.silences import (
    Matcher,
    Silence,
    forbidden_pairs,
    freezing,
    parse_silences,
)
from virtbalance.plan import Migration

WEB = Migration("web1", "hv1", "hv2", "lan11+lan12", "relieve hv1")
DB = Migration("db1", "hv1", "hv2", "lan11+lan12", "relieve hv1")
BATCH = Migration("batch1", "hv1", "hv3", "domain:batch1", "relieve hv1")


def silence(*matchers, sid="s1"):
    return Silence(sid, tuple(Matcher(*m) for m in matchers))


ALL = ("alertname", "VirtBalanceMigration")


def test_alertname_alone_freezes_everything():
    frozen = silence(ALL)
    assert all(freezing([frozen], m) is frozen for m in (WEB, DB, BATCH))
    assert forbidden_pairs([frozen], [WEB, BATCH]) == {
        ("web1", "*"): frozen.describe(),
        ("batch1", "*"): frozen.describe(),
    }


def test_source_host_freeze_pins_what_runs_there():
    frozen = silence(ALL, ("source", "hv1"))
    assert set(forbidden_pairs([frozen], [WEB, BATCH])) == {("web1", "*"), ("batch1", "*")}
    assert freezing([frozen], Migration("x", "hv2", "hv1", "c", "r")) is None


def test_destination_freeze_only_closes_that_destination():
    frozen = silence(ALL, ("destination", "hv2"))
    assert forbidden_pairs([frozen], [WEB, BATCH]) == {("web1", "hv2"): frozen.describe()}


def test_domain_freeze_pins_the_domain():
    frozen = silence(ALL, ("domain", "db1"))
    assert forbidden_pairs([frozen], [WEB, DB]) == {("db1", "*"): frozen.describe()}


def test_regex_is_anchored_and_negative_matchers_work():
    regex = silence(ALL, ("domain", "web.*", True, True))
    assert freezing([regex], WEB) is regex
    assert freezing([silence(ALL, ("domain", "eb", True, True))], WEB) is None  # anchored
    not_web = silence(ALL, ("domain", "web1", False, False))
    assert freezing([not_web], WEB) is None
    assert freezing([not_web], DB) is not_web
    not_regex = silence(ALL, ("destination", "hv[23]", True, False))
    assert freezing([not_regex], WEB) is None


def test_a_silence_for_another_alert_does_not_freeze():
    other = silence(("alertname", "HostSustainedOverload"))
    assert freezing([other], WEB) is None


def test_a_silence_on_a_missing_label_matches_empty_values_like_alertmanager():
    empty = silence(ALL, ("rack", ""))
    assert freezing([empty], WEB) is empty
    assert freezing([silence(ALL, ("rack", "r1"))], WEB) is None


def test_parse_keeps_only_active_silences():
    data = [
        {
            "id": "a",
            "status": {"state": "active"},
            "createdBy": "ops",
            "comment": "db maintenance",
            "matchers": [
                {
                    "name": "alertname",
                    "value": "VirtBalanceMigration",
                    "isRegex": False,
                    "isEqual": True,
                },
                {"name": "domain", "value": "db.*", "isRegex": True},
            ],
        },
        {
            "id": "b",
            "status": {"state": "expired"},
            "matchers": [{"name": "alertname", "value": "x"}],
        },
        {"id": "c", "status": {"state": "pending"}, "matchers": []},
    ]
    (active,) = parse_silences(data)
    assert active.id == "a"
    assert active.matchers[1] == Matcher("domain", "db.*", True, True)
    assert freezing([active], DB) is active
    assert active.describe() == "silence a by ops {alertname='VirtBalanceMigration',domain=~'db.*'}"


@pytest.mark.parametrize("junk", [None, {}, "x", [1, "a"]])
def test_parse_ignores_junk(junk):
    assert parse_silences(junk) == []
