"""Build the guest disk image: the load-dial boot sector assembled with nasm, padded to 1 MiB."""

from __future__ import annotations

from pathlib import Path

from lab.errors import LabError
from lab.system import find_tool, run

GUEST_SOURCE = Path(__file__).resolve().parent / "guest" / "loaddial.asm"
IMAGE_SIZE = 1024 * 1024  # SeaBIOS does not boot a virtio disk much smaller than this
BOOT_SIGNATURE = b"\x55\xaa"


def build_image(destination: Path) -> Path:
    """Assemble the boot sector into ``destination`` (a raw disk image) and return it."""
    nasm = find_tool("nasm")
    if nasm is None:
        raise LabError("nasm not found (it assembles the guest image); run scripts/bootstrap")
    sector = destination.with_suffix(".bin")
    run([nasm, "-f", "bin", "-o", str(sector), str(GUEST_SOURCE)])
    code = sector.read_bytes()
    sector.unlink()
    if len(code) != 512 or code[510:] != BOOT_SIGNATURE:
        raise LabError(f"{GUEST_SOURCE}: assembled to {len(code)} bytes without a boot signature")
    destination.write_bytes(code + bytes(IMAGE_SIZE - len(code)))
    return destination
