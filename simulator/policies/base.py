"""The policy plug-in contract and the validation of plug-in parameters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any, ClassVar, Generic, Self, TypeVar

from virtbalance.causes import Cause
from virtbalance.durations import parse_duration
from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.simulator.state import ClusterView, Move

P = TypeVar("P")


class PolicyPlugin(ABC):
    """A rebalancing policy: looks at the cluster each step and answers with migrations."""

    name: ClassVar[str]
    # True when the policy moves chunks whole; its chunk splits must then be zero.
    chunk_aware: ClassVar[bool]

    @abstractmethod
    def decide(self, view: ClusterView) -> Sequence[Move]:
        """The migrations to start now (they take effect at the next step)."""

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The plug-in's parameters as used, for reports."""

    def explain(self) -> Mapping[str, Cause] | None:
        """Why each firing host got no move at the last ``decide``, or None if the plug-in cannot say."""
        return None


class ParamsPlugin(PolicyPlugin, Generic[P]):
    """A plug-in configured by its parameter dataclass alone, read from ``policies.<name>``."""

    params_type: ClassVar[type[Any]]
    # Parameters that accept ``10m``-style durations.
    durations: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: P) -> None:
        self.params = params

    @classmethod
    def parse(cls, params: Mapping[str, Any] | None) -> P:
        """The parameter dataclass from the configuration's mapping; ValidationError listing every problem."""
        parsed: P = parse_params(cls.params_type, params, f"policies.{cls.name}", cls.durations)
        return parsed

    @classmethod
    def build(cls, params: Mapping[str, Any] | None, policy: Policy) -> Self:
        return cls(cls.parse(params))

    def parameters(self) -> dict[str, Any]:
        return as_dict(self.params)


def parse_params(
    kind: type[P], params: Mapping[str, Any] | None, source: str, durations: frozenset[str]
) -> P:
    """Build the parameter dataclass ``kind`` from a mapping; ValidationError listing every problem.

    Fields named in ``durations`` accept ``10m``-style strings; numbers are checked against the
    field's default type (whole numbers for int fields, any number for float fields).
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    known = {f.name: f for f in fields(kind)}  # type: ignore[arg-type]
    for key, raw in (params or {}).items():
        if key not in known:
            problems.append(f"{source}.{key}: unknown parameter (known: {', '.join(known)})")
            continue
        default = known[key].default
        try:
            if key in durations:
                values[key] = parse_duration(raw)
            elif isinstance(default, str):
                if not isinstance(raw, str):
                    raise ValueError(f"expected a string, got {raw!r}")
                values[key] = raw
            elif isinstance(raw, bool) or not isinstance(raw, int | float):
                raise ValueError(f"expected a number, got {raw!r}")
            elif isinstance(default, int) and not isinstance(raw, int):
                raise ValueError(f"expected a whole number, got {raw!r}")
            elif raw < 0:
                raise ValueError(f"must not be negative, got {raw}")
            else:
                values[key] = float(raw) if isinstance(default, float) else raw
        except ValueError as exc:
            problems.append(f"{source}.{key}: {exc}")
    if problems:
        raise ValidationError(source, problems)
    return kind(**values)


def as_dict(params: Any) -> dict[str, Any]:
    return asdict(params)
