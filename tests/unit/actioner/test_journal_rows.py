"""A journaled plan row as the JSON object the CLI and the status endpoint print."""

from __future__ import annotations

from virtbalance.actioner.journal import PlanRow


def row(plan_json: str | None) -> PlanRow:
    return PlanRow(
        id=7,
        created=10.0,
        updated=12.5,
        trigger="alert",
        mode="relieve",
        hosts=("hv1", "hv2"),
        group_key=None,
        state="done",
        detail="2 migrations",
        plan_json=plan_json,
        cancel_requested=False,
    )


def test_a_plan_row_carries_its_plan_parsed_under_plan_with_its_fields_in_order():
    written = row('{"migrations": [{"domain": "web1"}]}').to_dict()
    assert list(written) == [
        "id",
        "created",
        "updated",
        "trigger",
        "mode",
        "hosts",
        "group_key",
        "state",
        "detail",
        "plan",
        "cancel_requested",
    ]
    assert written["plan"] == {"migrations": [{"domain": "web1"}]}
    assert written["hosts"] == ["hv1", "hv2"]
    assert written["cancel_requested"] is False


def test_a_plan_row_without_a_stored_plan_says_none():
    assert row(None).to_dict()["plan"] is None
    assert row("").to_dict()["plan"] is None
