"""Plan data: modes, JSON round trip, chunk grouping and the operator's table."""

from __future__ import annotations

import json

import pytest

from virtbalance.errors import ValidationError
from virtbalance.plan import HostAfter, Migration, Mode, Plan, Unresolved


def sample() -> Plan:
    reason = "relieve hv1: cpu 90.0% -> 60.0%"
    return Plan(
        Mode("relieve"),
        (
            Migration("b1", "hv1", "hv2", "lan1", reason),
            Migration("b2", "hv1", "hv2", "lan1", reason),
            Migration("a", "hv1", "hv3", "domain:a", reason),
        ),
        (Unresolved("hv4", "cpu", "chunk x fits no host"),),
        (
            HostAfter("hv1", 0.6, 0.5),
            HostAfter("hv2", 0.4, 0.3),
            HostAfter("hv3", 0.2, 0.1),
            HostAfter("hv9", 0.1, 0.1),
        ),
    )


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("relieve", Mode("relieve")),
        ("drain:hv1", Mode("drain", "hv1")),
        ("balance", Mode("balance")),
        ("consolidate", Mode("consolidate")),
    ],
)
def test_mode_parse_and_str(text, mode):
    assert Mode.parse(text) == mode
    assert str(mode) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("drain", "drain needs a host"),
        ("drain:", "drain needs a host"),
        ("balance:hv1", "takes no host"),
        ("move", "unknown mode"),
    ],
)
def test_mode_parse_errors(text, message):
    with pytest.raises(ValidationError, match=message):
        Mode.parse(text)


def test_round_trip_through_json():
    plan = sample()
    data = json.loads(plan.to_json())
    assert data["mode"] == "relieve"
    assert data["migrations"][0] == {
        "domain": "b1",
        "source": "hv1",
        "destination": "hv2",
        "chunk": "lan1",
        "reason": "relieve hv1: cpu 90.0% -> 60.0%",
    }
    assert data["unresolved"] == [
        {"host": "hv4", "resource": "cpu", "reason": "chunk x fits no host", "cause": "other"}
    ]
    assert data["hosts_after"][0] == {"name": "hv1", "cpu_ratio": 0.6, "memory_ratio": 0.5}
    assert Plan.from_dict(data) == plan


def test_from_dict_rejects_what_is_not_a_plan():
    with pytest.raises(ValidationError, match="not a plan"):
        Plan.from_dict({"migrations": [{"domain": "a"}]})


def test_chunks_group_members_in_order():
    groups = sample().chunks()
    assert [[m.domain for m in g] for g in groups] == [["b1", "b2"], ["a"]]


def test_render_table_shows_moves_unresolved_and_touched_hosts():
    text = sample().render()
    lines = text.splitlines()
    assert lines[0] == "plan (relieve): 3 migration(s) in 2 chunk(s)"
    assert lines[1].split() == ["CHUNK", "DOMAIN", "FROM", "TO", "REASON"]
    assert lines[2].split()[:4] == ["lan1", "b1", "hv1", "hv2"]
    assert "hv4   cpu       chunk x fits no host" in text
    assert "hv9" not in text  # untouched hosts only with all_hosts
    assert "hv9" in sample().render(all_hosts=True)
    assert Plan(Mode("balance")).render() == "plan (balance): 0 migration(s) in 0 chunk(s)"
