"""Build the planner's Snapshot: placement and topology fresh from libvirt, CPU demand from Prometheus.

Prometheus lags a move by its rate window, so *where* a domain runs always comes from libvirt; *how much*
CPU it wants comes from Prometheus over the alert's window (``policy.rate_window``), or, when Prometheus
is not configured or unreachable, from two samples of libvirt's ``cpu.time`` a short interval apart.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import libvirt

from virtbalance.actioner.config import Config
from virtbalance.actioner.domain_reader import DomainReader
from virtbalance.actioner.forecast_reader import ForecastReading, history_request, read_forecast
from virtbalance.actioner.libvirt_hosts import DomainFacts, HostPool, HostUnreachableError
from virtbalance.actioner.prometheus_demand import (
    CpuQuery,
    DemandHistory,
    HistoryQuery,
    prometheus_cpu,
    prometheus_history,
)
from virtbalance.forecast import Forecast
from virtbalance.snapshot import DomainState, HostState, Snapshot

log = logging.getLogger(__name__)


class SnapshotError(RuntimeError):
    """The cluster could not be read well enough to plan."""


@dataclass(frozen=True)
class ClusterView:
    """A snapshot plus what was learnt on the way (unreachable hosts, where the CPU figures came from)."""

    snapshot: Snapshot
    facts: dict[str, DomainFacts]
    unreachable: tuple[str, ...]
    cpu_source: str
    # Recent peaks and averages for the planner (None: judge on the samples), and why a part is missing.
    forecast: Forecast | None = None
    forecast_notes: tuple[str, ...] = ()


class HostReader(Protocol):
    """Reads one host's active domains; told after each snapshot which domains still exist."""

    def domains(self, host: str) -> list[DomainFacts]: ...

    def retain(self, uuids: Collection[str]) -> None: ...


