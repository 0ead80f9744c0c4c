"""pytest plugin: the actioner's Flask ``app`` and ``client`` fixtures, with a real journal and a recording queue."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
import waitress.server

from virtbalance.actioner.app import create_app
from virtbalance.actioner.config import Config, load_config, parse_config
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.libvirt_hosts import DomainFacts
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.runtime import build_services
from virtbalance.actioner.services import Services
from virtbalance.contract import ALERT_OVERLOAD
from virtbalance.domain_metadata import Placement

MiB = 2**20


def running_facts(
    name: str,
    host: str,
    *,
    vcpus: int = 1,
    memory_bytes: int = 64 * MiB,
    bridges: tuple[str, ...] = (),
    placement: Placement | None = None,
) -> DomainFacts:
    """What libvirt reports of a persistent domain running on ``host`` (its UUID is its name)."""
    return DomainFacts(
        name=name,
        uuid=name,
        host=host,
        active=True,
        persistent=True,
        state=libvirt.VIR_DOMAIN_RUNNING,
        reason=0,
        vcpus=vcpus,
        memory_bytes=memory_bytes,
        bridges=bridges,
        networks=(),
        placement=placement or Placement(),
    )


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager"
TOKEN = "s3cret-token-value"  # the token the recorded payloads were sent with
# hv1's CPU overload as a rule evaluator posts it to Alertmanager's API (/api/v2/alerts).
OVERLOAD_ALERT: dict[str, Any] = {
    "labels": {
        "alertname": ALERT_OVERLOAD,
        "host": "hv1",
        "resource": "cpu",
        "severity": "warning",
    },
    "annotations": {"summary": "hv1 CPU above the policy"},
}
# Where a fuzzed notification gets a random value: every field the webhook reads, and its parents.
PAYLOAD_FIELDS: tuple[tuple[str | int, ...], ...] = (
    ("version",),
    ("status",),
    ("groupKey",),
    ("receiver",),
    ("alerts",),
    ("alerts", 0),
    ("alerts", 0, "status"),
    ("alerts", 0, "labels"),
    ("alerts", 0, "labels", "host"),
    ("alerts", 0, "labels", "alertname"),
    ("alerts", 0, "startsAt"),
    ("alerts", 0, "fingerprint"),
    ("alerts", 0, "annotations"),
)
# Values a fuzzed field takes besides random ones: the words a real notification holds.
PAYLOAD_WORDS = ("firing", "resolved", "4", "hv1", ALERT_OVERLOAD, "")


class RecordingQueue:
    """Stands in for the worker: remembers what was queued, runs nothing."""

    def __init__(self) -> None:
        self.submitted: list[int] = []

    def submit(self, plan_id: int) -> None:
        self.submitted.append(plan_id)

    def status(self) -> dict[str, Any]:
        return {"alive": True, "current_plan": None, "queued": len(self.submitted)}


def payload(name: str) -> dict[str, Any]:
    """A recorded Alertmanager notification from tests/fixtures/alertmanager/NAME.json."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def actioner_config(tmp_path: Path, **overrides: Any) -> Config:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    data: dict[str, Any] = {
        "hosts": {
            "hv1": "qemu+tcp://192.0.2.1/system",
            "hv2": "qemu+tcp://192.0.2.2/system",
            "hv3": "qemu+tcp://192.0.2.3/system",
        },
        "journal": {"path": str(tmp_path / "journal.sqlite")},
        "webhook": {"token_file": str(token_file), "max_body_bytes": 64 * 1024},
    }
    data.update(overrides)
    return parse_config(data, source="test", base=tmp_path)


@pytest.fixture
def actioner_services(tmp_path: Path) -> Services:
    config = actioner_config(tmp_path)
    journal = Journal(config.journal_path)
    return Services(
        config=config,
        journal=journal,
        metrics=Metrics(),
        worker=RecordingQueue(),
        token=config.read_token(),
    )


@pytest.fixture
def app(actioner_services: Services):
    application = create_app(actioner_services.config, services=actioner_services)
    application.testing = True
    yield application
    actioner_services.close()


@pytest.fixture
def client(app):
    return app.test_client()


@contextlib.contextmanager
def serve_actioner(config_file: Path) -> Iterator[tuple[str, Services]]:
    """The real app and services of ``config_file``, served by waitress on a free 127.0.0.1 port in a thread.

    Yields its URL and services; afterwards the server closes and the worker finishes its plan in flight
    before the journal closes.
    """
    config = load_config(config_file)
    services = build_services(config, start=True)
    server = waitress.server.create_server(
        create_app(config, services=services), host="127.0.0.1", port=0, threads=2
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}", services
    finally:
        server.close()
        services.worker.stop(timeout=120)
        thread.join(5)
        services.close()
