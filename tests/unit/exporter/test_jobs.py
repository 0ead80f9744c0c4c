"""Job checks only where libvirt's events or states point, and the migration and job series."""

from __future__ import annotations

import libvirt
import pytest
from prometheus_client import CollectorRegistry

from tests.fixtures.exporter.fake_libvirt import (
    RECORDED_BRIDGES,
    FakeBridges,
    FakeClock,
    FakeConnection,
    FakePool,
    libvirt_error,
    recorded_host,
)
from virtbalance.exporter.collector import LibvirtCollector
from virtbalance.exporter.jobs import JobWatch
from virtbalance.exporter.source import LibvirtSource
from virtbalance.exporter.topology import TopologyCache

SWEEP = 60.0  # --libvirt.job-sweep-interval: event-driven checks
UUID_A = "b7fbb86e-17a3-5ed4-bcf5-91e9a585a1d3"
A = {"domain": "vbexp-a", "uuid": UUID_A}
MIGRATION_OUT = 5  # VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT
# jobStats of a source host during a live migration's second memory pass (libvirt's keys).
RUNNING_MIGRATION = {
    "type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED,
    "operation": MIGRATION_OUT,
    "time_elapsed": 2500,  # ms
    "data_total": 70_000_000,
    "data_processed": 50_000_000,
    "data_remaining": 20_000_000,
    "memory_total": 67_108_864,
    "memory_processed": 48_000_000,
    "memory_remaining": 19_000_000,
    "memory_dirty_rate": 1500,  # pages per second
    "memory_page_size": 4096,
    "memory_bps": 30_000_000,
    "memory_iteration": 2,
    "downtime": 300,  # ms, expected
}


class Scraper:
    """A collector over a fake connection, with the clock and the job watch at hand."""

    def __init__(self, conn: FakeConnection, sweep_seconds: float = SWEEP) -> None:
        self.conn = conn
        self.clock = FakeClock()
        self.jobs = JobWatch(self.clock, sweep_seconds)
        source = LibvirtSource(
            connect=lambda: conn,
            clock=self.clock,
            timeout=5.0,
            topology_cache=TopologyCache(3600.0),
            jobs=self.jobs,
        )
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            LibvirtCollector(source, bridges=FakeBridges(RECORDED_BRIDGES), clock=self.clock)
        )

    def scrape(self) -> dict[str, int]:
        """Scrape once; job calls per domain name during it."""
        before = {d.name(): d.job_calls for d in self.conn.domains}
        list(self.registry.collect())
        return {d.name(): d.job_calls - before[d.name()] for d in self.conn.domains}

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})


@pytest.fixture
def scraper() -> Scraper:
    return Scraper(FakeConnection(recorded_host()))


def test_first_scrape_sweeps_then_only_event_marked_domains_are_asked(scraper):
    assert set(scraper.scrape().values()) == {1}  # a new connection may have missed events
    assert set(scraper.scrape().values()) == {0}
    scraper.conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, "vbexp-a")
    calls = scraper.scrape()
    assert calls.pop("vbexp-a") == 1 and set(calls.values()) == {0}
    # No job was found: the mark is dropped.
    assert set(scraper.scrape().values()) == {0}


def test_a_running_job_is_followed_until_it_ends(scraper):
    scraper.scrape()
    scraper.conn.domain("vbexp-a").job = dict(RUNNING_MIGRATION)
    scraper.conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, "vbexp-a")
    for _ in range(3):
        assert scraper.scrape()["vbexp-a"] == 1
        assert scraper.value("libvirt_domain_migration_in_progress", A) == 1
    scraper.conn.domain("vbexp-a").job = {"type": libvirt.VIR_DOMAIN_JOB_NONE}
    assert scraper.scrape()["vbexp-a"] == 1
    assert scraper.value("libvirt_domain_migration_in_progress", A) == 0
    assert scraper.scrape()["vbexp-a"] == 0


def test_paused_and_newly_arrived_domains_are_asked_without_events(scraper):
    scraper.scrape()
    scraper.conn.domain("vbexp-c").stats["state.state"] = libvirt.VIR_DOMAIN_PAUSED
    arriving = scraper.conn.domain("vbexp-d")
    scraper.conn.domains.remove(arriving)
    scraper.scrape()
    scraper.conn.domains.append(arriving)
    calls = scraper.scrape()
    assert calls.pop("vbexp-c") == 1 and calls.pop("vbexp-d") == 1
    assert set(calls.values()) == {0}


def test_every_domain_is_swept_again_after_a_while(scraper):
    scraper.scrape()
    scraper.clock.advance(SWEEP - 1)
    assert set(scraper.scrape().values()) == {0}
    scraper.clock.advance(1)
    assert set(scraper.scrape().values()) == {1}


def test_without_events_every_domain_is_asked_every_scrape():
    conn = FakeConnection(recorded_host())
    conn.events_error = libvirt_error(libvirt.VIR_ERR_NO_SUPPORT, "no events")
    scraper = Scraper(conn)
    for _ in range(3):
        assert set(scraper.scrape().values()) == {1}
    assert not scraper.jobs.events


def test_event_during_a_check_keeps_the_mark():
    clock = FakeClock()
    watch = JobWatch(clock, SWEEP)
    conn = FakeConnection(recorded_host())
    watch.attach(conn)
    watch.plan()  # the sweep
    conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, "vbexp-a")
    plan = watch.plan()
    conn.fire(libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, "vbexp-a")  # while the check runs
    watch.idle(plan, UUID_A)
    assert watch.plan().wants(UUID_A, libvirt.VIR_DOMAIN_RUNNING)


