"""The real Alertmanager and Prometheus against the real actioner and exporter over TLS with client certificates.

Alertmanager's webhook ``http_config`` (tls_config + authorization) posts to the actioner; Prometheus
scrapes the exporter (basic auth) and the actioner (bearer token) with scrape ``tls_config``. Jobs
without the client certificate or the credentials must read ``up == 0``: the checks can fail.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.integration.actioner.test_lab import free_port
from tests.tls_fixtures import PASSWORD, USER, Certs, make_certs, password_hash, write_web_config

pytestmark = pytest.mark.integration

TOKEN = "integration-token-5f2c"
BIN = Path(sys.executable).parent


@dataclass
class Stack:
    certs: Certs
    token_file: Path
    password_file: Path
    actioner: str  # https URL
    exporter: str  # https URL
    directory: Path

    def tls(self) -> dict[str, Any]:
        return {
            "verify": str(self.certs.ca),
            "cert": (str(self.certs.client_cert), str(self.certs.client_key)),
        }

    def tls_config(self, *, client_cert: bool = True) -> dict[str, str]:
        config = {"ca_file": str(self.certs.ca)}
        if client_cert:
            config |= {
                "cert_file": str(self.certs.client_cert),
                "key_file": str(self.certs.client_key),
            }
        return config


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} comes with Debian's monitoring packages (scripts/bootstrap)"
    return path


def _start(argv: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd
        )


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        return -9


def _wait(
    check: Any, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _monitoring(
    stack: Stack, tool: str, config: dict[str, Any], flags: list[str]
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """Debian's ``tool`` on ``config`` at a free 127.0.0.1 port, in a directory of its own (``flags``
    name paths relative to it), ready; stopped after. Yields its URL, process and log."""
    port = free_port()
    directory = stack.directory / tool
    directory.mkdir()
    (directory / "config.yml").write_text(yaml.safe_dump(config))
    log = directory / f"{tool}.log"
    process = _start(
        [
            _tool(tool),
            "--config.file=config.yml",
            *flags,
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log,
        cwd=directory,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, tool, process, log)
        yield url, process, log
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("websec")
    certs = make_certs(base / "certs")
    token_file = base / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    password_file = base / "password"
    password_file.write_text(PASSWORD)
    web = write_web_config(
        base / "web.yml",
        certs,
        client_auth="RequireAndVerifyClientCert",
        users={USER: password_hash()},
    )
    actioner_port, exporter_port = free_port(), free_port()
    config = {
        "hosts": {"hv1": "test:///default", "hv2": "test:///default"},
        "journal": {"path": str(base / "journal.sqlite")},
        "webhook": {"token_file": str(token_file), "listen": f"127.0.0.1:{actioner_port}"},
        "execution": {"dry_run": True},
    }
    (base / "actioner.yml").write_text(yaml.safe_dump(config))
    processes = []
    try:
        log = base / "actioner.log"
        actioner = _start(
            [
                str(BIN / "virtbalance-actioner"),
                "--config",
                str(base / "actioner.yml"),
                "--web.config.file",
                str(web),
            ],
            log,
        )
        processes.append(actioner)
        stack = Stack(
            certs=certs,
            token_file=token_file,
            password_file=password_file,
            actioner=f"https://127.0.0.1:{actioner_port}",
            exporter=f"https://127.0.0.1:{exporter_port}",
            directory=base,
        )
        _wait(
            lambda: requests.get(f"{stack.actioner}/healthz", timeout=5, **stack.tls()).ok,
            "actioner",
            actioner,
            log,
        )
        log = base / "exporter.log"
        exporter = _start(
            [
                str(BIN / "virtbalance-exporter"),
                "--libvirt.uri=test:///default",
                f"--web.listen-address=127.0.0.1:{exporter_port}",
                f"--web.config.file={web}",
            ],
            log,
        )
        processes.append(exporter)
        _wait(
            lambda: (
                requests.get(
                    f"{stack.exporter}/metrics", auth=(USER, PASSWORD), timeout=5, **stack.tls()
                ).ok
            ),
            "exporter",
            exporter,
            log,
        )
        yield stack
    finally:
        codes = [_stop(process) for process in processes]
    # SIGTERM stops the actioner's TLS relay and waitress cleanly.
    assert codes[0] == 0, codes


def test_exporter_and_actioner_refuse_what_lacks_a_credential(stack):
    tls = stack.tls()
    assert requests.get(f"{stack.exporter}/metrics", timeout=5, **tls).status_code == 401
    wrong = requests.get(f"{stack.exporter}/metrics", auth=(USER, "nope"), timeout=5, **tls)
    assert wrong.status_code == 401
    assert requests.get(f"{stack.actioner}/metrics", timeout=5, **tls).status_code == 401
    assert requests.get(f"{stack.actioner}/api/v1/plans", timeout=5, **tls).status_code == 401
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{stack.exporter}/metrics", verify=str(stack.certs.ca), timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(stack.exporter.replace("https:", "http:") + "/metrics", timeout=5)


def test_alertmanager_posts_to_the_actioner_over_tls_with_a_client_certificate(stack):
    config = {
        "route": {
            "receiver": "virtbalance",
            "group_by": ["alertname", "host"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "virtbalance",
                "webhook_configs": [
                    {
                        "url": f"{stack.actioner}/api/v1/alerts",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(stack.token_file),
                            },
                            "tls_config": stack.tls_config(),
                        },
                    }
                ],
            }
        ],
    }
    storage = ["--storage.path=data", "--cluster.listen-address="]
    with _monitoring(stack, "prometheus-alertmanager", config, storage) as (url, am, log):
        alert = {"labels": {"alertname": "HostSustainedOverload", "host": "hv1", "resource": "cpu"}}
        requests.post(f"{url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()

        def delivered() -> bool:
            answer = requests.get(
                f"{stack.actioner}/api/v1/plans",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=5,
                **stack.tls(),
            ).json()
            return any(plan["hosts"] == ["hv1"] for plan in answer["plans"])

        _wait(delivered, "a plan from Alertmanager's notification", am, log)
    metrics = requests.get(
        f"{stack.actioner}/metrics",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
        **stack.tls(),
    ).text
    assert 'virtbalance_webhook_requests_total{code="200"} 1.0' in metrics
    assert 'virtbalance_webhook_requests_total{code="401"} 0.0' in metrics


def test_prometheus_scrapes_both_over_tls_and_only_with_certificate_and_credentials(stack):
    exporter_target = stack.exporter.removeprefix("https://")
    actioner_target = stack.actioner.removeprefix("https://")
    basic = {"username": USER, "password_file": str(stack.password_file)}
    bearer = {"credentials_file": str(stack.token_file)}

    def job(name: str, target: str, tls: dict[str, str], **auth: Any) -> dict[str, Any]:
        return {
            "job_name": name,
            "scheme": "https",
            "tls_config": tls,
            "static_configs": [{"targets": [target]}],
            **auth,
        }

    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            job("exporter", exporter_target, stack.tls_config(), basic_auth=basic),
            job("actioner", actioner_target, stack.tls_config(), authorization=bearer),
            job(
                "exporter-no-cert",
                exporter_target,
                stack.tls_config(client_cert=False),
                basic_auth=basic,
            ),
            job("exporter-no-password", exporter_target, stack.tls_config()),
            job("actioner-no-token", actioner_target, stack.tls_config()),
        ],
    }
    ups: dict[str, float] = {}
    with _monitoring(stack, "prometheus", config, ["--storage.tsdb.path=data"]) as (
        url,
        prometheus,
        log,
    ):

        def scraped() -> bool:
            result = requests.get(f"{url}/api/v1/query", params={"query": "up"}, timeout=5).json()
            ups.clear()
            ups.update({r["metric"]["job"]: float(r["value"][1]) for r in result["data"]["result"]})
            return len(ups) == 5 and ups["exporter"] == 1 and ups["actioner"] == 1

        _wait(scraped, "the first scrapes", prometheus, log)
        samples = requests.get(
            f"{url}/api/v1/query",
            params={"query": 'count by (job) ({job=~"exporter|actioner"})'},
            timeout=5,
        ).json()["data"]["result"]
    assert ups == {
        "exporter": 1.0,
        "actioner": 1.0,
        "exporter-no-cert": 0.0,
        "exporter-no-password": 0.0,
        "actioner-no-token": 0.0,
    }
    series = {r["metric"]["job"]: int(r["value"][1]) for r in samples}
    assert series["exporter"] > 10 and series["actioner"] > 10, series
