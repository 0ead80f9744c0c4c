"""The actioner's plans as the demo reads them from ``GET /api/v1/plans``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from virtbalance.demo.clients import ServiceError, _get_json, parse_time

# Migration states after which nothing changes any more.
FINAL_STATES = frozenset({"done", "failed", "rolled_back", "skipped", "timeout", "cancelled"})


@dataclass(frozen=True)
class MigrationView:
    """One planned migration and how far it got."""

    domain: str
    chunk: str
    source: str
    destination: str
    reason: str
    state: str
    started_at: float | None
    finished_at: float | None
    progress: float | None  # 0..1 when the actioner reports job progress

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class PlanView:
    """One plan: its migrations, what it could not resolve, and each chunk's split window."""

    id: str
    created_at: float
    outcome: str
    trigger_host: str | None
    migrations: tuple[MigrationView, ...]
    unresolved: tuple[str, ...]
    split_windows: dict[str, float]

    @property
    def finished(self) -> bool:
        return all(m.state in FINAL_STATES for m in self.migrations) and self.outcome not in (
            "planned",
            "running",
        )


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return parse_time(str(value))


def parse_migration(item: dict[str, Any]) -> MigrationView:
    progress = item.get("progress")
    return MigrationView(
        domain=str(item["domain"]),
        chunk=str(item["chunk"]),
        source=str(item["source"]),
        destination=str(item["destination"]),
        reason=str(item.get("reason") or ""),
        state=str(item["state"]),
        started_at=_time(item.get("started_at")),
        finished_at=_time(item.get("finished_at")),
        progress=None if progress is None else float(progress),
    )


def parse_plan(item: dict[str, Any]) -> PlanView:
    windows = item.get("split_windows") or {}
    unresolved = [
        entry if isinstance(entry, str) else str(entry.get("reason", entry))
        for entry in item.get("unresolved") or []
    ]
    created = _time(item.get("created_at"))
    return PlanView(
        id=str(item["id"]),
        created_at=created if created is not None else 0.0,
        outcome=str(item.get("outcome") or item.get("state") or ""),
        trigger_host=item.get("host"),
        migrations=tuple(parse_migration(m) for m in item.get("migrations") or []),
        unresolved=tuple(unresolved),
        split_windows={str(k): float(v) for k, v in windows.items()},
    )


class ActionerReader:
    """Reads the actioner's recent plans."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def plans(self) -> list[PlanView]:
        body = _get_json(f"{self.url}/api/v1/plans")
        items = body["plans"] if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ServiceError(f"{self.url}/api/v1/plans: expected a list of plans")
        return sorted((parse_plan(item) for item in items), key=lambda p: p.created_at)

    def migrations(self) -> list[tuple[PlanView, MigrationView]]:
        return [(plan, m) for plan in self.plans() for m in plan.migrations]
