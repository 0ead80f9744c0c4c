"""Redaction of libvirt URIs and errors: user, password and key file paths never leave the process."""

from __future__ import annotations

import logging

import pytest

from virtbalance.redact import REDACTED, RedactingFilter, redact, uri_secrets

SECRET_BITS = ("admin", "hunter2", "/etc/virtbalance/id_ed25519", "/etc/pki/libvirt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "qemu+ssh://admin:hunter2@hv3.example.org/system?keyfile=/etc/virtbalance/id_ed25519",
            f"qemu+ssh://hv3.example.org/system?keyfile={REDACTED}",
        ),
        (
            "hv3: cannot connect to qemu+ssh://admin@hv3/system?no_verify=1&keyfile=/etc/x: refused",
            f"hv3: cannot connect to qemu+ssh://hv3/system?no_verify=1&keyfile={REDACTED}: refused",
        ),
        (
            "qemu+tls://hv1/system?pkipath=/etc/pki/libvirt/hv1",
            f"qemu+tls://hv1/system?pkipath={REDACTED}",
        ),
        (
            "Cannot recv data: admin@hv3.example.org: Permission denied (publickey).",
            f"Cannot recv data: {REDACTED}@hv3.example.org: Permission denied (publickey).",
        ),
        (
            "Failed to read private key '/etc/virtbalance/id_ed25519'",
            f"Failed to read private key '{REDACTED}'",
        ),
        (
            "unable to load /etc/pki/libvirt/private/clientkey.pem: no such file",
            f"unable to load {REDACTED}: no such file",
        ),
    ],
)
def test_redacts_users_passwords_and_key_paths(text, expected):
    assert redact(text) == expected
    for bit in SECRET_BITS:
        assert bit not in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "plan 3 queued for hv1, hv2",
        "qemu+tcp://198.18.0.2/system: migration of web1 to hv2 failed: operation timed out",
        "disk /var/lib/libvirt/images/web1.qcow2 is not shared",
        "Prometheus query http://prometheus:9090/api/v1/query failed",
    ],
)
def test_leaves_ordinary_messages_alone(text):
    assert redact(text) == text


def test_configured_secrets_are_redacted_wherever_they_appear():
    uris = ["qemu+ssh://vb@hv3/system?keyfile=/srv/keys/hv3-access&no_tty=1", "qemu:///system"]
    secrets = uri_secrets(uris)
    assert secrets == ("/srv/keys/hv3-access",)
    assert redact("ssh: cannot open /srv/keys/hv3-access (mode 0644)", secrets) == (
        f"ssh: cannot open {REDACTED} (mode 0644)"
    )


def test_log_filter_redacts_arguments_and_tracebacks():
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("cannot reach %s", "qemu+ssh://admin:hunter2@hv3/system")
        try:
            raise RuntimeError(
                "open qemu+ssh://admin@hv3/system?keyfile=/etc/virtbalance/id_ed25519"
            )
        except RuntimeError:
            logger.exception("reconnect failed")
    finally:
        logger.removeHandler(handler)
    assert records[0] == "cannot reach qemu+ssh://hv3/system"
    assert "RuntimeError: open qemu+ssh://hv3/system?keyfile=" + REDACTED in records[1]
    for bit in SECRET_BITS:
        assert all(bit not in line for line in records)
