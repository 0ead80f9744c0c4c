"""A frozen record as the JSON object it is written as: its fields by name, in declaration order."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def as_dict(record: DataclassInstance) -> dict[str, Any]:
    """Every field of ``record`` under its own name; tuples as lists, JSON's arrays.

    Not ``dataclasses.asdict``: that keeps tuples as tuples and deep-copies every value.
    """
    return {
        field.name: list(value) if isinstance(value, tuple) else value
        for field in fields(record)
        for value in (getattr(record, field.name),)
    }
