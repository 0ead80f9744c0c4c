"""The lab guests' boot sectors assemble from their shared include, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtbalance.lab.image import BOOT_SIGNATURE, GUEST_SOURCE, WRITER_SOURCE, assemble


@pytest.mark.parametrize("source", [GUEST_SOURCE, WRITER_SOURCE], ids=["load dial", "disk writer"])
def test_each_guest_assembles_to_a_boot_sector_outside_its_directory(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nasm finds common.inc through the include path, not the cwd
    code = assemble(source, tmp_path / "sector.bin")
    assert len(code) == 512
    assert code[510:] == BOOT_SIGNATURE
    # both start as common.inc's boot_start does: cli; xor ax, ax; mov ds, ax; mov es, ax
    assert code[:7] == bytes.fromhex("fa31c08ed88ec0")
    assert not (tmp_path / "sector.bin").exists()
