"""The lab's monitoring on the session lab: exporters in the hosts -> Prometheus -> Alertmanager -> webhook."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.waiting import wait_until
from virtbalance.lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]

RULES = """\
groups:
  - name: lab-monitoring-test
    rules:
      - alert: HostSustainedOverload
        expr: libvirt_node_cpus{host="hv1"} > 0
        labels: {severity: test}
        annotations: {summary: "lab pipeline check"}
"""


class Webhook:
    """A webhook on 127.0.0.1 that keeps every POST it gets (headers and JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def monitored_lab(lab: Lab) -> Iterator[Lab]:
    yield lab
    lab.stop_monitoring()


def test_exporters_prometheus_and_alertmanager_reach_the_webhook(
    monitored_lab: Lab, webhook: Webhook, tmp_path: Path
) -> None:
    lab = monitored_lab
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    token = tmp_path / "token"
    token.write_text("s3cret-lab-token\n")

    targets = lab.start_exporters()
    assert targets == {h.name: f"{h.address}:9178" for h in lab.hosts}
    alertmanager = lab.start_alertmanager(webhook.url, token_file=token)
    prometheus = lab.start_prometheus([rules], alertmanager=alertmanager)
    assert prometheus == f"http://127.0.0.1:{19090 + lab.lab_id * 10}"
    assert alertmanager == f"http://127.0.0.1:{19093 + lab.lab_id * 10}"

    # the generated files are what the real tools accept
    check_prom = subprocess.run(
        ["promtool", "check", "config", str(lab.state_dir / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check_prom.returncode == 0, check_prom.stdout + check_prom.stderr
    check_am = subprocess.run(
        ["amtool", "check-config", str(lab.state_dir / "alertmanager" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check_am.returncode == 0, check_am.stdout + check_am.stderr

    def declared_cpus() -> dict[str, float]:
        answer = requests.get(
            f"{prometheus}/api/v1/query", params={"query": "libvirt_node_cpus"}, timeout=5
        )
        return {r["metric"]["host"]: float(r["value"][1]) for r in answer.json()["data"]["result"]}

    cpus = wait_until(
        "every host scraped",
        lambda: len(declared_cpus()) == len(lab.hosts) and declared_cpus(),
        30,
        0.5,
    )
    assert cpus == {h.name: h.cpus for h in lab.hosts}

    def firing() -> tuple[dict[str, str], dict[str, Any]] | None:
        for headers, body in webhook.received:
            if body.get("status") == "firing":
                return headers, body
        return None

    try:
        headers, body = wait_until("the alert at the webhook", firing, 120, 0.5)
    except AssertionError as exc:
        # Say where the alert got stuck: not firing in Prometheus, not in Alertmanager, or silenced.
        seen = {
            "prometheus alerts": requests.get(f"{prometheus}/api/v1/alerts", timeout=5).json(),
            "alertmanager alerts": requests.get(f"{alertmanager}/api/v2/alerts", timeout=5).json(),
            "alertmanager silences": requests.get(
                f"{alertmanager}/api/v2/silences", timeout=5
            ).json(),
            "webhook received": webhook.received,
        }
        raise AssertionError(f"{exc}; {json.dumps(seen)[:4000]}") from None
    assert headers["Authorization"] == "Bearer s3cret-lab-token"
    assert body["version"] == "4"
    assert body["groupLabels"] == {"alertname": "HostSustainedOverload", "host": "hv1"}
    (alert,) = body["alerts"]
    assert alert["labels"]["host"] == "hv1"
    assert alert["labels"]["job"] == "virtbalance-exporter"
