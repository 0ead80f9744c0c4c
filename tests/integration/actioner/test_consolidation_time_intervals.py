"""When consolidation may run, set in Alertmanager: a real Alertmanager with one route whose time interval
is active and one whose interval is not, in front of the actioner's webhook served over HTTP."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from werkzeug.serving import make_server

from tests.actioner_fixtures import RecordingQueue, actioner_config
from tests.http_fixtures import serving
from virtbalance.actioner.app import create_app
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.services import Services

pytestmark = pytest.mark.integration

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
MUTED = "Notifications not sent, route is not within active time"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def actioner(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    """The actioner's webhook app on a real HTTP port; the worker only records what is queued."""
    config = actioner_config(tmp_path)
    services = Services(
        config=config,
        journal=Journal(config.journal_path),
        metrics=Metrics(),
        worker=RecordingQueue(),
        token=config.read_token(),
    )
    server = make_server("127.0.0.1", free_port(), create_app(config, services=services))
    try:
        with serving(server) as port:
            yield f"http://127.0.0.1:{port}", services
    finally:
        services.journal.close()


def alertmanager_config(webhook: str, token_file: Path) -> dict:
    """hv1's HostUnderutilized inside an interval that holds now; hv2's inside one that never does."""
    this_year = dt.datetime.now(dt.UTC).year
    route = {
        "receiver": "virtbalance-actioner",
        "group_by": ["alertname", "host"],
        "group_wait": "1s",
        "group_interval": "1m",
        "repeat_interval": "1h",
    }
    return {
        "route": {
            "receiver": "operators",
            "routes": [
                {
                    **route,
                    "matchers": ['alertname = "HostUnderutilized"', 'host = "hv1"'],
                    "active_time_intervals": ["now"],
                },
                {
                    **route,
                    "matchers": ['alertname = "HostUnderutilized"', 'host = "hv2"'],
                    "active_time_intervals": ["long_ago"],
                },
            ],
        },
        "time_intervals": [
            {"name": "now", "time_intervals": [{"years": [f"{this_year - 1}:{this_year + 1}"]}]},
            {"name": "long_ago", "time_intervals": [{"years": ["2001"]}]},
        ],
        "receivers": [
            {"name": "operators"},
            {
                "name": "virtbalance-actioner",
                "webhook_configs": [
                    {
                        "url": f"{webhook}/api/v1/alerts",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                        },
                    }
                ],
            },
        ],
    }


@pytest.mark.skipif(
    ALERTMANAGER is None,
    reason="Alertmanager not installed (scripts/bootstrap installs prometheus-alertmanager)",
)
def test_consolidation_runs_inside_its_active_interval_and_not_outside(tmp_path, actioner):
    webhook, services = actioner
    config = tmp_path / "am.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(webhook, tmp_path / "token")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                str(ALERTMANAGER),
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        now = dt.datetime.now(dt.UTC).isoformat()
        alerts = [
            {
                "labels": {"alertname": "HostUnderutilized", "host": h, "severity": "info"},
                "startsAt": now,
            }
            for h in ("hv1", "hv2")
        ]
        assert requests.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).status_code == 200

        # Both groups flush after group_wait: hv1's reaches the actioner, hv2's is held back by its
        # interval (Alertmanager says so in its log). Wait for both events.
        deadline = time.monotonic() + 60
        while True:
            plans = services.journal.plans()
            muted = [line for line in log.read_text().splitlines() if MUTED in line]
            # Only hv2's route has an interval that is not active: a muted flush can only be its.
            if plans and muted:
                break
            assert time.monotonic() < deadline, (plans, log.read_text())
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # One consolidate plan, for hv1 only; hv2's alert never reached the actioner.
    assert [(p.mode, p.hosts) for p in services.journal.plans()] == [("consolidate", ("hv1",))]
