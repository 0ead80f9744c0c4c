"""One declarative reader of YAML sections: a dataclass's fields say which keys it takes and of what type."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from virtbalance.durations import parse_duration
from virtbalance.sizes import parse_size

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

# A field's ``metadata`` names its unit; the value is then parsed by the project's one parser for it.
UNIT = "unit"
SIZE = "size"  # bytes: 64MiB, 2G, or a number of bytes
DURATION = "duration"  # seconds: 30s, 1h30m, or a number of seconds
_UNITS: Mapping[str, Callable[[Any], float | int]] = {SIZE: parse_size, DURATION: parse_duration}


def read_section(cls: type[T], data: Any, path: str, problems: list[str], **given: Any) -> T:
    """``data`` read into ``cls`` (a dataclass), each problem appended as ``path.key: ...``.

    A missing key keeps the field's default, and so does a bad one (its problem is listed): every
    problem of a file is found in one pass. ``given`` fills fields that are not read from ``data``.
    Values a type cannot express (ranges, choices shared with command-line overrides) stay in the
    dataclass's own checks.
    """
    if data is None:
        return cls(**given)
    if not isinstance(data, Mapping):
        problems.append(f"{path}: expected a mapping, got {type(data).__name__}")
        return cls(**given)
    hints = typing.get_type_hints(cls)
    readable = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in given}
    values: dict[str, Any] = dict(given)
    for key, raw in data.items():
        spec = readable.get(key)
        if spec is None:
            problems.append(f"{path}.{key}: unknown key (known: {', '.join(readable)})")
            continue
        value, problem = _convert(hints[key], spec.metadata.get(UNIT), raw)
        if problem:
            problems.append(f"{path}.{key}: {problem}")
        else:
            values[key] = value
    return cls(**values)


def _convert(hint: Any, unit: str | None, raw: Any) -> tuple[Any, str | None]:
    """(value, None) when ``raw`` fits the field's type, else (None, what is wrong)."""
    args = typing.get_args(hint)
    if _is_optional(hint):
        if raw is None:
            return None, None
        hint = next(a for a in args if a is not type(None))
    if unit is not None:
        try:
            return _UNITS[unit](raw), None
        except ValueError as exc:
            return None, str(exc)
    if typing.get_origin(hint) is typing.Literal:
        hint = type(typing.get_args(hint)[0])  # the values themselves are the dataclass's check
    if hint is bool:
        return (
            (raw, None) if isinstance(raw, bool) else (None, f"expected true or false, got {raw!r}")
        )
    if isinstance(raw, bool):
        return None, f"expected {_name(hint)}, got {raw!r}"
    if hint is float and isinstance(raw, int | float):
        return float(raw), None
    if isinstance(hint, type) and isinstance(raw, hint):
        return raw, None
    return None, f"expected {_name(hint)}, got {raw!r}"


def _is_optional(hint: Any) -> bool:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return union and type(None) in typing.get_args(hint)


def _name(hint: Any) -> str:
    return "a number" if hint is float else getattr(hint, "__name__", str(hint))
