"""The disk-writer guest's record: acknowledged counters from its serial log, counters on its disk image."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
RING = 32768  # as lab/guest/diskwriter.asm: value c goes to sector 1 + (c mod RING)
MAGIC = b"VBCN"
BOOT_MARK = b"R\n"  # the guest's first output
_ACK = re.compile(rb"W([0-9a-f]{8})\n")
_ERROR = re.compile(rb"E([0-9a-f]{2})\n")


def this_boot(serial_log: bytes) -> bytes:
    """The log since the guest last started (a restarted guest appends to the same log)."""
    start = serial_log.rfind(BOOT_MARK)
    return serial_log[start + len(BOOT_MARK) :] if start >= 0 else serial_log


def acknowledged(serial_log: bytes) -> list[int]:
    """Every counter value the guest acknowledged (its BIOS write returned) since it last started."""
    return [int(m, 16) for m in _ACK.findall(this_boot(serial_log))]


def write_errors(serial_log: bytes) -> list[int]:
    """The BIOS status of every write that failed since the guest last started (it retried them)."""
    return [int(m, 16) for m in _ERROR.findall(this_boot(serial_log))]


def sector_of(value: int) -> int:
    return 1 + value % RING


def read_ring(image: Path) -> dict[int, int]:
    """Sector -> the counter value stored in it, for every ring sector holding the writer's magic."""
    found: dict[int, int] = {}
    with image.open("rb") as handle:
        handle.seek(SECTOR)
        for sector in range(1, RING + 1):
            block = handle.read(8)
            if len(block) < 8:
                break
            if block[:4] == MAGIC:
                found[sector] = struct.unpack("<I", block[4:])[0]
            handle.seek(SECTOR - 8, 1)
    return found


@dataclass(frozen=True)
class Missing:
    """An acknowledged value the image does not hold: its sector has an older value or none."""

    value: int
    sector: int
    found: int | None


def missing_writes(acked: list[int], ring: dict[int, int]) -> list[Missing]:
    """Acknowledged values the image lost: a ring sector may hold the value or a later one of its
    residue class (the ring wrapped), never an older one or nothing."""
    lost = []
    for value in acked:
        sector = sector_of(value)
        found = ring.get(sector)
        if found is None or found < value or (found - value) % RING:
            lost.append(Missing(value, sector, found))
    return lost