class SnapshotBuilder:
    """Reads the cluster; one instance per actioner, reused for every plan."""

    def __init__(
        self,
        config: Config,
        pool: HostPool,
        cpu_query: CpuQuery | None = None,
        *,
        history_query: HistoryQuery | None = None,
        reader: HostReader | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.pool = pool
        # One reader for the builder's life: its parsed definitions carry over from alert to alert.
        self.reader: HostReader = reader if reader is not None else DomainReader(pool)
        self._links: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic  # times the CPU samples (``sleep`` waits between them)
        if cpu_query is None and config.prometheus.url is not None:
            cpu_query = prometheus_cpu(config.prometheus.url, config.prometheus.timeout)
            if history_query is None:
                # The forecast comes from the Prometheus the demand comes from, at the snapshot's clock.
                history_query = prometheus_history(
                    config.prometheus.url, config.prometheus.timeout, clock
                )
        self._cpu_query = cpu_query
        self._history_query = history_query

    def _read_host(
        self, host: str
    ) -> tuple[tuple[float, int], list[DomainFacts]] | HostUnreachableError | libvirt.libvirtError:
        """One host's capacity and domains, or the error that made it unreachable (one reader thread)."""
        try:
            return self.pool.capacity(host), self.reader.domains(host)
        except (HostUnreachableError, libvirt.libvirtError) as exc:
            return exc

    def _read_hosts(
        self,
    ) -> list[
        tuple[tuple[float, int], list[DomainFacts]] | HostUnreachableError | libvirt.libvirtError
    ]:
        """Every host's reading, in config order."""
        names = self.config.host_names
        # Hosts are read concurrently, a bounded number at a time; merged in config order, so the
        # snapshot (and a domain found on two hosts) comes out as if read one by one.
        workers = max(1, min(len(names), self.config.execution.snapshot_connections))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snapshot") as readers:
            return list(readers.map(self._read_host, names))

    def warm(self) -> tuple[int, int]:
        """Open every connection and read every definition now, so the first alert finds them ready.

        No CPU query and no plan; (hosts read, domains read). Run once when the actioner starts.
        """
        hosts = domains = 0
        seen: list[str] = []
        for host, reading in zip(self.config.host_names, self._read_hosts(), strict=True):
            if isinstance(reading, Exception):
                log.warning("host %s unreachable while warming up: %s", host, reading)
                continue
            hosts += 1
            domains += len(reading[1])
            seen.extend(d.uuid for d in reading[1])
        self.reader.retain(seen)
        return hosts, domains

    def build(self) -> ClusterView:
        """Read every host; unreachable hosts are left out of the snapshot (nothing moves to or from them).

        Prometheus is asked first, in a thread, and answers while libvirt is read (it computes on
        another core): the demand, then, if that answered, the forecast's history. The thread ends
        with the build: a build that fails waits for the query under way (the client gives up after
        the Prometheus timeout) and drops the one not started.
        """
        asking = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-prometheus")
        try:
            demand = history = None
            if self._cpu_query is not None:
                demand = asking.submit(self._cpu_query, self.config.policy.rate_window)
                history = self._ask_history(asking, demand)
            return self._build(demand, history)
        finally:
            asking.shutdown(wait=True, cancel_futures=True)

    def _ask_history(
        self, asking: ThreadPoolExecutor, demand: Future[dict[str, float]]
    ) -> Future[DemandHistory] | None:
        """The forecast's history, asked in ``asking`` after the demand; None when no forecast is read."""
        query, request = self._history_query, history_request(self.config.policy)
        if query is None or request is None:
            return None

        def ask() -> DemandHistory:
            # One worker: the demand has its answer by now. When it failed this fails the same way,
            # unasked: Prometheus' timeout would only delay the plan again.
            demand.result()
            return query(request.window, request.span, request.step)

        return asking.submit(ask)

    def _build(
        self,
        demand: Future[dict[str, float]] | None,
        history: Future[DemandHistory] | None,
    ) -> ClusterView:
        """The snapshot of ``build``, once libvirt is read, from Prometheus' answers (None: not asked)."""
        facts: dict[str, DomainFacts] = {}
        capacity: dict[str, tuple[float, int]] = {}
        unreachable: list[str] = []
        seen: list[str] = []
        names = self.config.host_names
        readings = self._read_hosts()
        for host, reading in zip(names, readings, strict=True):
            if isinstance(reading, Exception):
                log.warning("host %s unreachable while building the snapshot: %s", host, reading)
                self.pool.drop(host)
                unreachable.append(host)
                continue
            capacity[host], domains = reading
            seen.extend(d.uuid for d in domains)
            for domain in domains:
                if not domain.running_here:
                    continue  # an incoming migration's shell: the domain still runs elsewhere
                if domain.name in facts:
                    raise SnapshotError(
                        f"domain {domain.name} runs on both {facts[domain.name].host} and {host}"
                    )
                facts[domain.name] = domain
        self.reader.retain(seen)
        cpu, source = self._cpu(facts, demand)
        links = self._private_links(facts.values())
        domains = tuple(
            DomainState(
                name=f.name,
                host=f.host,
                vcpus=max(1, f.vcpus),
                cpu_used=min(float(f.vcpus), max(0.0, cpu.get(f.name, 0.0))),
                memory_bytes=f.memory_bytes,
                private_networks=links[f.bridges, f.networks],
                group=f.placement.group,
                anti_affinity=f.placement.anti_affinity,
                pinned=f.placement.pinned,
            )
            for f in sorted(facts.values(), key=lambda f: f.name)
        )
        # Summed in one pass: a pass over every domain for each host is quadratic (seconds at 1,000 hosts).
        cpu_used: defaultdict[str, float] = defaultdict(float)
        memory_used: defaultdict[str, int] = defaultdict(int)
        for d in domains:
            cpu_used[d.host] += d.cpu_used
            memory_used[d.host] += d.memory_bytes
        hosts = tuple(
            HostState(
                name=name,
                cpus=cpus,
                memory_bytes=memory,
                cpu_used=cpu_used[name],
                memory_used_bytes=memory_used[name],
            )
            for name, (cpus, memory) in capacity.items()
        )
        snapshot = Snapshot(time=self._clock(), hosts=hosts, domains=domains)
        reading = self._forecast(domains, source, history)
        for note in reading.notes:
            log.warning("%s", note)
        return ClusterView(
            snapshot, facts, tuple(unreachable), source, reading.forecast, reading.notes
        )

    def _forecast(
        self,
        domains: Iterable[DomainState],
        cpu_source: str,
        history: Future[DemandHistory] | None,
    ) -> ForecastReading:
        """The planner's forecast for the placement libvirt reported; none when Prometheus did not answer."""
        if self._history_query is None:
            return ForecastReading(None)
        if cpu_source == "libvirt":
            # Prometheus failed the demand query just now, so the history was not asked.
            return ForecastReading(None, ("no forecast: Prometheus did not answer the CPU query",))
        if history is None:
            return ForecastReading(None)  # the policy reads no forecast: nothing was asked
        placement = {d.name: d.host for d in domains}
        vcpus = {d.name: d.vcpus for d in domains}

        def answered(window: float, span: float, step: float) -> DemandHistory:
            """The history asked at the start of the build (the same request): waited for here."""
            return history.result()

        return read_forecast(answered, self.config.policy, placement, vcpus)

    def _private_links(
        self, facts: Iterable[DomainFacts]
    ) -> dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]]:
        """Private links by (bridges, networks), matched against the patterns once per distinct pair.

        The pairs of the previous snapshot are reused (a pair's links depend on the configuration
        only); those no domain has any more are dropped.
        """
        links: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, ...]] = {}
        for f in facts:
            key = (f.bridges, f.networks)
            if key not in links:
                known = self._links.get(key)
                links[key] = known if known is not None else self.pool.private_links(f)
        self._links = links
        return links

    def _cpu(
        self, facts: dict[str, DomainFacts], demand: Future[dict[str, float]] | None
    ) -> tuple[dict[str, float], str]:
        """CPU cores per domain, from Prometheus' ``demand`` when it answers, else sampled from libvirt."""
        if demand is not None:
            try:
                values = demand.result()
                missing = [name for name in facts if name not in values]
                if not missing:
                    return values, "prometheus"
                if not self.config.prometheus.fallback_to_libvirt:
                    return values, "prometheus"
                log.info("no Prometheus CPU series for %s; sampling libvirt", ", ".join(missing))
                sampled = self.sample_libvirt({n: facts[n] for n in missing})
                return {**values, **sampled}, "prometheus+libvirt"
            except (
                Exception
            ) as exc:  # any failure of the HTTP client: fall back, the move must not wait
                if not self.config.prometheus.fallback_to_libvirt:
                    raise SnapshotError(f"Prometheus query failed: {exc}") from exc
                log.warning("Prometheus query failed (%s); sampling CPU from libvirt", exc)
        return self.sample_libvirt(facts), "libvirt"

    def sample_libvirt(self, facts: dict[str, DomainFacts]) -> dict[str, float]:
        """Cores demanded per domain (``cpu.time`` plus the vCPUs' ``delay``) from two samples.

        The samples are ``fallback_sample_interval`` apart.

        Each host's samples carry their own timestamps: on a loaded machine one host's stats call can
        take seconds, and a shared interval would then inflate the other hosts' rates.
        """
        by_host: dict[str, list[str]] = {}
        for f in facts.values():
            by_host.setdefault(f.host, []).append(f.name)
        first = self._cpu_times(by_host)
        self._sleep(self.config.prometheus.fallback_sample_interval)
        second = self._cpu_times(by_host)
        out: dict[str, float] = {}
        for name, (ns_before, at_before) in first.items():
            if name not in second:
                continue
            ns_after, at_after = second[name]
            elapsed = max(at_after - at_before, 1e-3)
            out[name] = max(0.0, (ns_after - ns_before) / 1e9 / elapsed)
        return out

    def _cpu_times(self, by_host: dict[str, list[str]]) -> dict[str, tuple[int, float]]:
        """Domain -> (cpu.time + vCPU delay in ns, when it was read: the middle of its host's stats call)."""
        out: dict[str, tuple[int, float]] = {}
        for host, names in by_host.items():
            try:
                conn = self.pool.connection(host)
                began = self._monotonic()
                stats: Iterable[tuple[Any, dict[str, Any]]] = conn.getAllDomainStats(
                    libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_VCPU,
                    libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE,
                )
                at = (began + self._monotonic()) / 2
            except (HostUnreachableError, libvirt.libvirtError) as exc:
                log.warning("cannot sample CPU on %s: %s", host, exc)
                continue
            wanted = set(names)
            for dom, values in stats:
                name = dom.name()
                if name in wanted and "cpu.time" in values:
                    waited = sum(
                        int(v)
                        for k, v in values.items()
                        if k.startswith("vcpu.") and k.endswith(".delay")
                    )
                    out[name] = (int(values["cpu.time"]) + waited, at)
        return out
