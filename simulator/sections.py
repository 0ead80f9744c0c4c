"""The frame of a simulation file section's reader: absent, not a mapping, or every problem at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from virtbalance.errors import ValidationError


class Checked(Protocol):
    """A section's value that can name its own problems (ranges, orderings) once it is built."""

    def problems(self) -> list[str]: ...


S = TypeVar("S", bound=Checked)
# Reads a section's keys into the value's constructor arguments, appending each problem it finds.
Reader = Callable[[Mapping[str, Any], list[str]], dict[str, Any]]


def parse_section(build: Callable[..., S], data: Any, source: str, read: Reader) -> S:
    """``build`` from what ``read`` takes of the mapping ``data``, or with no arguments when it is None.

    ValidationError (for ``source``) listing every problem: ``read``'s, then the built value's own.
    """
    if data is None:
        return build()
    if not isinstance(data, Mapping):
        raise ValidationError(source, [f"expected a mapping, got {type(data).__name__}"])
    problems: list[str] = []
    value = build(**read(data, problems))
    problems.extend(value.problems())
    if problems:
        raise ValidationError(source, problems)
    return value
