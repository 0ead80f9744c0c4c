"""Every active domain of a host read in two bulk libvirt calls plus one XML read, its parse memoised."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection
from typing import Any

import libvirt

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


def _digest(xml: str) -> bytes:
    return hashlib.blake2b(xml.encode(), digest_size=16).digest()


class DefinitionCache:
    """Parsed definitions by domain UUID, reused while the domain's live XML is the same, byte for byte.

    A definition is a pure function of the XML, so a matching digest gives exactly what a fresh parse
    would, and every change that shows in the XML is re-parsed on the next read: a redefinition that took
    effect, a hot-plugged interface, ``setMetadata`` (a new pin), a migration that rewrote the XML. It
    saves the parse, not the ``XMLDesc`` call: libvirt has no bulk XML read, and trusting lifecycle events
    instead would need an event loop in the actioner's process, under the connections the moves use too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # hosts are read by several threads at once
        self._entries: dict[str, tuple[bytes, Definition]] = {}
        self.parsed = 0
        self.reused = 0

    def definition(self, uuid: str, xml: str) -> Definition:
        digest = _digest(xml)
        with self._lock:
            entry = self._entries.get(uuid)
            if entry is not None and entry[0] == digest:
                self.reused += 1
                return entry[1]
        definition = parse_definition(xml)  # outside the lock: parses of different hosts overlap
        with self._lock:
            self._entries[uuid] = (digest, definition)
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
                out.append(self._facts(host, dom, stats, persistent))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue  # left while we looked: a migration finished
                raise
        return out

    def retain(self, uuids: Collection[str]) -> None:
        self.cache.retain(uuids)

    def _facts(
        self, host: str, dom: Any, stats: dict[str, Any], persistent: set[str]
    ) -> DomainFacts:
        uuid = dom.UUIDString()
        definition = self.cache.definition(uuid, dom.XMLDesc(0))
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
