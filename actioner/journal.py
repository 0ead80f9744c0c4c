"""The journal: every alert, plan and migration with its state and timestamps, in SQLite, crash-safe."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtbalance.records import as_dict
from virtbalance.redact import redact

# Migration states. A migration is written ``running`` before libvirt is asked to move the domain, so a
# crash leaves a trace that the start-up reconcile resolves against libvirt's reality.
# ``ambiguous``: after it, where the domain is could not be proven; it was left untouched (the
# ``ambiguous`` table follows it until a recheck proves it).
# ``split``: it moved, and moving it back (its chunk member failed) failed too; the recheck retries.
PLANNED, RUNNING, DONE, FAILED, ROLLED_BACK, SKIPPED, AMBIGUOUS, SPLIT = (
    "planned",
    "running",
    "done",
    "failed",
    "rolled_back",
    "skipped",
    "ambiguous",
    "split",
)
MIGRATION_STATES = (PLANNED, RUNNING, DONE, FAILED, ROLLED_BACK, SKIPPED, AMBIGUOUS, SPLIT)
# What a migration row is for: a planned move, or moving a chunk member back (a libvirt call of its own,
# journaled before it is made like every other, and counted in the cooldown history).
MOVE, ROLLBACK = "move", "rollback"
# Plan states: queued -> running -> one final outcome (the outcomes are the metric's label values).
PLAN_QUEUED, PLAN_RUNNING = "queued", "running"
PLAN_OUTCOMES = ("executed", "empty", "unresolved", "failed", "cancelled", "dry_run", "frozen")
PLAN_FINAL = frozenset(PLAN_OUTCOMES) | {"interrupted"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    trigger TEXT NOT NULL,
    mode TEXT NOT NULL,
    hosts TEXT NOT NULL,
    group_key TEXT,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    plan_json TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    group_key TEXT NOT NULL,
    host TEXT NOT NULL,
    status TEXT NOT NULL,
    plan_id INTEGER REFERENCES plans(id),
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (fingerprint, starts_at)
);
CREATE TABLE IF NOT EXISTS migrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id INTEGER NOT NULL REFERENCES plans(id),
    step INTEGER NOT NULL,
    domain TEXT NOT NULL,
    chunk TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    error TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'move',
    disk_total INTEGER NOT NULL DEFAULT 0,
    disk_processed INTEGER NOT NULL DEFAULT 0,
    source_disk TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS ambiguous (
    domain TEXT PRIMARY KEY,
    since REAL NOT NULL,
    checked REAL NOT NULL,
    context TEXT NOT NULL,
    reason TEXT NOT NULL,
    seen TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ambiguous_resolved (
    domain TEXT NOT NULL,
    since REAL NOT NULL,
    resolved REAL NOT NULL,
    reason TEXT NOT NULL,
    how TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS emptied (
    host TEXT PRIMARY KEY,
    since REAL NOT NULL,
    plan_id INTEGER,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS emptied_history (
    host TEXT NOT NULL,
    since REAL NOT NULL,
    until REAL NOT NULL,
    plan_id INTEGER,
    reason TEXT NOT NULL,
    how TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS migrations_by_state ON migrations(state);
CREATE INDEX IF NOT EXISTS migrations_by_domain ON migrations(domain, finished);
"""


# A move that copied storage: bytes of its disks (libvirt's disk_total, disk_processed) and what became
# of the image on the host it left ("kept", "removed", "remove failed: ...").
_STORAGE_COLUMNS = (
    ("disk_total", "INTEGER NOT NULL DEFAULT 0"),
    ("disk_processed", "INTEGER NOT NULL DEFAULT 0"),
    ("source_disk", "TEXT NOT NULL DEFAULT ''"),
)


@dataclass(frozen=True)
class AlertKey:
    """One alert instance: the same overload keeps its fingerprint and ``startsAt`` across re-sends."""

    fingerprint: str
    starts_at: str
    group_key: str
    host: str


