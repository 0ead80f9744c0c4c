"""The services a running actioner shares between its web handlers and its worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from virtbalance.actioner.config import Config
from virtbalance.actioner.journal import Journal, JournalLock
from virtbalance.actioner.metrics import Metrics


class PlanQueue(Protocol):
    """What the web side needs from the worker."""

    def submit(self, plan_id: int) -> None: ...

    def status(self) -> dict[str, Any]: ...


@dataclass
class Services:
    """Everything the request handlers use; built by ``main`` or by tests with fakes where needed."""

    config: Config
    journal: Journal
    metrics: Metrics
    worker: PlanQueue
    token: str | None
    progress: dict[str, dict[str, Any]] | None = None
    # held for the life of the process: one actioner per journal
    journal_lock: JournalLock | None = None

    def close(self) -> None:
        """Close the journal and release its lock (a process that builds its services again)."""
        self.journal.close()
        if self.journal_lock is not None:
            self.journal_lock.release()
