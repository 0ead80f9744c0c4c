"""The production examples in deploy/ set up TLS and credentials by default, and their files load."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.tls_fixtures import password_hash
from virtbalance.errors import ConfigError
from virtbalance.webconfig import parse_web_config

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory) -> Path:
    """What `deploy/make-tls` makes for the names the examples use."""
    directory = tmp_path_factory.mktemp("tls")
    names = ["virtbalance.example.org", "exporter", "127.0.0.1"]
    result = subprocess.run(
        [str(DEPLOY / "make-tls"), str(directory), *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    again = subprocess.run(
        [str(DEPLOY / "make-tls"), str(directory), "exporter"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert again.stdout.strip() == f"kept {directory}/exporter.crt"
    assert oct((directory / "exporter.key").stat().st_mode & 0o777) == "0o600"
    return directory


def _relocated(name: str, tls_dir: Path) -> dict:
    text = (DEPLOY / name).read_text().replace("/etc/virtbalance/tls", str(tls_dir))
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def test_the_actioner_web_config_requires_client_certificates_and_loads(tls_dir):
    config = parse_web_config(_relocated("actioner-web.yml", tls_dir))
    assert config.tls is not None
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert config.tls.cert_file == tls_dir / "virtbalance.example.org.crt"
    config.tls.ssl_context()


def test_the_exporter_web_config_refuses_its_placeholder_until_replaced(tls_dir):
    data = _relocated("exporter-web.yml", tls_dir)
    with pytest.raises(ConfigError) as info:
        parse_web_config(data)
    assert info.value.problems == (
        "basic_auth_users.prometheus: not a bcrypt hash ($2y$10$... from htpasswd -nBC 10)",
    )
    data["basic_auth_users"]["prometheus"] = password_hash()
    config = parse_web_config(data)
    assert config.tls is not None and set(config.basic_auth_users) == {"prometheus"}


def test_units_pass_the_web_config():
    actioner = (DEPLOY / "virtbalance-actioner.service").read_text()
    exporter = (DEPLOY / "virtbalance-exporter.service").read_text()
    assert (
        actioner.count("--web.config.file /etc/virtbalance/actioner-web.yml") == 2
    )  # check + start
    assert "--web.config.file=/etc/virtbalance/exporter-web.yml" in exporter


def test_alertmanager_and_prometheus_talk_tls_with_credentials():
    am = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text())
    [webhook] = [
        w
        for r in am["receivers"]
        for w in r.get("webhook_configs", [])
        if "virtbalance" in w["url"]
    ]
    assert webhook["url"].startswith("https://")
    assert set(webhook["http_config"]["tls_config"]) == {"ca_file", "cert_file", "key_file"}
    assert webhook["http_config"]["authorization"]["credentials_file"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for name, auth in (("libvirt", "basic_auth"), ("virtbalance-actioner", "authorization")):
        assert jobs[name]["scheme"] == "https"
        assert {"ca_file", "cert_file", "key_file"} <= set(jobs[name]["tls_config"])
        assert auth in jobs[name]
    actioner = yaml.safe_load((DEPLOY / "actioner.yml").read_text())
    assert not actioner["webhook"]["listen"].startswith("127.")
    assert actioner["webhook"]["token_file"]  # off loopback the actioner needs it
