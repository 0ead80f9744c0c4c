"""The disk-writer guest's record: its boot sector, acks on the serial log, counters in its image."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from virtbalance.lab import diskwriter
from virtbalance.lab.image import build_writer_sector, write_writer_image


def put(image: Path, value: int) -> None:
    """Write ``value`` as the guest does: magic and counter at the start of its ring sector."""
    with image.open("r+b") as handle:
        handle.seek(diskwriter.sector_of(value) * diskwriter.SECTOR)
        handle.write(diskwriter.MAGIC + struct.pack("<I", value))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A fresh 32 MiB disk-writer image: its boot sector, then filler."""
    return write_writer_image(
        build_writer_sector(tmp_path / "w.bin"), tmp_path / "w.img", 32 * 1024**2
    )


def test_the_writer_assembles_to_a_boot_sector_and_fills_its_image(tmp_path: Path) -> None:
    sector = build_writer_sector(tmp_path / "w.bin")
    assert sector.stat().st_size == 512
    assert sector.read_bytes()[510:] == b"\x55\xaa"
    image = write_writer_image(sector, tmp_path / "w.img", 32 * 1024**2)
    assert image.stat().st_size == 32 * 1024**2
    data = image.read_bytes()
    assert data[:512] == sector.read_bytes()
    assert data.count(0) < 1024  # filler, not zeros: a copy moves real bytes
    assert diskwriter.read_ring(image) == {}


def test_acks_are_read_from_the_current_boot_only() -> None:
    log = b"R\nW00000001\nW00000002\nR\nL0\nW00000001\nE80\nW00000002\nW0000"
    assert diskwriter.acknowledged(log) == [1, 2]
    assert diskwriter.write_errors(log) == [0x80]


def test_every_acknowledged_value_on_the_image_passes(image: Path) -> None:
    for value in range(1, 101):
        put(image, value)
    ring = diskwriter.read_ring(image)
    assert len(ring) == 100
    assert diskwriter.missing_writes(list(range(1, 101)), ring) == []


def test_a_lost_or_stale_write_is_found(image: Path) -> None:
    for value in range(1, 51):
        put(image, value)
    ring = diskwriter.read_ring(image)
    lost = diskwriter.missing_writes(list(range(1, 53)), ring)
    assert lost == [diskwriter.Missing(51, 52, None), diskwriter.Missing(52, 53, None)]
    # a wrapped ring holds a later value of the same residue: that is not a loss
    put(image, 5 + diskwriter.RING)
    assert diskwriter.missing_writes([5], diskwriter.read_ring(image)) == []
    assert diskwriter.missing_writes([5 + 2 * diskwriter.RING], diskwriter.read_ring(image)) == [
        diskwriter.Missing(5 + 2 * diskwriter.RING, 6, 5 + diskwriter.RING)
    ]
