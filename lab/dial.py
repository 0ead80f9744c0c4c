"""The guest's CPU load dial: percent of one core <-> digit 0..9, the key that sets it, the serial echo."""

from __future__ import annotations

import re
from pathlib import Path

STEPS = 9  # the guest spins for n of every 9 timer ticks
# Linux input key codes (virDomainSendKey with VIR_KEYCODE_SET_LINUX): KEY_1 = 2 ... KEY_9 = 10, KEY_0 = 11
_KEYCODES = {0: 11, **{n: n + 1 for n in range(1, 10)}}
_LEVEL = re.compile(rb"L([0-9])")
READY_MARK = b"R"


def level_for(percent: int) -> int:
    """The dial digit closest to ``percent`` of one core."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError(f"load must be a percent 0..100, not {percent!r}")
    return (percent * STEPS + 50) // 100


def percent_for(level: int) -> int:
    """The load the guest actually runs at for a digit (rounded percent of one core)."""
    return round(level * 100 / STEPS)


def keycode_for(level: int) -> int:
    return _KEYCODES[level]


def last_level(serial_log: bytes) -> int | None:
    """The level the guest last reported on its serial port, None if it reported none."""
    matches = _LEVEL.findall(serial_log)
    return int(matches[-1]) if matches else None


def is_ready(serial_log: bytes) -> bool:
    return READY_MARK in serial_log


def read_log(path: Path, offset: int = 0) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""
