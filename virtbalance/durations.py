"""Parse and format durations such as ``90s``, ``10m``, ``1h30m``, ``24h`` or Go's ``250ms``, ``1.5s``."""

from __future__ import annotations

import re

# Prometheus's units and Go's (the exporter's Go-compatible flags) in one table: they agree on every
# unit they share, so the union reads both.
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
# Go writes ".5s" and "1.s" too. Longer units first, so "ms" is never read as minutes then "s".
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w)")


def parse_duration(text: str | int | float) -> float:
    """Return seconds for a duration string; a bare number is seconds. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative: {text!r}")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r}")
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty duration")
    position = 0
    total = 0.0
    for match in _PART.finditer(stripped):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(stripped):
        raise ValueError(f"not a duration: {text!r} (expected e.g. 30s, 10m, 1h30m, 250ms)")
    return total


def format_duration(seconds: float) -> str:
    """Format seconds the way Prometheus writes durations (``1h30m``, ``45s``, ``0s``)."""
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {seconds!r}")
    if seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    remaining = int(seconds)
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
