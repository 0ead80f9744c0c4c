"""The journal's storage columns: bytes a move copied, what became of the source image; old journals."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from virtbalance.actioner.journal import Journal


def a_migration(journal: Journal) -> int:
    plan = journal.create_plan("drain", "drain", ["hv1"])
    return journal.add_migration(
        plan_id=plan, step=0, domain="store1", chunk="group:store", source="hv1",
        destination="hv2", reason="drain",
    )  # fmt: skip


def test_a_storage_copy_is_journaled_with_its_bytes_and_the_source_disk(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    row_id = a_migration(journal)
    (row,) = journal.migrations()
    assert (row.disk_total, row.disk_processed, row.source_disk) == (0, 0, "")
    journal.set_migration_storage(row_id, 67239936, 54525952, "kept")
    (row,) = journal.migrations()
    assert (row.disk_total, row.disk_processed, row.source_disk) == (67239936, 54525952, "kept")
    assert row.to_dict()["disk_total"] == 67239936


def test_a_journal_from_before_storage_copies_gets_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    for column in ("disk_total", "disk_processed", "source_disk"):
        db.execute(f"ALTER TABLE migrations DROP COLUMN {column}")
    db.commit()
    db.close()
    journal = Journal(path)
    a_migration(journal)
    (row,) = journal.migrations()
    assert (row.disk_total, row.source_disk) == (0, "")
