"""The shared web config (exporter-toolkit format) and basic auth: what loads, what is refused and why."""

from __future__ import annotations

import base64
import ssl

import pytest

from tests.tls_fixtures import PASSWORD, USER, make_certs, password_hash, write_web_config
from virtbalance.basic_auth import BasicAuth, basic_credentials
from virtbalance.errors import ConfigError
from virtbalance.webconfig import DEFAULT_MIN_VERSION, WebConfig, load_web_config, parse_web_config


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_no_file_and_an_empty_file_mean_plain_http_without_users(tmp_path):
    assert load_web_config(None) == WebConfig()
    empty = tmp_path / "web.yml"
    empty.write_text("")
    config = load_web_config(empty)
    assert (config.tls, dict(config.basic_auth_users)) == (None, {})


def test_tls_with_client_certificates_and_users(tmp_path, certs):
    hashed = password_hash()
    path = write_web_config(
        tmp_path / "web.yml", certs, client_auth="RequireAndVerifyClientCert", users={USER: hashed}
    )
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert config.tls.min_version == DEFAULT_MIN_VERSION
    context = config.tls.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert config.basic_auth_users == {USER: hashed.encode()}


def test_relative_paths_are_relative_to_the_file_and_a_client_ca_alone_requires_certs(
    tmp_path, certs
):
    web_dir = certs.ca.parent
    (web_dir / "web.yml").write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_ca_file: ca.crt\n"
    )
    config = load_web_config(web_dir / "web.yml")
    assert config.tls is not None
    assert config.tls.cert_file == certs.server_cert
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"


def test_every_problem_is_listed_with_its_path(tmp_path, certs):
    data = {
        "tls_server_config": {
            "cert_file": str(tmp_path / "missing.crt"),
            "client_auth_type": "RequireAnyClientCert",
            "min_version": "TLS14",
            "cipher_suites": ["TLS_AES_128_GCM_SHA256"],
            "colour": "blue",
        },
        "basic_auth_users": {"alice": "plain-password", "bad:name": password_hash()},
        "http_server_config": {"http2": False},
        "extra": 1,
    }
    with pytest.raises(ConfigError) as info:
        parse_web_config(data, source="web.yml", base=tmp_path)
    problems = info.value.problems
    assert problems == (
        "extra: unknown key (known: tls_server_config, basic_auth_users, http_server_config)",
        "http_server_config: not supported (HTTP/2 and extra headers are not served)",
        "tls_server_config.cipher_suites: not supported: Python's ssl defaults apply"
        " (TLS 1.3 suites are fixed anyway)",
        "tls_server_config.colour: unknown key (known: cert_file, key_file, client_auth_type,"
        " client_ca_file, min_version, max_version)",
        "tls_server_config.key_file: missing (TLS needs a certificate and its key)",
        f"tls_server_config.cert_file: {tmp_path / 'missing.crt'} is not a readable file",
        "tls_server_config.client_auth_type: RequireAnyClientCert accepts unverified certificates"
        " and is not supported (use VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
        "tls_server_config.min_version: 'TLS14' is not one of TLS10, TLS11, TLS12, TLS13",
        "basic_auth_users.alice: not a bcrypt hash ($2y$10$... from htpasswd -nBC 10)",
        "basic_auth_users: 'bad:name' is not a valid user name (non-empty, no colon)",
    )
    assert "plain-password" not in str(info.value)  # a pasted password is never echoed


def test_verify_modes_need_a_client_ca_and_versions_must_be_ordered(tmp_path, certs):
    data = {
        "tls_server_config": {
            "cert_file": str(certs.server_cert),
            "key_file": str(certs.server_key),
            "client_auth_type": "VerifyClientCertIfGiven",
            "min_version": "TLS13",
            "max_version": "TLS12",
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_web_config(data)
    assert info.value.problems == (
        "tls_server_config.client_ca_file: required by client_auth_type VerifyClientCertIfGiven",
        "tls_server_config.max_version: TLS12 is below min_version TLS13",
    )


def test_a_key_that_does_not_match_its_certificate_is_found_at_load(tmp_path, certs):
    data = {
        "tls_server_config": {
            "cert_file": str(certs.server_cert),
            "key_file": str(certs.client_key),
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_web_config(data)
    [problem] = info.value.problems
    assert problem.startswith("tls_server_config: the certificate, key or client CA do not load")


def test_basic_auth_accepts_the_right_pair_only():
    auth = BasicAuth({USER: password_hash().encode()})
    assert auth.check(basic(USER, PASSWORD))
    assert auth.check(basic(USER, PASSWORD))  # from the cache
    assert not auth.check(basic(USER, PASSWORD + "x"))
    assert not auth.check(basic("someone", PASSWORD))
    assert not auth.check(None)
    assert not auth.check("Bearer " + PASSWORD)
    assert not auth.check("Basic not-base64!")
    assert not auth.check(basic(USER, "x" * 100))  # over bcrypt's 72 bytes: refused, not raised
    assert not auth.check(basic(USER, "nul\0byte"))


def test_basic_credentials_parsing():
    assert basic_credentials(basic("a", "b:c")) == ("a", "b:c")
    assert basic_credentials("basic " + base64.b64encode(b"no-colon").decode()) is None
    assert basic_credentials("Basic " + base64.b64encode(b"\xff:x").decode()) is None
