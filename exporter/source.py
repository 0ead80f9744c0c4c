"""Everything the exporter reads from libvirt in one scrape, under one deadline, on a reused connection."""

from __future__ import annotations

import contextlib
import itertools
import logging
import operator
import queue
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import libvirt

from virtbalance.exporter.balloon import BalloonPlan, Lesson
from virtbalance.exporter.jobs import JobPlan, JobWatch
from virtbalance.exporter.procfs import QemuProcesses
from virtbalance.exporter.topology import (
    DomainTopology,
    TopologyCache,
    TopologyError,
    parse_topology,
)

log = logging.getLogger(__name__)

# Stage names label the self-metrics; every value is pre-created so rates work from the first scrape.
STAGES = ("connect", "node", "stats", "xml", "network", "job", "pool")
DURATION_STAGES = (*STAGES, "collect", "total")

# Only the groups the metrics use: each costs libvirtd work per domain, some a QEMU query. CPU
# time and the balloon's size come from virDomainGetInfo instead (measured cheaper on libvirt 9
# than the cpu group, see docs/benchmarks.md); the balloon group (guest memory statistics and
# RSS, a QEMU query) only for the domains that need it (exporter/balloon.py).
STATS_GROUPS = (
    libvirt.VIR_DOMAIN_STATS_STATE
    | libvirt.VIR_DOMAIN_STATS_VCPU
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
    | libvirt.VIR_DOMAIN_STATS_BLOCK
)
BALLOON_GROUP = libvirt.VIR_DOMAIN_STATS_BALLOON
# One more monitor command per domain, and only useful after someone started a calculation.
DIRTYRATE_GROUP = getattr(libvirt, "VIR_DOMAIN_STATS_DIRTYRATE", 0)
# Below this many domains per call, splitting the bulk call gains less than the extra round trip.
MIN_DOMAINS_PER_CALL = 4
# NOWAIT: a domain busy in a job (a migration) reports what it can at once instead of blocking us.
STATS_FLAGS = getattr(libvirt, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 0)
_MIGRATION_OPERATIONS = frozenset(
    {
        getattr(libvirt, "VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN", 4),
        getattr(libvirt, "VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT", 5),
    }
)
# The destination of a migration refuses job stats while it comes in (libvirt 9 says
# "unsupported", older releases "invalid"); so do drivers without jobs, for running domains.
_NO_JOB_STATS = frozenset(
    {libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_OPERATION_UNSUPPORTED}
)

Clock = Callable[[], float]
_UUID = operator.attrgetter("uuid")
Connection = Any  # a libvirt.virConnect, or a fake with the same methods in unit tests
ConnectionFactory = Callable[[], Connection]


class _Domain(Protocol):
    def name(self) -> str: ...
    def UUIDString(self) -> str: ...  # noqa: N802 (libvirt's name)
    def ID(self) -> int: ...  # noqa: N802 (libvirt's name)
    def XMLDesc(self, flags: int) -> str: ...  # noqa: N802 (libvirt's name)
    def jobStats(self, flags: int) -> dict[str, Any]: ...  # noqa: N802 (libvirt's name)
    def info(self) -> list[int]: ...


class _Pool(Protocol):
    def name(self) -> str: ...
    def info(self) -> list[int]: ...


@dataclass(frozen=True)
class NodeFacts:
    """The hypervisor host as libvirt reports it (before any declared capacity override)."""

    hostname: str
    host_uuid: str
    libvirt_version: str
    hypervisor: str
    hypervisor_version: str
    cpu_model: str
    cpus: int
    memory_total_bytes: int | None
    memory_free_bytes: int | None
    memory_available_bytes: int | None
    cpu_seconds: dict[str, float]


