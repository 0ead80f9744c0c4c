"""Certificates made at test time: a CA, a server certificate for 127.0.0.1, client certificates, web configs."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

USER, PASSWORD = "prometheus", "scrape-pass-123"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Certs:
    """Paths of the PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    # A client certificate from a CA the server does not trust.
    rogue_cert: Path
    rogue_key: Path


def make_certs(directory: Path) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("virtbalance test CA", ca_key, _name("virtbalance test CA"), ca_key, ca=True)
    rogue_ca_key = ec.generate_private_key(ec.SECP256R1())
    files: dict[str, Path] = {}
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for role, usage, issuer, issuer_key in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, ca.subject, ca_key),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, ca.subject, ca_key),
        ("rogue", ExtendedKeyUsageOID.CLIENT_AUTH, _name("rogue CA"), rogue_ca_key),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(role, key, issuer, issuer_key, ca=False, usage=usage)
        files[f"{role}_cert"] = directory / f"{role}.crt"
        files[f"{role}_key"] = directory / f"{role}.key"
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, files[f"{role}_key"])
    return Certs(ca=directory / "ca.crt", **files)


def password_hash(password: str = PASSWORD) -> str:
    # The lowest bcrypt cost: the tests check the logic, not the cost.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def write_web_config(
    path: Path,
    certs: Certs | None,
    *,
    client_auth: str | None = None,
    users: dict[str, str] | None = None,
) -> Path:
    """A web config file: TLS with ``certs`` (client certificates per ``client_auth``), basic-auth users."""
    data: dict[str, object] = {}
    if certs is not None:
        tls: dict[str, str] = {
            "cert_file": str(certs.server_cert),
            "key_file": str(certs.server_key),
        }
        if client_auth is not None:
            tls["client_auth_type"] = client_auth
            tls["client_ca_file"] = str(certs.ca)
        data["tls_server_config"] = tls
    if users:
        data["basic_auth_users"] = users
    path.write_text(yaml.safe_dump(data))
    return path
