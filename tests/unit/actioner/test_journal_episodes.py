"""The journal's closed episodes: a domain proven again and a host no longer emptied keep their history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from virtbalance.actioner.journal import Journal


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    """What the journal file holds, read through a connection of its own (what a restart would see)."""
    db = sqlite3.connect(path)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def test_a_domain_proven_again_leaves_the_open_table_for_its_history(tmp_path: Path) -> None:
    clock = Clock(100.0)
    path = tmp_path / "j.sqlite"
    journal = Journal(path, clock=clock)
    assert journal.mark_ambiguous("web1", context="reconcile", reason="on hv1 and hv2", seen="both")
    clock.now = 160.0
    # A second sighting updates the open episode: its start stays the first one.
    assert not journal.mark_ambiguous("web1", context="reconcile", reason="still on both", seen="x")
    clock.now = 250.0
    assert journal.clear_ambiguous("web1", "destroyed the paused copy on hv2")
    assert journal.ambiguous_domains() == {}
    assert rows(path, "SELECT domain, since, resolved, reason, how FROM ambiguous_resolved") == [
        ("web1", 100.0, 250.0, "still on both", "destroyed the paused copy on hv2")
    ]
    # Closing an episode twice records it once.
    assert not journal.clear_ambiguous("web1", "again")
    assert len(rows(path, "SELECT * FROM ambiguous_resolved")) == 1
    journal.close()


def test_a_host_given_a_domain_again_keeps_its_emptied_episode(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    path = tmp_path / "j.sqlite"
    journal = Journal(path, clock=clock)
    plan = journal.create_plan("consolidate", "night", ["hv3"])
    assert journal.mark_emptied("hv3", plan, "emptied for power-off")
    assert not journal.mark_emptied("hv3", None, "a second plan")
    assert journal.emptied_hosts() == {
        "hv3": {"since": 1000.0, "plan_id": plan, "reason": "emptied for power-off"}
    }
    clock.now = 4600.0
    assert journal.unmark_emptied("hv3", "web2 placed on it")
    assert journal.emptied_hosts() == {}
    assert rows(path, "SELECT host, since, until, plan_id, reason, how FROM emptied_history") == [
        ("hv3", 1000.0, 4600.0, plan, "emptied for power-off", "web2 placed on it")
    ]
    assert not journal.unmark_emptied("hv3", "again")
    assert not journal.unmark_emptied("hv9", "never emptied")
    assert len(rows(path, "SELECT * FROM emptied_history")) == 1
    journal.close()
