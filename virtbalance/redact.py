"""Remove what a libvirt URI or error may reveal (user, password, key file paths) from text shown or stored.

One function for everything that leaves the process: API answers, log lines and the journal.
``qemu+ssh://admin:pw@hv3/system?keyfile=/etc/vb/id_ed25519`` becomes
``qemu+ssh://hv3/system?keyfile=<redacted>``; ssh's ``admin@hv3: Permission denied`` becomes
``<redacted>@hv3: ...``; a quoted path to key material in an error becomes ``'<redacted>'``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

REDACTED = "<redacted>"
# libvirt URI parameters naming files or commands that say where credentials live.
SENSITIVE_PARAMS = ("keyfile", "pkipath", "known_hosts", "sshauth", "command", "socket", "netcat")

# scheme://userinfo@ : userinfo is user or user:password, without / or whitespace.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@'\"<>]+@")
_PARAMS = re.compile(
    r"(?P<key>[?&;](?:" + "|".join(SENSITIVE_PARAMS) + r")=)[^&;\s'\"<>]*?(?=$|[&;\s'\"<>]|:\s)",
    re.IGNORECASE,
)
# ssh and libvirt say user@host outside URIs ("admin@hv3: Permission denied (publickey)").
_USER_AT_HOST = re.compile(r"(?<![\w.+\-/:@])[A-Za-z0-9_][\w.+\-]*@(?=[A-Za-z0-9\[])")
# A path to key material named in an error message: id_rsa, *.key, *.pem, or a pki directory.
_KEY_PATH = re.compile(
    r"(?<![\w.:/=<>\-])/(?:[^\s'\"<>,;:]*/)?"
    r"(?:id_[A-Za-z0-9]+(?:\.pub)?|[^\s'\"<>,;:/]*\.(?:key|pem|p12|pfx)|pki(?:/[^\s'\"<>,;:]*)?)"
    r"(?=$|[\s'\"<>,;:)])"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URI user info, sensitive URI parameters, user@ prefixes, key paths and ``secrets``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _USERINFO.sub(r"\g<scheme>", text)
    text = _PARAMS.sub(lambda m: m.group("key") + REDACTED, text)
    text = _USER_AT_HOST.sub(REDACTED + "@", text)
    return _KEY_PATH.sub(REDACTED, text)


def uri_secrets(uris: Iterable[str]) -> tuple[str, ...]:
    """The values of sensitive parameters in ``uris`` (key file paths ...), to redact wherever they appear."""
    found: list[str] = []
    for uri in uris:
        for key, value in parse_qsl(urlsplit(uri).query):
            if key.lower() in SENSITIVE_PARAMS and value and value not in found:
                found.append(value)
    return tuple(found)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts every record's message (arguments merged in) before it is written."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(message, self._secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        return True


def install_log_redaction(secrets: Iterable[str] = ()) -> None:
    """Put a RedactingFilter on every handler of the root logger (call after logging is configured)."""
    log_filter = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(log_filter)
