"""Freezes: Alertmanager silences matched against each planned move as a synthetic alert.

A move is the alert ``{alertname="VirtBalanceMigration", domain, chunk, source, destination}``. A silence
matching it freezes the move. A silence that says nothing about ``destination`` matches every destination,
so it pins the domain (and so its whole chunk); one with a ``destination`` matcher only closes that target.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from virtbalance import contract as c
from virtbalance.plan import Migration

log = logging.getLogger(__name__)

PIN = "*"


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager matcher: ``=``, ``!=``, ``=~`` or ``!~``; regexes are anchored like Alertmanager's."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.is_regex:
            hit = re.fullmatch(f"(?:{self.value})", actual) is not None
        else:
            hit = actual == self.value
        return hit if self.is_equal else not hit


@dataclass(frozen=True)
class Silence:
    """An active silence."""

    id: str
    matchers: tuple[Matcher, ...]
    created_by: str = ""
    comment: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return bool(self.matchers) and all(m.matches(labels) for m in self.matchers)

    @property
    def names_destination(self) -> bool:
        return any(m.name == c.LABEL_DESTINATION for m in self.matchers)

    def describe(self) -> str:
        ops = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        body = ",".join(
            f"{m.name}{ops[(m.is_regex, m.is_equal)]}{m.value!r}" for m in self.matchers
        )
        who = f" by {self.created_by}" if self.created_by else ""
        return f"silence {self.id}{who} {{{body}}}"


def migration_labels(migration: Migration) -> dict[str, str]:
    """The synthetic alert's labels for one planned move."""
    return {
        c.LABEL_ALERTNAME: c.ALERT_MIGRATION,
        c.LABEL_DOMAIN: migration.domain,
        c.LABEL_CHUNK: migration.chunk,
        c.LABEL_SOURCE: migration.source,
        c.LABEL_DESTINATION: migration.destination,
    }


def freezing(silences: Iterable[Silence], migration: Migration) -> Silence | None:
    """The first silence that freezes this move, or None."""
    labels = migration_labels(migration)
    for silence in silences:
        if silence.matches(labels):
            return silence
    return None


def forbidden_pairs(
    silences: Iterable[Silence], migrations: Iterable[Migration]
) -> dict[tuple[str, str], str]:
    """(domain, destination or ``*``) pairs the planner must avoid, each with the silence that says so."""
    silences = list(silences)
    out: dict[tuple[str, str], str] = {}
    for migration in migrations:
        silence = freezing(silences, migration)
        if silence is None:
            continue
        target = migration.destination if silence.names_destination else PIN
        out[(migration.domain, target)] = silence.describe()
    return out


def parse_silences(data: Any) -> list[Silence]:
    """Active silences from an Alertmanager API v2 ``GET /silences`` answer."""
    out = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or item.get("status", {}).get("state") != "active":
            continue
        matchers = tuple(
            Matcher(
                name=str(m.get("name", "")),
                value=str(m.get("value", "")),
                is_regex=bool(m.get("isRegex", False)),
                is_equal=bool(m.get("isEqual", True)),
            )
            for m in item.get("matchers", [])
            if isinstance(m, Mapping)
        )
        out.append(
            Silence(
                id=str(item.get("id", "")),
                matchers=matchers,
                created_by=str(item.get("createdBy", "")),
                comment=str(item.get("comment", "")),
            )
        )
    return out


class SilenceError(RuntimeError):
    """Alertmanager could not be asked; a move whose freeze state is unknown does not happen."""


class AlertmanagerClient:
    """The few Alertmanager API v2 calls the actioner makes."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def active_silences(self) -> list[Silence]:
        try:
            response = self._session.get(f"{self.url}/api/v2/silences", timeout=self.timeout)
            response.raise_for_status()
            return parse_silences(response.json())
        except (requests.RequestException, ValueError) as exc:
            raise SilenceError(f"cannot read silences from {self.url}: {exc}") from exc

    def announce(self, migrations: Iterable[Migration], ends_in: float, plan_id: int) -> None:
        """Post the planned moves as firing ``VirtBalanceMigration`` alerts, so operators can veto them."""
        self._post(migrations, dt.timedelta(seconds=ends_in), plan_id, "planned")

    def retire(self, migrations: Iterable[Migration], plan_id: int) -> None:
        """Resolve the announced alerts once their moves ran or were dropped."""
        try:
            self._post(migrations, dt.timedelta(0), plan_id, "finished")
        except SilenceError as exc:
            log.warning("%s", exc)

    def _post(
        self, migrations: Iterable[Migration], ends_in: dt.timedelta, plan_id: int, phase: str
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        body = [
            {
                "labels": migration_labels(m),
                "annotations": {
                    "summary": f"virtbalance plan {plan_id}: {m.domain} {m.source} -> {m.destination}",
                    "description": f"{phase}; reason: {m.reason}. Silence this alert to veto the move.",
                },
                "startsAt": now.isoformat().replace("+00:00", "Z"),
                "endsAt": (now + ends_in).isoformat().replace("+00:00", "Z"),
            }
            for m in migrations
        ]
        if not body:
            return
        try:
            response = self._session.post(
                f"{self.url}/api/v2/alerts", json=body, timeout=self.timeout
            )
            response.raise_for_status()
        except requests.RequestException as exc:
            raise SilenceError(f"cannot post alerts to {self.url}: {exc}") from exc