@dataclass(frozen=True)
class MigrationRow:
    """One journaled migration."""

    id: int
    plan_id: int
    step: int
    domain: str
    chunk: str
    source: str
    destination: str
    state: str
    reason: str
    created: float
    started: float | None
    finished: float | None
    error: str
    kind: str = MOVE
    disk_total: int = 0
    disk_processed: int = 0
    source_disk: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PlanRow:
    """One journaled plan."""

    id: int
    created: float
    updated: float
    trigger: str
    mode: str
    hosts: tuple[str, ...]
    group_key: str | None
    state: str
    detail: str
    plan_json: str | None
    cancel_requested: bool

    def to_dict(self) -> dict[str, Any]:
        """The row's fields, the plan as the JSON object it was stored as (under ``plan``)."""
        row = as_dict(self)
        plan_json, cancel_requested = row.pop("plan_json"), row.pop("cancel_requested")
        return {
            **row,
            "plan": json.loads(plan_json) if plan_json else None,
            "cancel_requested": cancel_requested,
        }


class JournalLockedError(RuntimeError):
    """Another actioner holds the journal."""


class JournalLock:
    """An exclusive lock on ``<journal>.lock``, held for the life of the process: one actioner a journal.

    Two actioners on one journal would each reconcile the other's migrations in flight as interrupted.
    flock() is released by the kernel when the process dies, so a crash never leaves a stale lock.
    """

    def __init__(self, journal_path: Path | str) -> None:
        self.path = Path(f"{journal_path}.lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise JournalLockedError(
                f"the journal {journal_path} is in use by another actioner (pid {holder}, lock "
                f"{self.path}); only one actioner may run per journal (see docs/actioner.md, standby)"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


class Journal:
    """Thread-safe access to the SQLite journal; every write is its own committed transaction."""

    def __init__(self, path: Path | str, clock: Any = time.time) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a journaled 'done' must survive a power cut
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(migrations)")}
        if "kind" not in columns:  # a journal written before rollbacks had rows of their own
            self._db.execute("ALTER TABLE migrations ADD COLUMN kind TEXT NOT NULL DEFAULT 'move'")
        for column, kind in _STORAGE_COLUMNS:  # a journal written before moves copied storage
            if column not in columns:
                self._db.execute(f"ALTER TABLE migrations ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (SQLITE_FULL, SQLITE_IOERR): a second ROLLBACK would
                # fail with "no transaction is active" and hide the real error, which is what is raised.
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise

    def now(self) -> float:
        return float(self._clock())

    def _close_episode(
        self,
        open_row: tuple[str, str, str],
        history: str,
        kept: tuple[str, ...],
        closing: Mapping[str, object],
    ) -> bool:
        """Move the row (table, key column, key) into table ``history``: its ``kept`` columns and the
        ``closing`` ones; False when there is no such row. The names are this module's, never input."""
        table, key_column, key = open_row
        with self._tx() as db:
            row = db.execute(
                f"SELECT {', '.join(kept)} FROM {table} WHERE {key_column}=?", (key,)
            ).fetchone()
            if row is None:
                return False
            columns = (key_column, *kept, *closing)
            db.execute(
                f"INSERT INTO {history} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                (key, *row, *closing.values()),
            )
            db.execute(f"DELETE FROM {table} WHERE {key_column}=?", (key,))
            return True

    # --- alerts and plans ---------------------------------------------------------------------

    def record_firing(
        self,
        alerts: list[AlertKey],
        trigger: str = "alert",
        replan_after: float = math.inf,
        mode: str = "relieve",
    ) -> int | None:
        """Record firing alerts; create one queued plan for those that need one, or None.

        This is the dedupe: Alertmanager re-sends the same alert (same fingerprint and ``startsAt``) on every
        group/repeat interval and from each HA peer, and none of those re-sends gets a second plan while the
        first is queued or running. A known alert is planned again only when its last plan is over and
        either ended ``frozen`` (a silence held it: lifting the silence lets the next notification act) or
        ended ``replan_after`` seconds ago or more (the host settle window: a host still reported
        overloaded once it settled gets another round of relief). ``mode`` is the plan's mode (the
        alert's: relieve, consolidate or balance); alerts without a host (the cluster's) name none.
        """
        now = self.now()
        with self._tx() as db:
            new: list[AlertKey] = []
            replanned: list[AlertKey] = []
            for alert in alerts:
                row = db.execute(
                    "SELECT p.state, p.updated FROM alerts a LEFT JOIN plans p ON p.id = a.plan_id"
                    " WHERE a.fingerprint=? AND a.starts_at=?",
                    (alert.fingerprint, alert.starts_at),
                ).fetchone()
                if row is None:
                    new.append(alert)
                    continue
                db.execute(
                    "UPDATE alerts SET last_seen=? WHERE fingerprint=? AND starts_at=?",
                    (now, alert.fingerprint, alert.starts_at),
                )
                state, updated = row
                if state in PLAN_FINAL and (
                    state == "frozen" or now - float(updated) >= replan_after
                ):
                    replanned.append(alert)
            if not new and not replanned:
                return None
            hosts = sorted({a.host for a in (*new, *replanned) if a.host})
            group_key = (new or replanned)[0].group_key
            cursor = db.execute(
                "INSERT INTO plans (created, updated, trigger, mode, hosts, group_key, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (now, now, trigger, mode, json.dumps(hosts), group_key, PLAN_QUEUED),
            )
            plan_id = int(cursor.lastrowid or 0)
            for alert in new:
                db.execute(
                    "INSERT INTO alerts (fingerprint, starts_at, group_key, host, status, plan_id,"
                    " first_seen, last_seen) VALUES (?, ?, ?, ?, 'firing', ?, ?, ?)",
                    (
                        alert.fingerprint,
                        alert.starts_at,
                        alert.group_key,
                        alert.host,
                        plan_id,
                        now,
                        now,
                    ),
                )
            for alert in replanned:
                db.execute(
                    "UPDATE alerts SET plan_id=?, status='firing' WHERE fingerprint=? AND starts_at=?",
                    (plan_id, alert.fingerprint, alert.starts_at),
                )
            return plan_id

    def record_resolved(self, alerts: list[AlertKey]) -> list[int]:
        """Mark alerts resolved; request cancellation of plans whose every alert is resolved."""
        now = self.now()
        cancelled: list[int] = []
        with self._tx() as db:
            plan_ids = set()
            for alert in alerts:
                row = db.execute(
                    "SELECT plan_id FROM alerts WHERE fingerprint=? AND starts_at=?",
                    (alert.fingerprint, alert.starts_at),
                ).fetchone()
                if row is None:
                    continue
                db.execute(
                    "UPDATE alerts SET status='resolved', last_seen=? WHERE fingerprint=? AND starts_at=?",
                    (now, alert.fingerprint, alert.starts_at),
                )
                if row["plan_id"] is not None:
                    plan_ids.add(int(row["plan_id"]))
            for plan_id in sorted(plan_ids):
                firing = db.execute(
                    "SELECT COUNT(*) FROM alerts WHERE plan_id=? AND status='firing'", (plan_id,)
                ).fetchone()[0]
                if firing:
                    continue
                state = db.execute("SELECT state FROM plans WHERE id=?", (plan_id,)).fetchone()
                if state is not None and state["state"] not in PLAN_FINAL:
                    db.execute(
                        "UPDATE plans SET cancel_requested=1, updated=? WHERE id=?", (now, plan_id)
                    )
                    cancelled.append(plan_id)
        return cancelled

    def alert_firing(self, plan_id: int) -> bool:
        """Whether some alert behind the plan still fires (plans without alerts, e.g. drains: True)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT status FROM alerts WHERE plan_id=?", (plan_id,)
            ).fetchall()
        return not rows or any(r["status"] == "firing" for r in rows)

    def create_plan(self, trigger: str, mode: str, hosts: list[str]) -> int:
        """A plan not tied to an alert (drain, manual)."""
        now = self.now()
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO plans (created, updated, trigger, mode, hosts, state)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (now, now, trigger, mode, json.dumps(sorted(hosts)), PLAN_QUEUED),
            )
            return int(cursor.lastrowid or 0)

    def set_plan_state(
        self, plan_id: int, state: str, detail: str | None = None, plan_json: str | None = None
    ) -> None:
        now = self.now()
        with self._tx() as db:
            db.execute("UPDATE plans SET state=?, updated=? WHERE id=?", (state, now, plan_id))
            if detail is not None:
                db.execute("UPDATE plans SET detail=? WHERE id=?", (redact(detail), plan_id))
            if plan_json is not None:
                db.execute("UPDATE plans SET plan_json=? WHERE id=?", (plan_json, plan_id))

    def cancel_requested(self, plan_id: int) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT cancel_requested FROM plans WHERE id=?", (plan_id,)
            ).fetchone()
        return bool(row and row["cancel_requested"])

    def plan(self, plan_id: int) -> PlanRow:
        with self._lock:
            row = self._db.execute("SELECT * FROM plans WHERE id=?", (plan_id,)).fetchone()
        if row is None:
            raise KeyError(plan_id)
        return _plan_row(row)

    def plans(self, limit: int = 50) -> list[PlanRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM plans ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_plan_row(r) for r in rows]

    def plans_in_state(self, *states: str) -> list[PlanRow]:
        return [_plan_row(r) for r in self._in_state("plans", states)]

    def _in_state(self, table: str, states: tuple[str, ...]) -> list[sqlite3.Row]:
        """The rows of ``table`` (this module's name, never input) in one of ``states``, oldest first."""
        marks = ",".join("?" for _ in states)
        with self._lock:
            return self._db.execute(
                f"SELECT * FROM {table} WHERE state IN ({marks}) ORDER BY id", states
            ).fetchall()

    # --- migrations ---------------------------------------------------------------------------

    def add_migration(
        self,
        *,
        plan_id: int,
        step: int,
        domain: str,
        chunk: str,
        source: str,
        destination: str,
        state: str = PLANNED,
        reason: str = "",
        kind: str = MOVE,
    ) -> int:
        now = self.now()
        started = now if state == RUNNING else None
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO migrations (plan_id, step, domain, chunk, source, destination, state,"
                " reason, created, started, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    plan_id,
                    step,
                    domain,
                    chunk,
                    source,
                    destination,
                    state,
                    reason,
                    now,
                    started,
                    kind,
                ),
            )
            return int(cursor.lastrowid or 0)

    def set_migration_state(
        self, migration_id: int, state: str, reason: str | None = None, error: str | None = None
    ) -> None:
        if state not in MIGRATION_STATES:
            raise ValueError(f"unknown migration state {state!r}")
        now = self.now()
        with self._tx() as db:
            if state == RUNNING:
                db.execute(
                    "UPDATE migrations SET state=?, started=? WHERE id=?",
                    (state, now, migration_id),
                )
            elif state in (DONE, FAILED, ROLLED_BACK, SKIPPED, AMBIGUOUS, SPLIT):
                db.execute(
                    "UPDATE migrations SET state=?, finished=? WHERE id=?",
                    (state, now, migration_id),
                )
            else:
                db.execute("UPDATE migrations SET state=? WHERE id=?", (state, migration_id))
            if reason is not None:
                db.execute(
                    "UPDATE migrations SET reason=? WHERE id=?", (redact(reason), migration_id)
                )
            if error is not None:
                db.execute(
                    "UPDATE migrations SET error=? WHERE id=?", (redact(error), migration_id)
                )

    def set_migration_storage(
        self, migration_id: int, disk_total: int, disk_processed: int, source_disk: str
    ) -> None:
        """What a move with copy_storage copied, and whether the source's image was kept or removed."""
        with self._tx() as db:
            db.execute(
                "UPDATE migrations SET disk_total=?, disk_processed=?, source_disk=? WHERE id=?",
                (disk_total, disk_processed, redact(source_disk), migration_id),
            )

    def migrations(self, plan_id: int | None = None, limit: int = 500) -> list[MigrationRow]:
        with self._lock:
            if plan_id is None:
                rows = self._db.execute(
                    "SELECT * FROM migrations ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM migrations WHERE plan_id=? ORDER BY id", (plan_id,)
                ).fetchall()
        return [MigrationRow(**dict(r)) for r in rows]

    def migrations_in_state(self, *states: str) -> list[MigrationRow]:
        return [MigrationRow(**dict(r)) for r in self._in_state("migrations", states)]

    def completed_moves(self, since: float) -> list[MigrationRow]:
        """Migrations that moved a domain since a time: done (a move or a rollback row), or rolled back
        (the move happened; the rollback that undid it has a row of its own)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM migrations WHERE state IN ('done', 'rolled_back', 'split')"
                " AND finished >= ?"
                " ORDER BY finished",
                (since,),
            ).fetchall()
        return [MigrationRow(**dict(r)) for r in rows]

    # --- domains in doubt -----------------------------------------------------------------------

    def mark_ambiguous(self, domain: str, *, context: str, reason: str, seen: str) -> bool:
        """Record that ``domain``'s state cannot be proven; True when it was not ambiguous before."""
        reason, seen = redact(reason), redact(seen)
        now = self.now()
        with self._tx() as db:
            known = db.execute("SELECT 1 FROM ambiguous WHERE domain=?", (domain,)).fetchone()
            if known:
                db.execute(
                    "UPDATE ambiguous SET checked=?, reason=?, seen=? WHERE domain=?",
                    (now, reason, seen, domain),
                )
                return False
            db.execute(
                "INSERT INTO ambiguous (domain, since, checked, context, reason, seen)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (domain, now, now, context, reason, seen),
            )
            return True

    def clear_ambiguous(self, domain: str, how: str) -> bool:
        """The domain was proven (and fixed): keep the episode in ``ambiguous_resolved``."""
        return self._close_episode(
            ("ambiguous", "domain", domain),
            "ambiguous_resolved",
            ("since", "reason"),
            {"resolved": self.now(), "how": redact(how)},
        )

    def ambiguous_domains(self) -> dict[str, str]:
        """Domain -> why it is in doubt, for every domain not yet proven."""
        with self._lock:
            rows = self._db.execute(
                "SELECT domain, reason FROM ambiguous ORDER BY domain"
            ).fetchall()
        return {r["domain"]: r["reason"] for r in rows}

    # --- hosts emptied for power-off -------------------------------------------------------------

    def mark_emptied(self, host: str, plan_id: int | None, reason: str) -> bool:
        """Record that ``host`` was emptied (by plan ``plan_id``); True when it was not marked before."""
        now = self.now()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM emptied WHERE host=?", (host,)).fetchone():
                return False
            db.execute(
                "INSERT INTO emptied (host, since, plan_id, reason) VALUES (?, ?, ?, ?)",
                (host, now, plan_id, redact(reason)),
            )
            return True

    def unmark_emptied(self, host: str, how: str) -> bool:
        """Something was placed on ``host``: it is no longer emptied (the episode stays in the history)."""
        return self._close_episode(
            ("emptied", "host", host),
            "emptied_history",
            ("since", "plan_id", "reason"),
            {"until": self.now(), "how": redact(how)},
        )

    def emptied_hosts(self) -> dict[str, dict[str, Any]]:
        """Host -> {since, plan_id, reason} for every host marked emptied now."""
        with self._lock:
            rows = self._db.execute(
                "SELECT host, since, plan_id, reason FROM emptied ORDER BY host"
            ).fetchall()
        return {
            r["host"]: {"since": r["since"], "plan_id": r["plan_id"], "reason": r["reason"]}
            for r in rows
        }


def _plan_row(row: sqlite3.Row) -> PlanRow:
    return PlanRow(
        id=row["id"],
        created=row["created"],
        updated=row["updated"],
        trigger=row["trigger"],
        mode=row["mode"],
        hosts=tuple(json.loads(row["hosts"])),
        group_key=row["group_key"],
        state=row["state"],
        detail=row["detail"],
        plan_json=row["plan_json"],
        cancel_requested=bool(row["cancel_requested"]),
    )
