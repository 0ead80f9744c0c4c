"""libvirt errors as exceptions only: its default handler also prints every one of them to stderr."""

from __future__ import annotations

import libvirt


def _ignore(_context: object, _error: object) -> None:
    """Each caller raises or logs the errors that matter to it; none wants libvirt's own printing."""


def quiet_libvirt() -> None:
    """Replace libvirt's printing error handler, for the whole process, with one that does nothing."""
    libvirt.registerErrorHandler(_ignore, None)
