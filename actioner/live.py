"""The live cluster as a planner Snapshot, with cooldown facts from the journal (``virtbalance plan --live``)."""

from __future__ import annotations

import dataclasses

from virtbalance import barriers
from virtbalance.actioner.barrier_history import barrier_history
from virtbalance.actioner.config import Config
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.libvirt_hosts import HostPool
from virtbalance.actioner.snapshot_builder import ClusterView, SnapshotBuilder


def live_view(config: Config) -> ClusterView:
    """Read the cluster once; the snapshot annotated with the journal's migration history when it exists."""
    pool = HostPool(config)
    try:
        view = SnapshotBuilder(config, pool).build()
    finally:
        pool.close()
    if not config.journal_path.exists():
        return view
    journal = Journal(config.journal_path)
    try:
        past = barrier_history(journal, view.snapshot.time, config.policy)
    finally:
        journal.close()
    return dataclasses.replace(view, snapshot=barriers.annotate(view.snapshot, past))
