"""pytest plugin: the actioner's Flask ``app`` and ``client`` fixtures, with a real journal and a recording queue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from virtbalance.actioner.app import create_app
from virtbalance.actioner.config import Config, parse_config
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.services import Services

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager"
TOKEN = "s3cret-token-value"  # the token the recorded payloads were sent with


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
