"""The ``--web.config.file`` of the exporter and the actioner (prometheus/exporter-toolkit format), validated once.

The format is the one node_exporter and the other Prometheus exporters read, so operators reuse their
files::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt hash

Relative paths are relative to the web config file, as in exporter-toolkit. Keys exporter-toolkit
knows but this implementation does not honour are refused by name rather than silently ignored.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virtbalance.errors import ConfigError
from virtbalance.yamlfile import read_yaml

# exporter-toolkit's client_auth_type values and what Python's ssl module makes of them. The two that
# accept a certificate without verifying it cannot be expressed with ssl and protect nothing: refused.
CLIENT_AUTH_TYPES: dict[str, ssl.VerifyMode | None] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    "RequestClientCert": None,
    "RequireAnyClientCert": None,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
DEFAULT_MIN_VERSION = "TLS12"  # exporter-toolkit's default too
# A bcrypt hash in modular crypt format: $2a$, $2b$ or $2y$, a two-digit cost, 53 characters of salt+hash.
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")

_TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config")
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
)
# exporter-toolkit keys this implementation does not honour, and why.
_UNSUPPORTED_TLS = {
    "cert": "inline certificates are not supported: use cert_file",
    "key": "inline keys are not supported: use key_file",
    "client_ca": "an inline client CA is not supported: use client_ca_file",
    "cipher_suites": "not supported: Python's ssl defaults apply (TLS 1.3 suites are fixed anyway)",
    "curve_preferences": "not supported: Python's ssl defaults apply",
    "prefer_server_cipher_suites": "not supported",
    "client_allowed_sans": "not supported: restrict clients by their CA instead",
}


@dataclass(frozen=True)
class TLSServerConfig:
    """The server certificate and how clients are verified."""

    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = DEFAULT_MIN_VERSION
    max_version: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A server-side context; ssl.SSLError or OSError when the files do not make one."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self.min_version]
        if self.max_version is not None:
            context.maximum_version = TLS_VERSIONS[self.max_version]
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        mode = CLIENT_AUTH_TYPES[self.client_auth_type]
        assert mode is not None  # refused at parse time
        if self.client_ca_file is not None:
            context.load_verify_locations(cafile=str(self.client_ca_file))
        context.verify_mode = mode
        return context


@dataclass(frozen=True)
class WebConfig:
    """TLS (None: plain HTTP) and basic-auth users (empty: none required); the default is neither."""

    tls: TLSServerConfig | None = None
    basic_auth_users: Mapping[str, bytes] = field(default_factory=dict)
    source: str = "web config"


def _path(value: Any, where: str, base: Path, problems: list[str]) -> Path | None:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: expected a file path, got {value!r}")
        return None
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        problems.append(f"{where}: {path} is not a readable file")
        return None
    return path


def _parse_tls(raw: Any, base: Path, problems: list[str]) -> TLSServerConfig | None:
    where = "tls_server_config"
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping, got {type(raw).__name__}")
        return None
    for key in raw:
        if key in _UNSUPPORTED_TLS:
            problems.append(f"{where}.{key}: {_UNSUPPORTED_TLS[key]}")
        elif key not in _TLS_KEYS:
            problems.append(f"{where}.{key}: unknown key (known: {', '.join(_TLS_KEYS)})")
    before = len(problems)
    cert = key = None
    for name in ("cert_file", "key_file"):
        if raw.get(name) is None:
            problems.append(f"{where}.{name}: missing (TLS needs a certificate and its key)")
    if raw.get("cert_file") is not None:
        cert = _path(raw["cert_file"], f"{where}.cert_file", base, problems)
    if raw.get("key_file") is not None:
        key = _path(raw["key_file"], f"{where}.key_file", base, problems)
    client_ca = None
    if raw.get("client_ca_file") is not None:
        client_ca = _path(raw["client_ca_file"], f"{where}.client_ca_file", base, problems)
    # As in exporter-toolkit: a client CA without an auth type means verified certificates are required.
    default_auth = "RequireAndVerifyClientCert" if "client_ca_file" in raw else "NoClientCert"
    auth = raw.get("client_auth_type", default_auth)
    if auth not in CLIENT_AUTH_TYPES:
        problems.append(
            f"{where}.client_auth_type: {auth!r} is not one of {', '.join(CLIENT_AUTH_TYPES)}"
        )
    elif CLIENT_AUTH_TYPES[auth] is None:
        problems.append(
            f"{where}.client_auth_type: {auth} accepts unverified certificates and is not supported"
            " (use VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
        )
    elif auth != "NoClientCert" and raw.get("client_ca_file") is None:
        problems.append(f"{where}.client_ca_file: required by client_auth_type {auth}")
    versions: dict[str, str | None] = {}
    for name, default in (("min_version", DEFAULT_MIN_VERSION), ("max_version", None)):
        value = raw.get(name, default)
        if value is not None and value not in TLS_VERSIONS:
            problems.append(f"{where}.{name}: {value!r} is not one of {', '.join(TLS_VERSIONS)}")
            value = default
        versions[name] = value
    low, high = versions["min_version"], versions["max_version"]
    if low is not None and high is not None and TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        problems.append(f"{where}.max_version: {high} is below min_version {low}")
    if len(problems) > before or cert is None or key is None or low is None:
        return None
    tls = TLSServerConfig(
        cert_file=cert,
        key_file=key,
        client_auth_type=str(auth),
        client_ca_file=client_ca,
        min_version=low,
        max_version=high,
    )
    try:
        tls.ssl_context()  # a key that does not match its certificate is found now, not at the first client
    except (ssl.SSLError, OSError) as exc:
        problems.append(f"{where}: the certificate, key or client CA do not load: {exc}")
        return None
    return tls


def _parse_users(raw: Any, problems: list[str]) -> dict[str, bytes]:
    where = "basic_auth_users"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a mapping of user name -> bcrypt hash")
        return {}
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            problems.append(f"{where}: {user!r} is not a valid user name (non-empty, no colon)")
            continue
        if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            # The value is never echoed: it may be a plain password pasted by mistake.
            problems.append(f"{where}.{user}: not a bcrypt hash ($2y$10$... from htpasswd -nBC 10)")
            continue
        users[user] = hashed.encode("ascii")
    return users


def parse_web_config(data: Any, source: str = "web config", base: Path | None = None) -> WebConfig:
    """Validate a parsed web config document; ConfigError listing every problem."""
    base = base or Path.cwd()
    if data is None:
        return WebConfig(source=source)
    if not isinstance(data, Mapping):
        raise ConfigError(source, [f"expected a mapping at the top, got {type(data).__name__}"])
    problems: list[str] = []
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(f"{key}: unknown key (known: {', '.join(_TOP_KEYS)})")
    if data.get("http_server_config") is not None:
        problems.append(
            "http_server_config: not supported (HTTP/2 and extra headers are not served)"
        )
    tls = _parse_tls(data.get("tls_server_config"), base, problems)
    users = _parse_users(data.get("basic_auth_users"), problems)
    if problems:
        raise ConfigError(source, problems)
    return WebConfig(tls=tls, basic_auth_users=users, source=source)


def load_web_config(path: str | Path | None) -> WebConfig:
    """The web config of ``path`` (None: plain HTTP, no users); ConfigError naming the file and every problem."""
    if path is None:
        return WebConfig()
    path = Path(path)
    return parse_web_config(read_yaml(path), source=str(path), base=path.parent.resolve())
