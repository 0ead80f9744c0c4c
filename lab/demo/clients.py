"""Thin HTTP readers for Prometheus, Alertmanager and the actioner, as the demo and the e2e test use them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import requests

TIMEOUT = 5.0


class ServiceError(RuntimeError):
    """A service answered with an error or something that is not what its API documents."""


def _get_json(
    url: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Any:
    try:
        response = requests.get(url, params=params, headers=headers, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise ServiceError(f"GET {url}: {exc}") from exc
    if response.status_code != 200:
        raise ServiceError(f"GET {url}: HTTP {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError as exc:
        raise ServiceError(f"GET {url}: not JSON: {response.text[:200]}") from exc


def parse_time(text: str) -> float:
    """An RFC 3339 timestamp as Prometheus and Alertmanager write it -> Unix seconds."""
    # Python's fromisoformat handles at most microseconds; Go writes nanoseconds.
    head, _, rest = text.partition(".")
    if rest:
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return dt.datetime.fromisoformat(text).timestamp()


def format_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class RuleAlert:
    """An alert as Prometheus's rule manager sees it (pending or firing)."""

    labels: dict[str, str]
    state: str
    active_at: float
    value: float


class Prometheus:
    """Instant queries and the rule manager's alerts (elsewhere when another process runs the rules)."""

    def __init__(self, url: str, alerts_url: str | None = None) -> None:
        self.url = url.rstrip("/")
        # vmalert evaluates the rules beside VictoriaMetrics and answers the same /api/v1/alerts.
        self.alerts_url = (alerts_url or url).rstrip("/")

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant vector: (labels, value) per series."""
        body = _get_json(f"{self.url}/api/v1/query", {"query": promql})
        data = body.get("data", {})
        if body.get("status") != "success" or data.get("resultType") != "vector":
            raise ServiceError(f"query {promql!r}: unexpected answer {str(body)[:200]}")
        return [(item["metric"], float(item["value"][1])) for item in data["result"]]

    def by_host(self, promql: str) -> dict[str, float]:
        """An instant vector keyed by its ``host`` label."""
        return {labels["host"]: value for labels, value in self.query(promql) if "host" in labels}

    def alerts(self, alertname: str | None = None) -> list[RuleAlert]:
        body = _get_json(f"{self.alerts_url}/api/v1/alerts")
        out = []
        # vmalert answers null, not [], when no alert is active.
        for item in body["data"]["alerts"] or []:
            labels = item["labels"]
            if alertname is not None and labels.get("alertname") != alertname:
                continue
            out.append(
                RuleAlert(
                    labels=labels,
                    state=item["state"],
                    active_at=parse_time(item["activeAt"]),
                    value=float(item["value"]),
                )
            )
        return out

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=TIMEOUT).status_code == 200
        except requests.RequestException:
            return False


@dataclass(frozen=True)
class NotifiedAlert:
    """An alert as Alertmanager holds it."""

    labels: dict[str, str]
    state: str  # active, suppressed, unprocessed
    starts_at: float
    fingerprint: str


class Alertmanager:
    """Alerts and silences through Alertmanager's v2 API."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def alerts(self, alertname: str | None = None) -> list[NotifiedAlert]:
        params = {"filter": f'alertname="{alertname}"'} if alertname else None
        body = _get_json(f"{self.url}/api/v2/alerts", params)
        return [
            NotifiedAlert(
                labels=item["labels"],
                state=item["status"]["state"],
                starts_at=parse_time(item["startsAt"]),
                fingerprint=item["fingerprint"],
            )
            for item in body
        ]

    def add_silence(
        self, matchers: dict[str, str], duration: float, comment: str, now: float
    ) -> str:
        """Create a silence of exact-match matchers; return its id."""
        payload = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in matchers.items()
            ],
            "startsAt": format_time(now),
            "endsAt": format_time(now + duration),
            "createdBy": "virtbalance demo",
            "comment": comment,
        }
        try:
            response = requests.post(f"{self.url}/api/v2/silences", json=payload, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ServiceError(f"POST silence: {exc}") from exc
        if response.status_code != 200:
            raise ServiceError(f"POST silence: HTTP {response.status_code}: {response.text[:200]}")
        return str(response.json()["silenceID"])

    def expire_silence(self, silence_id: str) -> None:
        try:
            response = requests.delete(f"{self.url}/api/v2/silence/{silence_id}", timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ServiceError(f"DELETE silence {silence_id}: {exc}") from exc
        if response.status_code != 200:
            raise ServiceError(f"DELETE silence {silence_id}: HTTP {response.status_code}")

    def active_silences(self) -> list[dict[str, Any]]:
        body = _get_json(f"{self.url}/api/v2/silences")
        return [s for s in body if s["status"]["state"] == "active"]

    def ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=TIMEOUT).status_code == 200
        except requests.RequestException:
            return False
