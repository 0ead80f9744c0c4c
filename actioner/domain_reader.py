"""Every active domain of a host in two bulk libvirt calls; its XML read only when events say it changed."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import libvirt

from virtbalance.actioner.domain_events import Token, Vouch
from virtbalance.actioner.libvirt_hosts import Definition, DomainFacts, HostPool, parse_definition

# State, current memory and current vCPUs of every active domain in one call; drivers that leave a
# group out (libvirt's test driver reports only the state) are asked per domain (DomainReader._sized).
BULK_STATS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_BALLOON
    | libvirt.VIR_DOMAIN_STATS_VCPU
)

# NOWAIT: a domain whose job is taken (a long job, a hung QEMU monitor) is reported at once without the
# groups that need the job, and then asked per domain, instead of holding up the whole host's read.
BULK_FLAGS = (
    libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
    | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
)


# However quiet its events, a definition is read again after this long: the safety net under an event
# a driver does not raise (a live interface update changing its bridge raises none in QEMU).
MAX_AGE_SECONDS = 300.0


def _digest(xml: str) -> bytes:
    return hashlib.blake2b(xml.encode(), digest_size=16).digest()


class _Entry:
    __slots__ = ("definition", "digest", "read_at", "token")

    def __init__(
        self, digest: bytes, definition: Definition, token: Token | None, read_at: float
    ) -> None:
        self.digest = digest
        self.definition = definition
        self.token = token
        self.read_at = read_at


class DefinitionCache:
    """Parsed definitions by domain UUID: reused without ``XMLDesc`` while events vouch for them.

    An entry read under a token (actioner.domain_events) is returned by ``current`` as long as the token
    is the same (same host and connection, same domain ID, no event about the domain since) and it is at
    most ``max_age`` old. Otherwise the XML is read, and parsed only when its text changed: a definition
    is a pure function of the XML, so a matching digest gives exactly what a fresh parse would.
    """

    def __init__(
        self,
        *,
        max_age: float = MAX_AGE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()  # hosts are read by several threads at once
        self._entries: dict[str, _Entry] = {}
        self._max_age = max_age
        self._monotonic = monotonic
        self.parsed = 0
        self.reused = 0
        self.unread = 0  # definitions returned without reading the XML

    def current(self, uuid: str, token: Token) -> Definition | None:
        """The cached definition if ``token`` still vouches for it, else None (read the XML)."""
        with self._lock:
            entry = self._entries.get(uuid)
            if (
                entry is None
                or entry.token != token
                or self._monotonic() - entry.read_at > self._max_age
            ):
                return None
            self.unread += 1
            return entry.definition

    def definition(self, uuid: str, xml: str, token: Token | None = None) -> Definition:
        """The definition of ``xml``, kept under ``token`` (taken before the XML was read)."""
        digest = _digest(xml)
        now = self._monotonic()
        with self._lock:
            entry = self._entries.get(uuid)
            if entry is not None and entry.digest == digest:
                self.reused += 1
                self._entries[uuid] = _Entry(digest, entry.definition, token, now)
                return entry.definition
        definition = parse_definition(xml)  # outside the lock: parses of different hosts overlap
        with self._lock:
            self._entries[uuid] = _Entry(digest, definition, token, now)
            self.parsed += 1
        return definition

    def retain(self, uuids: Collection[str]) -> None:
        """Forget every domain not in ``uuids`` (undefined, gone, or on a host not read this time)."""
        keep = set(uuids)
        with self._lock:
            for uuid in [u for u in self._entries if u not in keep]:
                del self._entries[uuid]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class DomainReader:
    """The snapshot's reads of one host: the same DomainFacts as ``HostPool.domains``, in fewer calls."""

    def __init__(self, pool: HostPool, cache: DefinitionCache | None = None) -> None:
        self.pool = pool
        self.cache = cache if cache is not None else DefinitionCache()

    def domains(self, host: str) -> list[DomainFacts]:
        """Every active domain of ``host`` (running ones, and incoming migration shells flagged)."""
        conn = self.pool.connection(host)
        # Taken before any XML of the host is read: an event arriving during the read makes it stale.
        vouch = None if self.pool.watch is None else self.pool.watch.vouch(host)
        persistent = {
            d.UUIDString()
            for d in conn.listAllDomains(
                libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE
                | libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT
            )
        }
        out = []
        for dom, stats in conn.getAllDomainStats(BULK_STATS, BULK_FLAGS):
            try:
                out.append(self._facts(host, dom, stats, persistent, vouch))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue  # left while we looked: a migration finished
                raise
        return out

    def retain(self, uuids: Collection[str]) -> None:
        self.cache.retain(uuids)
        if self.pool.watch is not None:
            self.pool.watch.retain(uuids)

    def _definition(self, dom: Any, uuid: str, vouch: Vouch | None) -> Definition:
        """From the cache when the host's events vouch for it, else from a fresh ``XMLDesc``."""
        token = None if vouch is None else vouch.token(uuid, int(dom.ID()))
        if token is not None:
            cached = self.cache.current(uuid, token)
            if cached is not None:
                return cached
        return self.cache.definition(uuid, dom.XMLDesc(0), token)

    def _facts(
        self,
        host: str,
        dom: Any,
        stats: dict[str, Any],
        persistent: set[str],
        vouch: Vouch | None,
    ) -> DomainFacts:
        uuid = dom.UUIDString()
        definition = self._definition(dom, uuid, vouch)
        if "state.state" in stats and "state.reason" in stats:
            state, reason = int(stats["state.state"]), int(stats["state.reason"])
        else:
            state, reason = dom.state()
        vcpus, memory_kib = self._sized(dom, stats)
        return DomainFacts(
            name=dom.name(),
            uuid=uuid,
            host=host,
            active=True,  # listed by the ACTIVE filter
            persistent=uuid in persistent,
            state=int(state),
            reason=int(reason),
            vcpus=vcpus,
            memory_bytes=memory_kib * 1024,
            bridges=definition.bridges,
            networks=definition.networks,
            placement=definition.placement,
        )

    @staticmethod
    def _sized(dom: Any, stats: dict[str, Any]) -> tuple[int, int]:
        """(current vCPUs, current memory in KiB): the figures ``virDomainGetInfo`` gives."""
        if "vcpu.current" in stats and "balloon.current" in stats:
            return int(stats["vcpu.current"]), int(stats["balloon.current"])
        info = dom.info()
        return int(info[3]), int(info[2])
