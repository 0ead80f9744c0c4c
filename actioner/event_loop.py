"""libvirt's default event loop on one daemon thread per process, with a heartbeat proving it still turns."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import libvirt

log = logging.getLogger(__name__)

# The loop's own timer ticks this often; a loop whose last tick is older than STALE_AFTER is not
# trusted to have delivered the events since (stopped, or stuck in a callback).
HEARTBEAT_SECONDS = 1.0
STALE_AFTER_SECONDS = 5.0


class EventLoop:
    """Registered once, before any connection opens (a connection opened earlier delivers no events)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._beat = 0.0
        self.error: str | None = None
        # Times the loop resumed after not turning for STALE_AFTER_SECONDS: an event raised in such a
        # gap may have been handled late, so what was cached before it is not vouched for.
        self.gaps = 0

    @property
    def registered(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Register libvirt's default implementation and run it; a second call does nothing."""
        with self._lock:
            if self._thread is not None:
                return
            libvirt.virEventRegisterDefaultImpl()
            if libvirt.virEventAddTimeout(int(HEARTBEAT_SECONDS * 1000), self._tick, None) < 0:
                self.error = "cannot add the heartbeat timer"
            self._beat = self._monotonic()
            self._thread = threading.Thread(target=self._run, name="libvirt-events", daemon=True)
            self._thread.start()

    def _tick(self, _timer: int, _opaque: object) -> None:
        now = self._monotonic()
        if now - self._beat > STALE_AFTER_SECONDS:
            self.gaps += 1
        self._beat = now

    def _run(self) -> None:
        try:
            while libvirt.virEventRunDefaultImpl() >= 0:
                pass
            self.error = "virEventRunDefaultImpl failed"
        except Exception as exc:  # the loop is gone: every reader falls back to full reads
            self.error = f"event loop died: {exc}"
        log.critical("libvirt %s; domain definitions are read in full from now on", self.error)

    def healthy(self) -> bool:
        """Running, and its heartbeat recent: events raised on its connections have been delivered."""
        thread = self._thread
        return (
            thread is not None
            and thread.is_alive()
            and self.error is None
            and self._monotonic() - self._beat <= STALE_AFTER_SECONDS
        )


# libvirt has one event implementation per process: every user shares this loop.
DEFAULT = EventLoop()
