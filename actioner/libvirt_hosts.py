"""libvirt connections to the configured hosts: one reusable connection per host, reopened when dead."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import libvirt

from virtbalance.actioner.config import Config, HostConfig
from virtbalance.actioner.domain_events import DomainWatch
from virtbalance.domain_metadata import Placement, find_placement
from virtbalance.libvirt_client import is_alive, quiet_libvirt
from virtbalance.redact import redact

log = logging.getLogger(__name__)


class HostUnreachableError(RuntimeError):
    """A configured libvirt host that cannot be reached right now."""


quiet_libvirt()  # the actioner reports libvirt's errors itself


@dataclass(frozen=True)
class DomainFacts:
    """What the actioner reads about one domain from libvirt."""

    name: str
    uuid: str
    host: str
    active: bool
    persistent: bool
    state: int
    reason: int
    vcpus: int
    memory_bytes: int
    bridges: tuple[str, ...]
    networks: tuple[str, ...]
    placement: Placement

    @property
    def running_here(self) -> bool:
        """Active and not an incoming migration's paused shell."""
        incoming = (
            self.state == libvirt.VIR_DOMAIN_PAUSED
            and self.reason
            in (libvirt.VIR_DOMAIN_PAUSED_MIGRATION, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY)
            and not self.persistent
        )
        return self.active and not incoming


@dataclass(frozen=True)
class Definition:
    """The facts a domain's XML holds: its links and placement metadata (a pure function of the XML)."""

    bridges: tuple[str, ...]
    networks: tuple[str, ...]
    placement: Placement


def parse_definition(xml: str) -> Definition:
    """The links and placement of a domain's XML description."""
    root = ET.fromstring(xml)
    bridges: list[str] = []
    networks: list[str] = []
    for iface in root.findall("./devices/interface"):
        source = iface.find("source")
        if source is None:
            continue
        if iface.get("type") == "bridge" and source.get("bridge"):
            bridges.append(source.get("bridge", ""))
        elif iface.get("type") == "network" and source.get("network"):
            # Linked by the libvirt network's name, as the exporter labels it.
            networks.append(source.get("network", ""))
    try:
        placement = find_placement(root)
    except ValueError:
        placement = Placement()
    return Definition(tuple(dict.fromkeys(bridges)), tuple(dict.fromkeys(networks)), placement)


class HostPool:
    """Lazily opened libvirt connections, one per host, shared by threads (libvirt is thread-safe)."""

    def __init__(self, config: Config, watch: DomainWatch | None = None) -> None:
        self.config = config
        # Domain events on the pool's connections: which cached definitions are still current.
        self.watch = watch
        self._lock = threading.Lock()
        self._conns: dict[str, Any] = {}
        self._host_locks: dict[str, threading.Lock] = {}

    def host(self, name: str) -> HostConfig:
        return self.config.host(name)

    def connection(self, name: str) -> Any:
        """An open connection to ``name``; HostUnreachableError if libvirt cannot be reached."""
        # One lock per host: connections to different hosts open at once (a snapshot of many hosts
        # waits on the slowest, not on their sum), two threads never open two to the same host.
        with self._lock:
            host_lock = self._host_locks.setdefault(name, threading.Lock())
        with host_lock:
            with self._lock:
                conn = self._conns.get(name)
            if conn is not None:
                if is_alive(conn):
                    return conn
                self.drop(name)
            uri = self.config.host(name).uri
            # Read before the open: only a connection opened under a registered loop has events.
            evented = self.watch is not None and self.watch.loop.registered
            try:
                conn = libvirt.open(uri)
            except libvirt.libvirtError as exc:
                raise HostUnreachableError(
                    f"{name}: cannot connect to {redact(uri)}: {redact(str(exc))}"
                ) from exc
            if self.watch is not None:
                self.watch.attach(name, conn, opened_with_events=evented)
            with self._lock:
                self._conns[name] = conn
            return conn

    def dedicated(self, name: str) -> Any:
        """A new connection to ``name`` that only its caller uses and closes (one per migration)."""
        uri = self.config.host(name).uri
        try:
            return libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise HostUnreachableError(f"{name}: cannot connect to {uri}: {exc}") from exc

    def reachable(self, name: str) -> bool:
        try:
            conn = self.connection(name)
            conn.getLibVersion()
        except (HostUnreachableError, libvirt.libvirtError):
            self.drop(name)
            return False
        return True

    def drop(self, name: str) -> None:
        with self._lock:
            self._close(name)

    def _close(self, name: str) -> None:
        conn = self._conns.pop(name, None)
        if conn is not None:
            if self.watch is not None:
                self.watch.detach(name, conn)
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def close(self) -> None:
        with self._lock:
            for name in list(self._conns):
                self._close(name)

    # --- reading ------------------------------------------------------------------------------

    def capacity(self, name: str) -> tuple[float, int]:
        """(CPUs, memory bytes) of a host: the configured override, else what libvirt reports."""
        host = self.config.host(name)
        if host.cpus is not None and host.memory_bytes is not None:
            return host.cpus, host.memory_bytes
        info = self.connection(name).getInfo()
        cpus = host.cpus if host.cpus is not None else float(info[2])
        memory = host.memory_bytes if host.memory_bytes is not None else int(info[1]) * 1024 * 1024
        return cpus, memory

    def domains(self, name: str) -> list[DomainFacts]:
        """Every active domain of a host (running ones, and incoming migration shells flagged)."""
        conn = self.connection(name)
        out = []
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            try:
                out.append(self.facts(name, dom))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue  # left while we looked: a migration finished
                raise
        return out

    def facts(self, host: str, dom: Any) -> DomainFacts:
        state, reason = dom.state()
        definition = parse_definition(dom.XMLDesc(0))
        info = dom.info()
        return DomainFacts(
            name=dom.name(),
            uuid=dom.UUIDString(),
            host=host,
            active=bool(dom.isActive()),
            persistent=bool(dom.isPersistent()),
            state=int(state),
            reason=int(reason),
            vcpus=int(info[3]),
            memory_bytes=int(info[2]) * 1024,
            bridges=definition.bridges,
            networks=definition.networks,
            placement=definition.placement,
        )

    def locate(self, domain: str) -> dict[str, DomainFacts]:
        """Where a domain exists right now: host -> facts (active or only defined); unreachable hosts skipped."""
        found: dict[str, DomainFacts] = {}
        for host in self.config.host_names:
            try:
                conn = self.connection(host)
                dom = conn.lookupByName(domain)
                found[host] = self.facts(host, dom)
            except HostUnreachableError:
                continue
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                self.drop(host)
        return found

    def _private(self, name: str) -> bool:
        execution = self.config.execution
        return any(fnmatch.fnmatchcase(name, p) for p in execution.private_bridges) and not any(
            fnmatch.fnmatchcase(name, p) for p in execution.shared_bridges
        )

    def private_bridges(self, facts: DomainFacts) -> tuple[str, ...]:
        """The domain's bridges that are host-local (private), by the configured name patterns."""
        return tuple(b for b in facts.bridges if self._private(b))

    def private_networks(self, facts: DomainFacts) -> tuple[str, ...]:
        """The domain's private libvirt networks, by the same patterns."""
        return tuple(n for n in facts.networks if self._private(n))

    def private_links(self, facts: DomainFacts) -> tuple[str, ...]:
        """Every private link (bridge or libvirt network) chaining the domain into its chunk."""
        return tuple(sorted(set(self.private_bridges(facts)) | set(self.private_networks(facts))))