def test_job_and_migration_series_in_base_units(scraper):
    scraper.conn.domain("vbexp-a").job = dict(RUNNING_MIGRATION)
    scraper.scrape()
    value = scraper.value
    assert value("libvirt_domain_job_info_type", A) == libvirt.VIR_DOMAIN_JOB_UNBOUNDED
    assert value("libvirt_domain_job_info_time_elapsed_seconds", A) == 2.5
    assert value("libvirt_domain_job_info_data_remaining_bytes", A) == 20_000_000
    assert value("libvirt_domain_job_info_memory_processed_bytes", A) == 48_000_000
    assert value("libvirt_domain_job_info_file_total_bytes", A) == 0  # no disk copy
    assert value("libvirt_domain_migration_memory_dirty_rate_bytes_per_second", A) == 1500 * 4096
    assert value("libvirt_domain_migration_memory_bandwidth_bytes_per_second", A) == 30_000_000
    assert value("libvirt_domain_migration_memory_iteration", A) == 2
    assert value("libvirt_domain_migration_remaining_bytes", A) == 20_000_000
    assert value("libvirt_domain_migration_expected_downtime_seconds", A) == 0.3
    b = {"domain": "vbexp-b", "uuid": scraper.conn.domain("vbexp-b").UUIDString()}
    assert value("libvirt_domain_job_info_type", b) == 0
    assert value("libvirt_domain_migration_memory_iteration", b) is None


def test_incoming_migration_is_in_progress_without_job_series(scraper):
    dom = scraper.conn.domain("vbexp-a")
    dom.stats["state.state"] = libvirt.VIR_DOMAIN_PAUSED
    dom.job = libvirt_error(libvirt.VIR_ERR_OPERATION_UNSUPPORTED, "only on the source host")
    scraper.scrape()
    assert scraper.value("libvirt_domain_migration_in_progress", A) == 1
    assert scraper.value("libvirt_domain_job_info_type", A) is None
    assert scraper.value("libvirt_exporter_scrape_errors_total", {"stage": "job"}) == 0


def test_storage_pools(scraper):
    scraper.conn.pools = [
        FakePool("images", [libvirt.VIR_STORAGE_POOL_RUNNING, 1000, 300, 700]),
        FakePool("gone", [0, 0, 0, 0]),
    ]
    scraper.conn.pools[1].info_result = libvirt_error(libvirt.VIR_ERR_NO_STORAGE_POOL)
    scraper.scrape()
    pool = {"storage_pool": "images"}
    assert scraper.value("libvirt_storage_pool_state", pool) == libvirt.VIR_STORAGE_POOL_RUNNING
    assert scraper.value("libvirt_storage_pool_capacity_bytes", pool) == 1000
    assert scraper.value("libvirt_storage_pool_allocation_bytes", pool) == 300
    assert scraper.value("libvirt_storage_pool_available_bytes", pool) == 700
    assert scraper.value("libvirt_storage_pool_timed_out", pool) == 0
    assert scraper.value("libvirt_storage_pool_state", {"storage_pool": "gone"}) is None
    assert scraper.value("libvirt_exporter_scrape_errors_total", {"stage": "pool"}) == 0


def test_no_storage_driver_means_no_pools_and_no_error(scraper):
    scraper.conn.pools_error = libvirt_error(libvirt.VIR_ERR_NO_SUPPORT, "no storage driver")
    scraper.scrape()
    assert scraper.value("libvirt_up") == 1
    assert scraper.value("libvirt_exporter_scrape_errors_total", {"stage": "pool"}) == 0


def test_inactive_domains_count_in_inovex_series_only(scraper):
    scraper.conn.domain("vbexp-e").domain_id = -1  # defined, shut off
    scraper.scrape()
    value = scraper.value
    assert value("libvirt_domains") == 6
    assert value("libvirt_domains_number") == 5
    e = {"domain": "vbexp-e", "uuid": scraper.conn.domain("vbexp-e").UUIDString()}
    assert value("libvirt_domain_info_state", {**e, "state_desc": "the domain is shut off"}) == 5
    assert value("libvirt_domain_info", {**e, "os_type": "hvm", "os_type_arch": "x86_64"}) is None
    assert value("libvirt_domain_info_memory_usage_bytes", e) is None
    assert value("libvirt_domain_state_code", e) is None
    stats_calls = scraper.conn.list_stats_calls[-1]
    assert "vbexp-e" not in stats_calls and len(stats_calls) == 5


def test_a_job_found_by_the_sweep_is_followed_without_events(scraper):
    scraper.conn.domain("vbexp-a").job = dict(RUNNING_MIGRATION)
    scraper.scrape()  # the first scrape sweeps every domain and finds the job
    assert scraper.scrape()["vbexp-a"] == 1
    assert scraper.value("libvirt_domain_migration_in_progress", A) == 1


def test_default_asks_every_domain_every_scrape_without_events():
    scraper = Scraper(FakeConnection(recorded_host()), sweep_seconds=0.0)
    for _ in range(3):
        assert set(scraper.scrape().values()) == {1}
    assert not scraper.conn.events and not scraper.jobs.events
