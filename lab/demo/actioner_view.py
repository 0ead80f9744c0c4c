"""The actioner as the demo and the e2e test read it: ``GET /api/v1/plans`` and ``GET /metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from virtbalance.contract import CHUNK_SPLIT
from virtbalance.lab.demo.clients import TIMEOUT, ServiceError, _get_json

# Migration states (the actioner's journal) after which nothing changes any more.
FINAL_STATES = frozenset({"done", "failed", "rolled_back", "skipped"})
# Plan states before the final outcome.
OPEN_PLAN_STATES = frozenset({"queued", "running"})


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
    progress: float | None  # 0..1 while libvirt reports the job's progress
    error: str = ""

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class PlanView:
    """One plan: its outcome, its migrations and what it could not resolve."""

    id: str
    created_at: float
    outcome: str
    detail: str
    hosts: tuple[str, ...]
    migrations: tuple[MigrationView, ...]
    unresolved: tuple[str, ...]
    mode: str = "relieve"

    @property
    def finished(self) -> bool:
        return self.outcome not in OPEN_PLAN_STATES and all(
            m.state in FINAL_STATES for m in self.migrations
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def parse_migration(item: dict[str, Any], progress: dict[str, Any] | None = None) -> MigrationView:
    percent = None if progress is None else progress["percent"]
    return MigrationView(
        domain=str(item["domain"]),
        chunk=str(item["chunk"]),
        source=str(item["source"]),
        destination=str(item["destination"]),
        reason=str(item["reason"]),
        state=str(item["state"]),
        started_at=_optional_float(item["started"]),
        finished_at=_optional_float(item["finished"]),
        progress=None if percent is None else float(percent) / 100.0,
        error=str(item["error"]),
    )


def parse_plan(item: dict[str, Any], in_progress: dict[str, Any] | None = None) -> PlanView:
    """One entry of the actioner's ``plans`` list; ``in_progress`` is its domain -> job progress map."""
    in_progress = in_progress or {}
    body = item["plan"] or {}
    unresolved = tuple(f"{u['host']}: {u['reason']}" for u in body.get("unresolved", ()))
    migrations = []
    for m in item["migrations"]:
        progress = in_progress.get(m["domain"]) if m["state"] == "running" else None
        migrations.append(parse_migration(m, progress))
    return PlanView(
        id=str(item["id"]),
        created_at=float(item["created"]),
        outcome=str(item["state"]),
        detail=str(item["detail"]),
        hosts=tuple(str(h) for h in item["hosts"]),
        migrations=tuple(sorted(migrations, key=lambda m: (m.chunk, m.domain))),
        unresolved=unresolved,
        mode=str(item.get("mode", "relieve")),
    )


class ActionerReader:
    """Reads the actioner's recent plans and the chunk split windows it measured."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        # Every actioner endpoint but /healthz needs the webhook token.
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def plans(self, limit: int = 50) -> list[PlanView]:
        body = _get_json(f"{self.url}/api/v1/plans", {"limit": str(limit)}, self.headers)
        if not isinstance(body, dict) or not isinstance(body.get("plans"), list):
            raise ServiceError(f"{self.url}/api/v1/plans: expected {{'plans': [...]}}")
        in_progress = body.get("in_progress") or {}
        return sorted(
            (parse_plan(item, in_progress) for item in body["plans"]),
            key=lambda p: (p.created_at, p.id),
        )

    def migrations(self) -> list[MigrationView]:
        return [m for plan in self.plans() for m in plan.migrations]

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``: (name, sorted labels) -> value."""
        try:
            response = requests.get(f"{self.url}/metrics", headers=self.headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ServiceError(f"GET {self.url}/metrics: {exc}") from exc
        if response.status_code != 200:
            raise ServiceError(f"GET {self.url}/metrics: HTTP {response.status_code}")
        out = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def split_totals(self) -> tuple[int, float]:
        """(chunks moved, sum of their split windows) from the split-window histogram."""
        samples = self.metrics()
        count = samples.get((f"{CHUNK_SPLIT}_count", ()), 0.0)
        total = samples.get((f"{CHUNK_SPLIT}_sum", ()), 0.0)
        return int(count), total