@dataclass(slots=True)  # slots: made and read for every domain every scrape
class DomainRecord:
    """One domain: its bulk stats (active ones), and what the per-domain calls found (None: unknown)."""

    name: str
    uuid: str
    domain_id: int
    stats: dict[str, Any]
    topology: DomainTopology | None = None
    migrating: bool | None = None
    job: dict[str, Any] | None = None  # libvirt's job stats while a job runs and reports them
    active: bool = True
    timed_out: bool = False  # the scrape deadline passed before all of this domain was read


@dataclass(frozen=True)
class PoolRecord:
    """One storage pool: virStoragePoolGetInfo's figures, None when the deadline cut it."""

    name: str
    state: int | None = None
    capacity_bytes: int | None = None
    allocation_bytes: int | None = None
    available_bytes: int | None = None


@dataclass
class ScrapeData:
    """What one scrape gathered; stages that did not finish leave their part empty."""

    up: bool = False
    node: NodeFacts | None = None
    domains: list[DomainRecord] = field(default_factory=list)  # active domains
    inactive: list[DomainRecord] = field(default_factory=list)  # defined, not running
    pools: list[PoolRecord] = field(default_factory=list)
    networks_private: dict[str, bool] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, stage: str) -> None:
        self.errors[stage] = self.errors.get(stage, 0) + 1


@dataclass
class _Fetched:
    """One shard's records (job checks filled in) and their libvirt handles, in the same order.

    Each record is made once, with its UUID and name asked once (libvirt formats each), and the
    info and job checks write into it: no per-domain dict or tuple between the calls.
    """

    records: list[DomainRecord] = field(default_factory=list)
    handles: list[_Domain] = field(default_factory=list)
    vanished: set[str] = field(default_factory=set)
    job_errors: int = 0
    info_errors: int = 0
    cut: int = 0  # domains the deadline left unchecked (their records say timed_out)
    job_seconds: float = 0.0


class Deadline:
    """The time left for one scrape."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    def expired(self) -> bool:
        return self._clock() >= self._end


class _Worker:
    """One daemon thread that runs libvirt calls, so a hung call can be abandoned, not waited for."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="libvirt-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting scrape
                future.set_exception(exc)

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._jobs.put((future, fn))
        return future

    def retire(self, last: Callable[[], Any] | None = None) -> None:
        """Stop after the queued work (and ``last``, e.g. closing the connection) is done."""
        if last is not None:
            self.submit(last)
        self._jobs.put(None)


def _error_code(exc: libvirt.libvirtError) -> int | None:
    code = exc.get_error_code()
    return int(code) if code is not None else None


def _version_text(number: int) -> str:
    major, rest = divmod(number, 1_000_000)
    minor, micro = divmod(rest, 1000)
    return f"{major}.{minor}.{micro}"


class _Session:
    """One libvirt connection and the worker thread that uses it; retired as a whole on failure."""

    def __init__(self) -> None:
        self.worker = _Worker()
        self.conn: Connection | None = None
        self.static: dict[str, str] | None = None
        self.broken = False  # set by the worker: drop this session after the scrape
        self.retired = False  # set by the scrape: a late worker must not touch shared state

    def retire(self) -> None:
        self.retired = True
        self.worker.retire(lambda: _close_quietly(self.conn))


