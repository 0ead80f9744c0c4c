"""Which domains a scrape asks for libvirt's balloon stats group (a QEMU query per domain)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any

# Keys only a guest's balloon driver fills in; without them the group adds nothing /proc lacks.
GUEST_MEMORY_KEYS = frozenset(
    {
        "balloon.swap_in",
        "balloon.swap_out",
        "balloon.major_fault",
        "balloon.minor_fault",
        "balloon.unused",
        "balloon.available",
        "balloon.usable",
        "balloon.disk_caches",
    }
)
# A guest may load its balloon driver after boot: every domain is asked again this often.
DEFAULT_RECHECK_SECONDS = 60.0

Clock = Callable[[], float]
# One domain's record: UUID, whether it had the group, its stats, whether /proc has its RSS.
Lesson = tuple[str, bool, dict[str, Any], bool]


def reports_guest_memory(stats: dict[str, Any]) -> bool:
    # From the keys view: it looks up the eight keys, where the frozenset would walk every stat.
    return not stats.keys().isdisjoint(GUEST_MEMORY_KEYS)


class BalloonPlan:
    """Remembers per domain whether the balloon group is worth asking for.

    It is when the guest reports memory statistics (a balloon driver), or when the domain's
    RSS cannot be read from /proc here (a remote libvirt): libvirt's group carries both. Unknown
    domains and every domain once per recheck period are asked, to learn.
    """

    def __init__(self, clock: Clock, recheck_seconds: float = DEFAULT_RECHECK_SECONDS) -> None:
        self._clock = clock
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._needed: dict[str, bool] = {}  # UUID -> ask for the group
        self._last_full: float | None = None
        self._full = True

    def start_scrape(self) -> None:
        """Decide whether this scrape asks every domain (once per recheck period)."""
        now = self._clock()
        with self._lock:
            self._full = self._last_full is None or now - self._last_full >= self._recheck
            if self._full:
                self._last_full = now

    def wanted(self, uuids: Iterable[str]) -> list[bool]:
        """For each domain, whether this scrape asks it for the group."""
        with self._lock:
            if self._full:
                return [True for _ in uuids]
            return list(map(self._needed.get, uuids, itertools.repeat(True)))

    def learn(self, lessons: Iterable[Lesson]) -> None:
        """What the records showed; only a record that had the group teaches about guests."""
        with self._lock:
            for uuid, asked, stats, local_rss in lessons:
                if asked:
                    self._needed[uuid] = reports_guest_memory(stats) or not local_rss
                elif not local_rss:
                    self._needed[uuid] = True

    def retain(self, uuids: Iterable[str]) -> None:
        keep = set(uuids)
        with self._lock:
            for uuid in [u for u in self._needed if u not in keep]:
                del self._needed[uuid]
