"""The move to grafana-foundation-sdk changed nothing Grafana shows: old and new JSON compared key by key.

tests/fixtures/dashboards-before-sdk/ holds the dashboards as the hand-written JSON model made them.
Every difference from the SDK-built ones is listed below, each with its reason. This test pins the
port, not the dashboards: a dashboard changed on purpose afterwards makes it fail, and then this
file and its fixture are to be deleted, not regenerated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from virtbalance.mixin.dashboards import build_all

BEFORE = Path(__file__).resolve().parents[4] / "fixtures" / "dashboards-before-sdk"
ABSENT = "<absent>"

# (path with list indices as *, old value, new value), values as JSON text.
EXPECTED_DIFFERENCES = {
    # The SDK omits an unset id; Grafana assigns one either way.
    ("id", "null", ABSENT),
    # An empty time picker and an empty current value are what Grafana assumes when they are absent.
    ("timepicker", "{}", ABSENT),
    ("templating.list.*.current", "{}", ABSENT),
    # A hidden table footer names no fields; the SDK types the field list as a list, not "".
    ("panels.*.options.footer.fields", '""', ABSENT),
    # The SDK writes out Grafana 10.4's defaults for these; absent, Grafana uses the same values.
    ("links.*.tooltip", ABSENT, '""'),
    ("panels.*.repeatDirection", ABSENT, '"h"'),
    ("panels.*.transparent", ABSENT, "false"),
    ("panels.*.options.legend.calcs", ABSENT, "[]"),
    ("panels.*.options.showPercentChange", ABSENT, "false"),
    ("panels.*.options.wideLayout", ABSENT, "true"),
    ("panels.*.options.maxVizHeight", ABSENT, "300"),
    ("panels.*.options.minVizHeight", ABSENT, "16"),
    ("panels.*.options.minVizWidth", ABSENT, "8"),
    ("panels.*.options.namePlacement", ABSENT, '"auto"'),
    ("panels.*.options.sizing", ABSENT, '"auto"'),
    ("panels.*.options.valueMode", ABSENT, '"color"'),
    ("panels.*.options.frameIndex", ABSENT, "0"),
    ("panels.*.options.showTypeIcons", ABSENT, "false"),
    ("panels.*.options.code.showMiniMap", ABSENT, "false"),
}


def differences(old: Any, new: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """Every leaf where ``old`` and ``new`` differ, lists compared position by position."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            sub = f"{path}.{key}" if path else key
            if key not in new:
                yield sub, json.dumps(old[key], sort_keys=True), ABSENT
            elif key not in old:
                yield sub, ABSENT, json.dumps(new[key], sort_keys=True)
            else:
                yield from differences(old[key], new[key], sub)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for old_item, new_item in zip(old, new, strict=True):
            yield from differences(old_item, new_item, f"{path}.*")
    elif old != new or type(old) is not type(new):
        yield path, json.dumps(old, sort_keys=True), json.dumps(new, sort_keys=True)


NAMES = sorted(path.name for path in BEFORE.glob("*.json"))


def before(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((BEFORE / name).read_text(encoding="utf-8"))
    return data


def test_the_fixture_holds_every_dashboard():
    assert sorted(build_all()) == NAMES


def test_only_the_listed_differences_separate_old_and_new():
    found = {d for name in NAMES for d in differences(before(name), build_all()[name])}
    assert found == EXPECTED_DIFFERENCES


@pytest.mark.parametrize("name", NAMES)
def test_queries_titles_units_datasource_and_layout_are_unchanged(name):
    old, new = before(name), build_all()[name]
    assert [p["id"] for p in new["panels"]] == [p["id"] for p in old["panels"]]
    for old_panel, new_panel in zip(old["panels"], new["panels"], strict=True):
        for key in ("type", "title", "description", "gridPos", "datasource", "targets"):
            assert new_panel.get(key) == old_panel.get(key), (old_panel["title"], key)
        old_fields = old_panel.get("fieldConfig", {})
        new_fields = new_panel.get("fieldConfig", {})
        assert new_fields == old_fields, old_panel["title"]
        assert new_panel.get("transformations") == old_panel.get("transformations")
    assert new["annotations"] == old["annotations"]
    assert [v["name"] for v in new["templating"]["list"]] == [
        "datasource",
        *[v["name"] for v in old["templating"]["list"][1:]],
    ]
    for old_variable, new_variable in zip(
        old["templating"]["list"], new["templating"]["list"], strict=True
    ):
        assert {k: v for k, v in old_variable.items() if k != "current"} == new_variable