class LibvirtSource:
    """Reads one scrape's worth of libvirt data through a reused connection, within a deadline.

    Every libvirt call runs on the session's worker thread. When a scrape's deadline passes, the
    scrape returns what finished and retires the session (its connection is closed once the stuck
    call returns); the next scrape opens a fresh one. A connection-level failure retires it too.
    """

    def __init__(
        self,
        connect: ConnectionFactory,
        clock: Clock,
        timeout: float,
        topology_cache: TopologyCache,
        *,
        stats_groups: int = STATS_GROUPS,
        concurrency: int = 1,
        jobs: JobWatch | None = None,
        processes: QemuProcesses | None = None,
    ) -> None:
        self._connect = connect
        self._clock = clock
        self._timeout = timeout
        self._cache = topology_cache
        self._groups = stats_groups
        self._concurrency = concurrency
        self._jobs = jobs if jobs is not None else JobWatch(clock)
        self._processes = processes  # None: RSS only from libvirt's balloon group
        self._balloon = BalloonPlan(clock)
        self._session: _Session | None = None

    @property
    def jobs(self) -> JobWatch:
        return self._jobs

    def scrape(self) -> ScrapeData:
        data = ScrapeData()
        deadline = Deadline(self._clock, self._timeout)
        if self._session is None:
            self._session = _Session()
        session = self._session
        future = session.worker.submit(lambda: self._gather(session, data, deadline))
        try:
            future.result(timeout=deadline.remaining() + 0.05)
        except TimeoutError:
            stage = next((s for s in STAGES if s not in data.durations), "job")
            log.warning("libvirt did not answer within %.1fs (stage %s)", self._timeout, stage)
            self._retire()
            # The late worker may still write into ``data``: hand back a copy of what finished.
            snapshot = ScrapeData(node=data.node, durations=dict(data.durations))
            snapshot.errors = dict(data.errors)
            snapshot.error(stage)
            return snapshot
        except Exception:
            log.exception("unexpected failure while reading libvirt")
            data.up = False
            session.broken = True
        if session.broken:
            self._retire()
        return data

    def reachable(self) -> bool:
        """Whether libvirt answers a trivial call within the scrape timeout (the health endpoint)."""
        if self._session is None:
            self._session = _Session()
        session = self._session

        def ask() -> bool:
            conn = self._connection(session)
            if conn is None:
                return False
            try:
                conn.getLibVersion()
            except libvirt.libvirtError as exc:
                log.warning("libvirt health check failed: %s", exc)
                session.broken = True
                return False
            return True

        try:
            healthy = bool(session.worker.submit(ask).result(timeout=self._timeout))
        except TimeoutError:
            log.warning("libvirt did not answer the health check within %.1fs", self._timeout)
            self._retire()
            return False
        if session.broken:
            self._retire()
        return healthy

    def close(self) -> None:
        self._retire()

    def _retire(self) -> None:
        if self._session is not None:
            self._session.retire()
            self._session = None

    def _timed(self, data: ScrapeData, stage: str, fn: Callable[[], Any]) -> Any:
        start = self._clock()
        try:
            return fn()
        finally:
            data.durations[stage] = self._clock() - start

    # --- runs on the worker thread -------------------------------------------------------------

    def _gather(self, session: _Session, data: ScrapeData, deadline: Deadline) -> None:
        conn = self._timed(data, "connect", lambda: self._connection(session))
        if conn is None:
            data.error("connect")
            return
        try:
            data.node = self._timed(data, "node", lambda: self._node(session, conn))
        except libvirt.libvirtError as exc:
            log.warning("libvirt node info failed: %s", exc)
            data.error("node")
            session.broken = True
            return
        plan = self._jobs.plan()
        self._balloon.start_scrape()
        try:
            stopped, fetched = self._timed(
                data, "stats", lambda: self._stats_and_jobs(conn, deadline, plan)
            )
        except libvirt.libvirtError as exc:
            log.warning("libvirt domain stats failed: %s", exc)
            data.error("stats")
            session.broken = True
            return
        # Job checks ran inside the stats stage, right after each shard's bulk call; this is the
        # longest time one shard spent on them.
        data.durations["job"] = max((f.job_seconds for f in fetched), default=0.0)
        vanished: set[str] = set()
        domains: list[DomainRecord] = []
        handles: dict[str, _Domain] = {}
        for part in fetched:
            vanished |= part.vanished
            domains += part.records
            handles.update(zip(map(_UUID, part.records), part.handles, strict=True))
            for _ in range(part.job_errors):
                data.error("job")
            for _ in range(part.info_errors):
                data.error("stats")
        if any(part.cut for part in fetched):
            data.error("job")  # the deadline passed: the rest is unknown this scrape
        inactive = []
        for dom in stopped:
            uuid = dom.UUIDString()
            inactive.append(
                DomainRecord(name=dom.name(), uuid=uuid, domain_id=-1, stats={}, active=False)
            )
            handles[uuid] = dom
        data.up = True
        self._timed(
            data,
            "xml",
            lambda: self._topologies(
                session=session,
                domains=[*domains, *inactive],
                handles=handles,
                data=data,
                deadline=deadline,
                vanished=vanished,
            ),
        )
        self._timed(data, "network", lambda: self._networks(conn, domains, data, deadline))
        self._timed(data, "pool", lambda: self._pools(conn, data, deadline))
        data.domains = [d for d in domains if d.uuid not in vanished]
        data.inactive = [d for d in inactive if d.uuid not in vanished]
        if not session.retired:
            known = [d.uuid for d in data.domains]
            self._cache.retain({*known, *(d.uuid for d in data.inactive)})
            self._jobs.retain(known)
            self._balloon.retain(known)

    def _stats_and_jobs(
        self, conn: Connection, deadline: Deadline, plan: JobPlan
    ) -> tuple[list[_Domain], list[_Fetched]]:
        """The domains not running, and the running ones' records; concurrent shards when many.

        libvirtd answers a bulk call domain after domain, mostly waiting for QEMU monitors;
        shards on its worker threads overlap those waits. Shards are disjoint, so no call waits
        for another's job on a domain. Each shard checks its own domains' jobs as soon as its
        stats are in, so those round trips overlap the other shards' stats too.
        """
        running: list[_Domain] = []
        stopped: list[_Domain] = []
        for dom in conn.listAllDomains(0):
            (running if dom.ID() >= 0 else stopped).append(dom)
        if not running:
            return stopped, []
        shards = min(self._concurrency, len(running) // MIN_DOMAINS_PER_CALL)
        if shards <= 1:
            return stopped, [self._fetch(conn, running, deadline, plan)]
        results: list[_Fetched | libvirt.libvirtError | None] = [None] * shards

        def run(index: int) -> None:
            try:
                results[index] = self._fetch(conn, running[index::shards], deadline, plan)
            except libvirt.libvirtError as exc:
                results[index] = exc

        threads = [
            threading.Thread(target=run, args=(i,), name="libvirt-stats", daemon=True)
            for i in range(1, shards)
        ]
        for thread in threads:
            thread.start()
        run(0)
        for thread in threads:
            thread.join()
        fetched = []
        for result in results:
            if isinstance(result, libvirt.libvirtError):
                raise result
            assert result is not None  # every shard stored its result before join() returned
            fetched.append(result)
        return stopped, fetched

    def _fetch(
        self, conn: Connection, domains: list[_Domain], deadline: Deadline, plan: JobPlan
    ) -> _Fetched:
        """One shard: its bulk stats (balloon group only where needed), info and job checks."""
        uuids = [dom.UUIDString() for dom in domains]
        # One decision per shard under the plan's lock, not one per domain.
        wanted = self._balloon.wanted(uuids)
        with_balloon = list(itertools.compress(domains, wanted))
        without = list(itertools.compress(domains, map(operator.not_, wanted)))
        fetched = _Fetched()
        records, handles = fetched.records, fetched.handles
        lessons: list[Lesson] = []
        for group, asked in ((with_balloon, True), (without, False)):
            if not group:
                continue
            groups = self._groups | BALLOON_GROUP if asked else self._groups
            for dom, stats in conn.domainListGetStats(group, groups, STATS_FLAGS):
                record = DomainRecord(dom.name(), dom.UUIDString(), dom.ID(), stats)
                records.append(record)
                handles.append(dom)
                if self._add_info(dom, record, fetched):
                    lessons.append((record.uuid, asked, stats, self._local_rss(record)))
        self._balloon.learn(lessons)
        start = self._clock()
        for dom, record in zip(handles, records, strict=True):
            state = record.stats.get("state.state")
            if not plan.wants(record.uuid, state):
                record.migrating = False  # no event, not paused, not new: no job
                continue
            if deadline.expired():
                record.timed_out = True  # its job is unknown this scrape
                fetched.cut += 1
                continue
            self._job(dom, record, state, fetched, plan)
        fetched.job_seconds = self._clock() - start
        return fetched

    def _add_info(self, dom: _Domain, record: DomainRecord, fetched: _Fetched) -> bool:
        """CPU time and balloon size from virDomainGetInfo, RSS from /proc when the group was skipped.

        They go into the record under the bulk-stats keys the families read. False: the call
        failed (or the domain left), so the record teaches nothing about its balloon.
        """
        stats = record.stats
        try:
            _state, max_kib, current_kib, _vcpus, cpu_ns = dom.info()[:5]
        except libvirt.libvirtError as exc:
            if _error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
                fetched.vanished.add(record.uuid)  # left the host since the bulk call
            else:
                log.warning("domain %s: info failed: %s", record.name, exc)
                fetched.info_errors += 1
            return False
        # One source every scrape, whether or not the balloon group was asked (the same figures).
        stats["cpu.time"] = cpu_ns
        stats["balloon.maximum"] = max_kib
        stats["balloon.current"] = current_kib
        return True

    def _local_rss(self, record: DomainRecord) -> bool:
        """Whether /proc here has the domain's RSS; fills it in when the balloon group did not."""
        if self._processes is None:
            return False
        if "balloon.rss" in record.stats:  # the group was asked: could /proc have done it?
            return self._processes.rss_kib(record.name) is not None
        rss = self._processes.rss_kib(record.name)
        if rss is None:
            return False
        record.stats["balloon.rss"] = rss
        return True

    def _connection(self, session: _Session) -> Connection | None:
        if session.conn is None:
            try:
                session.conn = self._connect()
            except libvirt.libvirtError as exc:
                log.warning("cannot connect to libvirt: %s", exc)
                session.broken = True
                return None
            self._jobs.attach(session.conn)
        return session.conn

    def _node(self, session: _Session, conn: Connection) -> NodeFacts:
        if session.static is None:
            session.static = self._static_facts(conn)
        info = conn.getInfo()
        memory = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        cpu = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
        total, free = memory.get("total"), memory.get("free")
        available = None
        if free is not None:
            # libvirt has no MemAvailable; free + reclaimable page cache is the usual estimate.
            available = (free + memory.get("buffers", 0) + memory.get("cached", 0)) * 1024
        modes = {"user": "user", "kernel": "system", "idle": "idle", "iowait": "iowait"}
        return NodeFacts(
            cpus=int(info[2]),
            memory_total_bytes=total * 1024 if total is not None else None,
            memory_free_bytes=free * 1024 if free is not None else None,
            memory_available_bytes=available,
            cpu_seconds={mode: cpu[key] / 1e9 for key, mode in modes.items() if key in cpu},
            **session.static,
        )

    @staticmethod
    def _static_facts(conn: Connection) -> dict[str, str]:
        """Facts that cannot change while the connection lives; read once per connection."""
        caps = ET.fromstring(conn.getCapabilities())
        return {
            "hostname": conn.getHostname(),
            "host_uuid": caps.findtext("./host/uuid", default=""),
            "libvirt_version": _version_text(conn.getLibVersion()),
            "hypervisor": conn.getType(),
            "hypervisor_version": _version_text(conn.getVersion()),
            "cpu_model": caps.findtext("./host/cpu/model", default="")
            or caps.findtext("./host/cpu/arch", default=""),
        }

    def _topologies(
        self,
        *,
        session: _Session,
        domains: list[DomainRecord],
        handles: dict[str, _Domain],
        data: ScrapeData,
        deadline: Deadline,
        vanished: set[str],
    ) -> None:
        now = self._clock()
        for record in domains:
            if record.uuid in vanished:
                continue
            cached = self._cache.get(record.uuid, record.domain_id, now)
            if cached is not None:
                record.topology = cached
                continue
            if deadline.expired():
                data.error("xml")  # left for the next scrape; its topology is unknown now
                record.timed_out = True
                continue
            try:
                xml_text = handles[record.uuid].XMLDesc(0)
            except libvirt.libvirtError as exc:
                if _error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
                    vanished.add(record.uuid)  # left the host since the bulk call (migrated away)
                else:
                    log.warning("domain %s: XMLDesc failed: %s", record.name, exc)
                    data.error("xml")
                continue
            try:
                record.topology = parse_topology(xml_text)
            except TopologyError as exc:
                log.warning("domain %s: %s", record.name, exc)
                data.error("xml")
                continue
            if not session.retired:
                self._cache.put(record.uuid, record.domain_id, now, record.topology)

    def _networks(
        self, conn: Connection, domains: list[DomainRecord], data: ScrapeData, deadline: Deadline
    ) -> None:
        names = {
            interface.network
            for record in domains
            if record.topology is not None
            for interface in record.topology.interfaces
            if interface.network
        }
        for name in sorted(names):
            if deadline.expired():
                data.error("network")
                return
            try:
                root = ET.fromstring(conn.networkLookupByName(name).XMLDesc(0))
            except (libvirt.libvirtError, ET.ParseError) as exc:
                log.warning("network %s: %s", name, exc)
                data.error("network")
                continue
            # A libvirt network without <forward> is isolated: host-local by construction.
            data.networks_private[name] = root.find("forward") is None

    def _pools(self, conn: Connection, data: ScrapeData, deadline: Deadline) -> None:
        try:
            pools: list[_Pool] = conn.listAllStoragePools(0)
        except libvirt.libvirtError as exc:
            if _error_code(exc) != libvirt.VIR_ERR_NO_SUPPORT:  # no storage driver: no pools
                log.warning("libvirt storage pools: %s", exc)
                data.error("pool")
            return
        for pool in pools:
            name = pool.name()
            if deadline.expired():
                data.error("pool")
                data.pools.append(PoolRecord(name))  # timed out: only its name is known
                continue
            try:
                state, capacity, allocation, available = pool.info()[:4]
            except libvirt.libvirtError as exc:
                if _error_code(exc) != libvirt.VIR_ERR_NO_STORAGE_POOL:  # undefined meanwhile
                    log.warning("storage pool %s: %s", name, exc)
                    data.error("pool")
                continue
            data.pools.append(PoolRecord(name, state, capacity, allocation, available))

    def _job(
        self,
        dom: _Domain,
        record: DomainRecord,
        state: int | None,
        fetched: _Fetched,
        plan: JobPlan,
    ) -> None:
        """Whether a migration job of ``dom`` runs, and its stats (no QEMU monitor unless one runs)."""
        uuid = record.uuid
        try:
            job = dom.jobStats(0)
        except libvirt.libvirtError as exc:
            code = _error_code(exc)
            if code == libvirt.VIR_ERR_NO_DOMAIN:
                fetched.vanished.add(uuid)  # left the host since the bulk call (migrated away)
            elif code in _NO_JOB_STATS:
                # Paused and refusing job stats: a migration coming in. Running: no job support.
                record.migrating = state == libvirt.VIR_DOMAIN_PAUSED
                if state == libvirt.VIR_DOMAIN_PAUSED:
                    self._jobs.follow(uuid)
                else:
                    self._jobs.idle(plan, uuid)
            else:
                log.warning("domain %s: jobStats failed: %s", dom.name(), exc)
                fetched.job_errors += 1
            return
        active = job.get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
        operation = job.get("operation")
        record.migrating = active and (operation is None or operation in _MIGRATION_OPERATIONS)
        if active:
            record.job = job
            self._jobs.follow(uuid)
        else:
            self._jobs.idle(plan, uuid)


def _close_quietly(conn: Connection | None) -> None:
    if conn is None:
        return
    with contextlib.suppress(libvirt.libvirtError):
        conn.close()
