"""Alertmanager webhook payloads (version 4): validation naming every problem."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from virtbalance.actioner.journal import AlertKey
from virtbalance.contract import (
    ALERT_HOT,
    ALERT_IMBALANCED,
    ALERT_UNDERUTILIZED,
    LABEL_ALERTNAME,
    LABEL_HOST,
)
from virtbalance.plan import ModeKind

PAYLOAD_VERSION = "4"
_STATUSES = ("firing", "resolved")
# The planner mode each alert asks for; every other accepted alert name is an overload (relieve).
ALERT_MODES: Mapping[str, ModeKind] = {
    # Short overloads coming back: the host is relieved to cpu_target like a sustained overload.
    ALERT_HOT: "relieve",
    ALERT_UNDERUTILIZED: "consolidate",
    ALERT_IMBALANCED: "balance",
}
# Modes for the whole cluster: their alerts carry no host label.
CLUSTER_MODES: frozenset[ModeKind] = frozenset({"balance"})


def mode_of(alertname: str) -> ModeKind:
    """The planner mode an accepted alert triggers."""
    return ALERT_MODES.get(alertname, "relieve")


class PayloadError(ValueError):
    """A webhook body that is not a usable Alertmanager v4 notification; the message lists the problems."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Alert:
    """One alert of a notification, with what the actioner needs."""

    status: str
    labels: Mapping[str, str]
    starts_at: str
    fingerprint: str

    def key(self, group_key: str, host_label: str = LABEL_HOST) -> AlertKey:
        return AlertKey(
            fingerprint=self.fingerprint,
            starts_at=self.starts_at,
            group_key=group_key,
            host=self.labels.get(host_label, ""),
        )


@dataclass(frozen=True)
class Notification:
    """A validated webhook notification."""

    status: str
    group_key: str
    receiver: str
    alerts: tuple[Alert, ...]

    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]


def _string(problems: list[str], data: Mapping[str, Any], key: str, path: str) -> str:
    if key not in data:
        problems.append(f"{path}{key}: missing")
        return ""
    value = data[key]
    if not isinstance(value, str):
        problems.append(f"{path}{key}: expected a string, got {type(value).__name__}")
        return ""
    return value


def _labels(problems: list[str], data: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    if key not in data:
        problems.append(f"{path}{key}: missing")
        return {}
    value = data[key]
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        problems.append(f"{path}{key}: expected an object of string labels")
        return {}
    return dict(value)


def parse_notification(data: Any) -> Notification:
    """Validate a decoded JSON body; raise PayloadError naming every problem (field paths)."""
    if not isinstance(data, Mapping):
        raise PayloadError([f"expected a JSON object, got {type(data).__name__}"])
    problems: list[str] = []
    version = data.get("version")
    if version is None:
        problems.append("version: missing")
    elif version != PAYLOAD_VERSION:
        problems.append(f"version: unsupported {version!r} (expected {PAYLOAD_VERSION!r})")
    status = _string(problems, data, "status", "")
    if status and status not in _STATUSES:
        problems.append(f"status: expected firing or resolved, got {status!r}")
    group_key = _string(problems, data, "groupKey", "")
    receiver = _string(problems, data, "receiver", "")
    raw_alerts = data.get("alerts")
    alerts: list[Alert] = []
    if raw_alerts is None:
        problems.append("alerts: missing")
    elif not isinstance(raw_alerts, list):
        problems.append(f"alerts: expected a list, got {type(raw_alerts).__name__}")
    else:
        for index, raw in enumerate(raw_alerts):
            path = f"alerts[{index}]."
            if not isinstance(raw, Mapping):
                problems.append(f"alerts[{index}]: expected an object, got {type(raw).__name__}")
                continue
            before = len(problems)
            alert_status = _string(problems, raw, "status", path)
            if alert_status and alert_status not in _STATUSES:
                problems.append(f"{path}status: expected firing or resolved, got {alert_status!r}")
            labels = _labels(problems, raw, "labels", path)
            starts_at = _string(problems, raw, "startsAt", path)
            fingerprint = _string(problems, raw, "fingerprint", path)
            if "fingerprint" in raw and not fingerprint and isinstance(raw["fingerprint"], str):
                problems.append(f"{path}fingerprint: empty")
            if labels and LABEL_ALERTNAME not in labels:
                problems.append(f"{path}labels.{LABEL_ALERTNAME}: missing")
            if len(problems) == before:
                alerts.append(Alert(alert_status, labels, starts_at, fingerprint))
    if problems:
        raise PayloadError(problems)
    return Notification(status=status, group_key=group_key, receiver=receiver, alerts=tuple(alerts))


def overload_alerts(
    notification: Notification, alertnames: tuple[str, ...], hosts: tuple[str, ...]
) -> tuple[list[Alert], list[str]]:
    """The alerts the actioner acts on, and notes about the ones it ignores (unknown alert or host)."""
    chosen: list[Alert] = []
    notes: list[str] = []
    for alert in notification.alerts:
        name = alert.labels.get(LABEL_ALERTNAME, "")
        if name not in alertnames:
            notes.append(f"ignored alert {name!r}: not one of {', '.join(alertnames)}")
            continue
        host = alert.labels.get(LABEL_HOST)
        if host is None and mode_of(name) in CLUSTER_MODES:
            chosen.append(alert)
            continue
        if host is None:
            notes.append(f"ignored alert {name!r} {alert.fingerprint}: no host label")
            continue
        if host not in hosts:
            notes.append(f"ignored alert {name!r}: host {host!r} is not in the config")
            continue
        chosen.append(alert)
    return chosen, notes
