"""HTTP basic authentication against the bcrypt hashes of a web config, with a cache of verified pairs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import bcrypt

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# bcrypt costs ~0.1 s per check by design; Prometheus sends the same pair every scrape, so verified
# pairs are remembered (as keyed digests, never the password) up to this many.
CACHE_SIZE = 64
REALM = "virtbalance"
# Checked for unknown users so that a wrong user name takes as long as a wrong password.
_DUMMY_HASH = b"$2b$10$VbRakGBYnw4wYa0eSUBhp.oU5HaVRbAWuEPvfbX70tqNg1Lz8JeWq"


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic ...`` header; None if absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


class BasicAuth:
    """Checks basic-auth headers against ``users`` (name -> bcrypt hash); thread-safe."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._users)

    def check(self, header: str | None) -> bool:
        """Whether the header names a configured user with the right password."""
        credentials = basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        digest = hmac.new(
            self._key, f"{user}\0{password}".encode("utf-8", "surrogatepass"), hashlib.sha256
        ).digest()
        with self._lock:
            if hashed is not None and digest in self._verified:
                self._verified.move_to_end(digest)
                return True
        try:
            ok = bcrypt.checkpw(password.encode("utf-8", "surrogatepass"), hashed or _DUMMY_HASH)
        except ValueError:  # a password bcrypt refuses (NUL bytes): simply wrong
            ok = False
        if not ok or hashed is None:
            return False
        with self._lock:
            self._verified[digest] = None
            while len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return True


def require_basic_auth(app: WsgiApp, auth: BasicAuth) -> WsgiApp:
    """Wrap a WSGI app so every request needs valid basic-auth credentials (401 otherwise)."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if auth.check(environ.get("HTTP_AUTHORIZATION")):
            return app(environ, start_response)
        body = b"Unauthorized\n"
        start_response(
            "401 Unauthorized",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("WWW-Authenticate", f'Basic realm="{REALM}"'),
            ],
        )
        return [body]

    return wrapped
