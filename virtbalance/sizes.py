"""Parse and format sizes in bytes: ``64MiB``, ``1GiB``, ``512M``, ``2T`` or a plain number of bytes."""

from __future__ import annotations

import re

# Units case-insensitive, SI (k = 1000) with an ``i`` for binary (Ki = 1024), ``B`` optional: the union
# of what the actioner's config and the lab's scenarios each accepted before they shared this table.
_UNITS = {"": 1, "b": 1} | {
    f"{letter}{suffix}": base**power
    for power, letter in enumerate("kmgt", start=1)
    for suffix, base in (("", 1000), ("b", 1000), ("i", 1024), ("ib", 1024))
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_FORMS = "expected e.g. 64MiB, 1GiB or a number of bytes"


def parse_size(value: object) -> int:
    """Bytes for a size, 0 included; raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a size: {value!r} ({_FORMS})")
    match = _SIZE.match(value)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"not a size: {value!r} ({_FORMS})")
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    """The shortest exact binary-unit spelling (``64MiB``), bytes otherwise."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
