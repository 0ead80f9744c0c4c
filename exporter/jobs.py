"""Which domains a scrape asks for job stats: the ones libvirt's events or states say may be in a job."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import libvirt

from virtbalance.actioner import event_loop

log = logging.getLogger(__name__)

# Events after which a domain may be in (or just out of) a migration job. A live migration
# announces itself on the source with its first memory iteration and ends with JOB_COMPLETED; the
# destination sees lifecycle events (started/resumed "migrated"). Any lifecycle event is cheap to
# follow up: they are rare.
WATCHED_EVENTS = (
    libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
    libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
    libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
)
# 0: ask every running domain each scrape. Measured on 20 guests the checks cost 0-6 ms there
# (they overlap the bulk calls), and the first event of a live migration comes only with its first
# memory pass, seconds after the job starts on a busy host (docs/exporter.md).
DEFAULT_SWEEP_SECONDS = 0.0

Clock = Callable[[], float]


@dataclass(frozen=True)
class JobPlan:
    """One scrape's decision: check everything, or these suspects plus paused and new domains."""

    everything: bool
    suspects: frozenset[str]
    known: frozenset[str]
    marks: dict[str, int]  # the event count of each suspect when the plan was made

    def wants(self, uuid: str, state: int | None) -> bool:
        return (
            self.everything
            or uuid in self.suspects
            or uuid not in self.known  # new here: started, or arriving by migration
            or state == libvirt.VIR_DOMAIN_PAUSED  # incoming, post-copy or offline migration
        )


class JobWatch:
    """Keeps the domains libvirt's events mark as possibly in a job, so scrapes skip the others.

    With ``sweep_seconds`` > 0, a scrape asks only the marked, paused and new domains, and every
    domain once per ``sweep_seconds`` (a job without events, such as a live dump, is seen then).
    Events arrive on libvirt's event loop thread; plans and results come from scrape threads.
    Without events (``sweep_seconds`` 0, no event loop, a driver without them) every domain is
    checked every scrape.
    """

    def __init__(self, clock: Clock, sweep_seconds: float = DEFAULT_SWEEP_SECONDS) -> None:
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        self._lock = threading.Lock()
        self._events = False  # events flow on the current connection
        self._last_sweep: float | None = None
        self._suspects: dict[str, int] = {}  # UUID -> events seen for it (a change marker)
        self._known: frozenset[str] = frozenset()

    def attach(self, conn: Any) -> None:
        """Follow ``conn``'s domain events; a new connection missed the old one's, so sweep once."""
        with self._lock:
            self._events = False
            self._last_sweep = None
        if self._sweep_seconds <= 0:
            return  # every scrape asks every domain: events would change nothing
        try:
            for event in WATCHED_EVENTS:
                conn.domainEventRegisterAny(None, event, self._on_event, None)
        except libvirt.libvirtError as exc:
            log.info("no libvirt domain events (%s): checking every domain's job each scrape", exc)
            return
        with self._lock:
            self._events = True

    @property
    def events(self) -> bool:
        return self._events

    def _on_event(self, _conn: Any, dom: Any, *_details: Any) -> None:
        try:
            uuid = dom.UUIDString()
        except libvirt.libvirtError:
            return
        with self._lock:
            self._suspects[uuid] = self._suspects.get(uuid, 0) + 1

    def follow(self, uuid: str) -> None:
        """A check found a job (a sweep, or a paused domain): keep asking until it ends."""
        with self._lock:
            self._suspects.setdefault(uuid, 0)

    def plan(self) -> JobPlan:
        now = self._clock()
        with self._lock:
            everything = (
                not self._events
                or self._last_sweep is None
                or now - self._last_sweep >= self._sweep_seconds
            )
            if everything:
                self._last_sweep = now
            marks = dict(self._suspects)
            return JobPlan(everything, frozenset(marks), self._known, marks)

    def idle(self, plan: JobPlan, uuid: str) -> None:
        """A check found no job: forget the suspect unless an event named it again meanwhile."""
        if uuid not in plan.marks:
            return  # not a suspect when the plan was made: nothing to forget (and no lock taken)
        with self._lock:
            if uuid in self._suspects and self._suspects[uuid] == plan.marks.get(uuid):
                del self._suspects[uuid]

    def retain(self, uuids: Iterable[str]) -> None:
        """The domains of the last complete scrape: the others are new next time."""
        keep = frozenset(uuids)
        with self._lock:
            self._known = keep
            for uuid in [u for u in self._suspects if u not in keep]:
                del self._suspects[uuid]


def start_event_loop() -> None:
    """Run libvirt's default event loop on a daemon thread (once per process, shared with the actioner).

    It must be registered before a connection opens for that connection's events to flow.
    """
    event_loop.DEFAULT.start()
