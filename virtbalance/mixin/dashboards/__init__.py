"""Grafana dashboards as code: build and render virtbalance's dashboards, and read their queries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard

from virtbalance.mixin.config import Config
from virtbalance.mixin.dashboards import capacity, host, rebalancing, vm

# A dashboard in Grafana's JSON model, as Grafana provisions it.
Json = dict[str, Any]

BUILDERS: dict[str, Callable[[Config], dashboard.Dashboard]] = {
    "virtbalance-capacity.json": capacity.build,
    "virtbalance-rebalancing.json": rebalancing.build,
    "virtbalance-host.json": host.build,
    "virtbalance-vm.json": vm.build,
}


def build_all(config: Config | None = None) -> dict[str, Json]:
    """Every dashboard by file name as Grafana's JSON model, for ``config`` (the defaults when None)."""
    config = config or Config()
    return {name: to_json(build(config)) for name, build in BUILDERS.items()}


def to_json(model: dashboard.Dashboard) -> Json:
    """The SDK's dashboard model as plain JSON data (the SDK's encoder knows every model's keys)."""
    data: Json = json.loads(json.dumps(model, cls=JSONEncoder))
    return data


def render(board: Json) -> str:
    """The checked-in form: sorted keys, two-space indent, non-ASCII kept, newline at the end."""
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Expression:
    """One PromQL expression of a dashboard and where it sits (for messages)."""

    where: str
    expr: str
    instant: bool = False


def expressions(dashboard: Json) -> Iterator[Expression]:
    """Every PromQL expression of a dashboard: panel targets and annotations (not variable queries)."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            where = f"{dashboard['uid']} panel {panel['id']} {panel['title']!r} target {target['refId']}"
            yield Expression(where, target["expr"], bool(target.get("instant")))
    for item in dashboard["annotations"]["list"]:
        if "expr" in item:
            yield Expression(f"{dashboard['uid']} annotation {item['name']!r}", item["expr"])


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana's ``$name`` and ``${name}`` with ``values``; raise KeyError naming any unknown."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for template variable ${name} in: {expr}")
        return values[name]

    return _VARIABLE.sub(replace, expr)
