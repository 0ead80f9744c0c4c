"""Grafana dashboards as code: build, render, write and inspect virtbalance's dashboards."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from virtbalance.dashboards import capacity, host, rebalancing, vm
from virtbalance.dashboards.model import Json
from virtbalance.policy import Policy

BUILDERS: dict[str, Callable[[Policy], Json]] = {
    "virtbalance-capacity.json": capacity.build,
    "virtbalance-rebalancing.json": rebalancing.build,
    "virtbalance-host.json": host.build,
    "virtbalance-vm.json": vm.build,
}


def build_all(policy: Policy | None = None) -> dict[str, Json]:
    """Every dashboard by file name, with the thresholds of ``policy`` (the defaults when None)."""
    policy = policy or Policy()
    return {name: build(policy) for name, build in BUILDERS.items()}


def render(dashboard: Json) -> str:
    """The checked-in form: sorted keys, two-space indent, non-ASCII kept, newline at the end."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(output: Path, policy: Policy | None = None) -> list[Path]:
    """Write every dashboard into ``output``; returns the paths written."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build_all(policy).items():
        path = output / name
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def stale_files(output: Path, policy: Policy | None = None) -> list[str]:
    """Dashboard files in ``output`` that are missing or differ from what the generator makes."""
    stale = []
    for name, dashboard in build_all(policy).items():
        path = output / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(dashboard):
            stale.append(name)
    return stale


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
