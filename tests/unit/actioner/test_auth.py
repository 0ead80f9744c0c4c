"""Who may call the actioner: credentials on every endpoint but a bare health check; secrets never shown."""

from __future__ import annotations

import base64
import logging
import sqlite3

import pytest

from tests.actioner_fixtures import TOKEN, payload
from tests.tls_fixtures import PASSWORD, USER, password_hash
from virtbalance.actioner.app import create_app
from virtbalance.actioner.auth import RequestAuth, bearer_matches
from virtbalance.actioner.config import parse_config
from virtbalance.actioner.main import main
from virtbalance.basic_auth import BasicAuth
from virtbalance.errors import ConfigError

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Every route and method the actioner serves, with what it answers once authenticated.
ENDPOINTS = [
    ("POST", "/api/v1/alerts", 200),
    ("GET", "/api/v1/alerts", 405),
    ("GET", "/api/v1/plans", 200),
    ("POST", "/api/v1/drain/hv2", 202),
    ("GET", "/metrics", 200),
    ("GET", "/nowhere", 404),
]
WRONG = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer"},
]


def call(client, method, path, headers):
    if path == "/api/v1/alerts" and method == "POST":
        return client.post(path, json=payload("firing_hv1"), headers=headers)
    return client.open(path, method=method, headers=headers)


@pytest.mark.parametrize(("method", "path", "status"), ENDPOINTS)
def test_every_endpoint_needs_credentials(client, actioner_services, method, path, status):
    for headers in WRONG:
        response = call(client, method, path, headers)
        assert response.status_code == 401, (headers, response.status_code)
        assert "plans" not in response.get_data(as_text=True)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert actioner_services.journal.plans() == []
    assert call(client, method, path, AUTH).status_code == status


def test_health_check_is_open_and_says_nothing_about_the_cluster(client, actioner_services):
    call(client, "POST", "/api/v1/alerts", AUTH)  # a plan exists, the worker has work
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    text = response.get_data(as_text=True)
    for secret in ("hv1", "hv2", "plan", "queued", "192.0.2"):
        assert secret not in text


def test_the_worker_status_moved_behind_the_token(client):
    answer = client.get("/api/v1/plans", headers=AUTH).get_json()
    assert answer["worker"] == {"alive": True, "current_plan": None, "queued": 0}


def test_basic_auth_users_are_accepted_besides_the_token(actioner_services):
    users = BasicAuth({USER: password_hash().encode()})
    app = create_app(actioner_services.config, services=actioner_services, basic_auth=users)
    client = app.test_client()
    good = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    bad = base64.b64encode(f"{USER}:nope".encode()).decode()
    assert client.get("/metrics", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    assert client.get("/metrics", headers=AUTH).status_code == 200


def test_request_auth_rules():
    assert RequestAuth().allows(None)  # nothing configured: loopback only, enforced by the config
    auth = RequestAuth(token="t")
    assert auth.allows("Bearer t") and auth.allows("bearer  t ")
    assert not auth.allows(None) and not auth.allows("Bearer tt")
    assert not bearer_matches("Bearer \udcff", "t")  # a header that is not text compares false


def test_the_token_is_never_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    call(client, "POST", "/api/v1/alerts", AUTH)
    call(client, "POST", "/api/v1/alerts", {"Authorization": "Bearer guessed-token-123"})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "queued" in logged  # something was logged, and it is not the token
    assert TOKEN not in logged
    assert "guessed-token-123" not in logged


def test_plans_api_and_journal_never_show_uri_credentials(client, actioner_services):
    journal = actioner_services.journal
    plan_id = journal.create_plan("drain", "drain:hv1", ["hv1"])
    move = journal.add_migration(
        plan_id=plan_id, step=0, domain="web1", chunk="c", source="hv1", destination="hv2"
    )
    leak = (
        "hv2: cannot connect to qemu+ssh://admin:hunter2@hv2/system?keyfile=/etc/vb/id_ed25519:"
        " admin@hv2: Permission denied"
    )
    journal.set_migration_state(move, "failed", reason=leak, error=leak)
    journal.set_plan_state(plan_id, "failed", detail=leak)
    text = client.get("/api/v1/plans", headers=AUTH).get_data(as_text=True)
    db = sqlite3.connect(actioner_services.config.journal_path)
    stored = " ".join(
        str(value)
        for table in ("plans", "migrations")
        for row in db.execute(f"SELECT * FROM {table}")
        for value in row
    )
    db.close()
    for where in (text, stored):
        assert "qemu+ssh://hv2/system" in where
        for secret in ("admin", "hunter2", "/etc/vb/id_ed25519"):
            assert secret not in where


def test_a_non_loopback_listen_address_needs_a_token(tmp_path, capsys):
    data = {"hosts": {"hv1": "qemu+tls://hv1/system"}, "webhook": {"listen": "0.0.0.0:9096"}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="actioner.yml", base=tmp_path)
    assert info.value.problems == (
        "webhook.token_file: required when webhook.listen (0.0.0.0) is not a loopback address",
    )
    for listen in ("127.0.0.1:9096", "[::1]:9096", "localhost:9096"):
        data["webhook"]["listen"] = listen
        assert parse_config(data, base=tmp_path).webhook.token_file is None
    data["webhook"]["listen"] = "actioner.example.org:9096"
    with pytest.raises(ConfigError):
        parse_config(data, base=tmp_path)
    (tmp_path / "actioner.yml").write_text(
        "hosts: {hv1: 'qemu+tls://hv1/system'}\nwebhook: {listen: '198.18.0.1:9096'}\n"
    )
    assert main(["--config", str(tmp_path / "actioner.yml"), "--check"]) == 2
    assert "webhook.token_file: required" in capsys.readouterr().err


def test_a_bad_web_config_stops_the_actioner_at_check(tmp_path, capsys):
    (tmp_path / "token").write_text("t\n")
    (tmp_path / "actioner.yml").write_text(
        "hosts: {hv1: 'qemu+tls://hv1/system'}\nwebhook: {token_file: token}\n"
    )
    (tmp_path / "web.yml").write_text("basic_auth_users: {alice: secret}\n")
    args = [
        "--config",
        str(tmp_path / "actioner.yml"),
        "--web.config.file",
        str(tmp_path / "web.yml"),
    ]
    assert main([*args, "--check"]) == 2
    err = capsys.readouterr().err
    assert "basic_auth_users.alice: not a bcrypt hash" in err and "secret" not in err
