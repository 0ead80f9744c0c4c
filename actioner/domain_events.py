"""Which cached domain definitions libvirt's events still vouch for: per host, per domain UUID.

A cached definition may be reused without asking libvirt for the XML only while nothing casts doubt on
it. Each domain event on a watched connection bumps that domain's epoch; a new connection or a doubt
(the executor found a cached fact wrong) bumps the host's; a failed callback registration or a close
callback leaves the host unwatched until it reconnects, and an unhealthy event loop vouches for nothing.
A definition is reused only under the same token it was read under (taken before the read).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import libvirt

from virtbalance.actioner.event_loop import DEFAULT, EventLoop

log = logging.getLogger(__name__)

# Every event that can change what a snapshot reads from a domain's XML (interfaces and their links,
# the placement metadata) or where and whether it runs: lifecycle (defined, undefined, started,
# stopped, suspended, resumed, migrated), metadata, device plugs and unplugs, tunables, finished jobs
# (a migration's end), reboots, block jobs (a disk that changed). Anything else leaves the XML's
# links and metadata alone.
WATCHED_EVENTS = (
    libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
    libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
    libvirt.VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED,
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
    libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
    libvirt.VIR_DOMAIN_EVENT_ID_TUNABLE,
    libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
    libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2,
)

# A keepalive every 5 s, the connection closed after 3 unanswered: a silent hypervisor is noticed in
# about 20 s and its close callback unwatches the host.
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


class Token(NamedTuple):
    """What a definition was read under: reusable while every field is unchanged.

    A tuple: one is made and compared per domain per snapshot, at a tenth of a dataclass's cost.
    """

    host: str
    host_epoch: int
    domain_id: int
    domain_epoch: int
    loop_gaps: int


@dataclass(frozen=True)
class Vouch:
    """One host's read under a watched connection and a healthy loop: hands out its domains' tokens.

    Taken once per host read, before any XML of it is read; an event or a doubt after that makes the
    definitions read under it stale on the next read.
    """

    host: str
    host_epoch: int
    loop_gaps: int
    epochs: dict[str, int]  # the watch's live map (one dict read is atomic)
    unseen: int  # the epoch of a UUID without events since it was last forgotten

    def token(self, uuid: str, domain_id: int) -> Token:
        epoch = self.epochs.get(uuid, self.unseen)
        return Token(self.host, self.host_epoch, domain_id, epoch, self.loop_gaps)


class _Host:
    """One host's watched connection and the epochs its callbacks bump."""

    def __init__(self, conn: Any, epoch: int) -> None:
        self.conn = conn
        self.epoch = epoch
        self.watched = False
        self.callbacks: list[int] = []


def _event(conn: Any, dom: Any, *rest: Any) -> None:
    """Every domain callback has (conn, dom, ..., opaque): the opaque is the (watch, host) pair."""
    watch, host = rest[-1]
    try:
        uuid = dom.UUIDString()
    except Exception:  # an event that cannot be attributed casts doubt on the whole host
        watch.doubt(host)
        return
    watch.changed(host, uuid)


def _closed(conn: Any, reason: int, opaque: Any) -> None:
    watch, host = opaque
    watch.unwatch(host, conn, f"connection closed (reason {reason})")


class DomainWatch:
    """Per-host event callbacks on the pool's connections, and the epochs they bump."""

    def __init__(self, loop: EventLoop = DEFAULT) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}
        self._domains: dict[str, int] = {}  # UUID -> epoch, bumped by its events
        # Events counted from 1 up; a UUID without any has the epoch -forgotten, lowered each time
        # ``retain`` drops counts: a count dropped never comes back as a match for an older read.
        self._forgotten = 0
        self._host_epochs = 0

    def attach(self, host: str, conn: Any, opened_with_events: bool) -> None:
        """Watch ``conn`` (the pool's current connection to ``host``) unless it is watched already.

        A connection not seen before means a reconnect: everything cached for the host is re-read.
        """
        with self._lock:
            current = self._hosts.get(host)
            if current is not None and current.conn is conn:
                return
            self._host_epochs += 1
            state = _Host(conn, self._host_epochs)
            self._hosts[host] = state
        if not (opened_with_events and self.loop.healthy()):
            log.info("%s: no libvirt events on this connection; definitions read in full", host)
            return
        try:
            for event in WATCHED_EVENTS:
                state.callbacks.append(
                    conn.domainEventRegisterAny(None, event, _event, (self, host))
                )
            conn.registerCloseCallback(_closed, (self, host))
        except libvirt.libvirtError as exc:
            log.warning("%s: cannot watch domain events (%s); definitions read in full", host, exc)
            return
        # Local drivers (the test driver) have no keepalive: nothing to keep alive there.
        with contextlib.suppress(libvirt.libvirtError):
            conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
        with self._lock:
            if self._hosts.get(host) is state:
                state.watched = True

    def detach(self, host: str, conn: Any) -> None:
        """Deregister the callbacks of a connection about to be closed (they hold it open otherwise)."""
        with self._lock:
            state = self._hosts.get(host)
            if state is None or state.conn is not conn:
                return
            del self._hosts[host]
        for callback in state.callbacks:
            with contextlib.suppress(libvirt.libvirtError):
                conn.domainEventDeregisterAny(callback)
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()

    def changed(self, host: str, uuid: str) -> None:
        """An event about ``uuid`` arrived (from ``host``): its cached definition is stale."""
        with self._lock:
            self._domains[uuid] = self._domains.get(uuid, 0) + 1

    def unwatch(self, host: str, conn: Any, why: str) -> None:
        """Stop vouching for anything of ``host`` until a new connection is attached."""
        with self._lock:
            state = self._hosts.get(host)
            if state is None or state.conn is not conn or not state.watched:
                return
            state.watched = False
        log.warning("%s: %s; its definitions are read in full until it reconnects", host, why)

    def events(self, uuid: str) -> int:
        """How many events about ``uuid`` arrived (since it was last retained)."""
        with self._lock:
            return self._domains.get(uuid, 0)

    def doubt(self, host: str) -> None:
        """Something cached for ``host`` proved wrong: every definition of it is read again, once."""
        with self._lock:
            state = self._hosts.get(host)
            if state is not None:
                self._host_epochs += 1
                state.epoch = self._host_epochs

    def vouch(self, host: str) -> Vouch | None:
        """What to read ``host``'s domains under now; None while its events cannot be trusted."""
        with self._lock:
            state = self._hosts.get(host)
            if state is None or not state.watched:
                return None
            host_epoch = state.epoch
        if not self.loop.healthy():
            return None
        return Vouch(host, host_epoch, self.loop.gaps, self._domains, -self._forgotten)

    def token(self, host: str, uuid: str, domain_id: int) -> Token | None:
        """The token to read one domain of ``host`` under now (None: not vouched for)."""
        vouch = self.vouch(host)
        return None if vouch is None else vouch.token(uuid, domain_id)

    def retain(self, uuids: Iterable[str]) -> None:
        """Drop the counts of UUIDs not in ``uuids``; their next reads can match no earlier one."""
        keep = set(uuids)
        with self._lock:
            dropped = [u for u in self._domains if u not in keep]
            for uuid in dropped:
                del self._domains[uuid]
            if dropped:
                self._forgotten += 1
