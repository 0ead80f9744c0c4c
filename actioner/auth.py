"""Who may call the actioner: the bearer token, or a basic-auth user of the web config; checked on headers."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from virtbalance.basic_auth import BasicAuth

# The only path served without credentials; it answers ok or unavailable and nothing else.
PUBLIC_PATHS = frozenset({"/healthz"})


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a bearer token (constant-time compare)."""
    if not header:
        return False
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(
        credentials.strip().encode("utf-8", "surrogatepass"), token.encode("utf-8")
    )


@dataclass(frozen=True)
class RequestAuth:
    """The credentials the actioner accepts; with neither configured (loopback only) it accepts all."""

    token: str | None = None
    basic: BasicAuth | None = None

    @property
    def open(self) -> bool:
        return self.token is None and not self.basic

    def allows(self, header: str | None) -> bool:
        if self.open:
            return True
        if self.token is not None and bearer_matches(header, self.token):
            return True
        return bool(self.basic) and self.basic is not None and self.basic.check(header)
