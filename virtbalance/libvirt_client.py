"""What every libvirt client of the project shares: errors as exceptions only, a cached connection's health."""

from __future__ import annotations

from typing import Any

import libvirt


def _ignore(_context: object, _error: object) -> None:
    """Each caller raises or logs the errors that matter to it; none wants libvirt's own printing."""


def quiet_libvirt() -> None:
    """Replace libvirt's error handler, which prints every error to stderr, with one that does nothing."""
    libvirt.registerErrorHandler(_ignore, None)


def is_alive(connection: Any) -> bool:
    """Whether a kept libvirt connection still answers (a dead one raises instead of saying no)."""
    try:
        return bool(connection.isAlive())
    except libvirt.libvirtError:
        return False
