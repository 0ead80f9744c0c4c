"""Build the guest disk images: a boot sector assembled with nasm (load dial or disk writer), padded."""

from __future__ import annotations

from pathlib import Path

from virtbalance.lab.errors import LabError
from virtbalance.lab.system import find_tool, run

GUEST_DIR = Path(__file__).resolve().parent / "guest"
GUEST_SOURCE = GUEST_DIR / "loaddial.asm"
WRITER_SOURCE = GUEST_DIR / "diskwriter.asm"
IMAGE_SIZE = 1024 * 1024  # SeaBIOS does not boot a virtio disk much smaller than this
BOOT_SIGNATURE = b"\x55\xaa"
# The writer's image beyond its boot sector: not zeros, so a storage copy moves real data (a copy of
# zeros may be skipped or sparse) and a full destination fails the copy rather than passing it.
FILLER = b"virtbalance lab disk filler\n"


def assemble(source: Path, scratch: Path) -> bytes:
    """The 512-byte boot sector ``source`` assembles to; ``scratch`` is a temporary output file."""
    nasm = find_tool("nasm")
    if nasm is None:
        raise LabError("nasm not found (it assembles the guest image); run scripts/bootstrap")
    # -i: the guests include common.inc from their own directory, wherever nasm runs
    run([nasm, "-f", "bin", "-i", f"{source.parent}/", "-o", str(scratch), str(source)])
    code = scratch.read_bytes()
    scratch.unlink()
    if len(code) != 512 or code[510:] != BOOT_SIGNATURE:
        raise LabError(f"{source}: assembled to {len(code)} bytes without a boot signature")
    return code


def build_image(destination: Path) -> Path:
    """Assemble the load-dial boot sector into ``destination`` (a raw disk image) and return it."""
    code = assemble(GUEST_SOURCE, destination.with_suffix(".bin"))
    destination.write_bytes(code + bytes(IMAGE_SIZE - len(code)))
    return destination


def build_writer_sector(destination: Path) -> Path:
    """Assemble the disk-writer boot sector into ``destination`` (512 bytes), the seed of its images."""
    destination.write_bytes(assemble(WRITER_SOURCE, destination.with_suffix(".tmp")))
    return destination


def write_writer_image(sector: Path, destination: Path, size: int) -> Path:
    """A raw image of ``size`` bytes: the writer's boot sector, then filler; replaces any old one."""
    code = sector.read_bytes()
    chunk = (FILLER * (1024 * 1024 // len(FILLER) + 1))[: 1024 * 1024]
    with destination.open("wb") as handle:
        handle.write(code)
        left = size - len(code)
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            handle.write(piece)
            left -= len(piece)
    return destination
