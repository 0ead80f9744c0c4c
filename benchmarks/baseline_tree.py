"""A base commit's packages, for the benchmarks that measure it beside this tree in one run."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export_tree(ref: str, into: Path, paths: tuple[str, ...] = ("exporter", "virtbalance")) -> None:
    """``paths`` as committed at ``ref``, written under ``into`` (git archive: no worktree)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, *paths],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
