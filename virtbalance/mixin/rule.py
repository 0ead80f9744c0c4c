"""A rule and a rule group as the generator holds them, before they are written out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    """One recording rule or alert, with the comment that explains it in the generated file."""

    comment: str
    expr: str
    record: str | None = None
    alert: str | None = None
    for_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    """A rule group: rules in one group are evaluated in order, so alerts see this round's records."""

    name: str
    comment: str
    rules: tuple[Rule, ...]
