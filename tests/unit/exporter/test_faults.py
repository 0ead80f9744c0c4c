"""Faults: libvirt down or hung, domains vanishing, malformed XML; and the topology cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import libvirt
import pytest
from prometheus_client import CollectorRegistry

from tests.exporter_fixtures import fake_collector, registry_of
from tests.fixtures.exporter.fake_libvirt import (
    FakeClock,
    FakeConnection,
    libvirt_error,
    recorded_host,
)
from virtbalance.exporter.collector import LibvirtCollector
from virtbalance.exporter.main import build_app
from virtbalance.exporter.source import STAGES

UUID_A = "b7fbb86e-17a3-5ed4-bcf5-91e9a585a1d3"
A = {"domain": "vbexp-a", "uuid": UUID_A}


class Factory:
    """A connection factory that fails while ``down`` and counts what it opened."""

    def __init__(self, conn_maker: Callable[[], FakeConnection]) -> None:
        self.conn_maker = conn_maker
        self.down = False
        self.opened: list[FakeConnection] = []

    def __call__(self) -> FakeConnection:
        if self.down:
            raise libvirt_error(libvirt.VIR_ERR_SYSTEM_ERROR, "Failed to connect socket")
        conn = self.conn_maker()
        self.opened.append(conn)
        return conn


def build(
    factory: Factory,
    *,
    clock: Callable[[], float] | None = None,
    timeout: float = 5.0,
    max_age: float = 60.0,
) -> tuple[CollectorRegistry, LibvirtCollector]:
    collector = fake_collector(factory, clock=clock, timeout=timeout, max_age=max_age)
    return registry_of(collector), collector


Result = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Result:
    """One scrape as a dict (name, sorted label items) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
    }


def errors(result: Result, stage: str) -> float:
    return result[("libvirt_exporter_scrape_errors_total", (("stage", stage),))]


def chunks(result: Result) -> dict[str, str]:
    """Each domain's chunk, from the scrape's ``libvirt_domain_chunk_info``."""
    return {
        dict(labels)["domain"]: dict(labels)["chunk"]
        for name, labels in result
        if name == "libvirt_domain_chunk_info"
    }


def test_self_metrics_are_precreated_for_every_stage():
    registry, _ = build(Factory(lambda: FakeConnection(recorded_host())))
    result = scrape(registry)
    for stage in STAGES:
        assert errors(result, stage) == 0
    durations = {
        labels[0][1]
        for name, labels in result
        if name == "libvirt_exporter_scrape_duration_seconds"
    }
    assert durations == {*STAGES, "collect", "total"}


def test_unreachable_libvirt_reports_down_over_http_and_recovers():
    factory = Factory(lambda: FakeConnection(recorded_host()))
    factory.down = True
    registry, collector = build(factory)
    app = build_app(collector, "/metrics")
    status: list[str] = []
    body = b"".join(
        app(
            {"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET", "QUERY_STRING": ""},
            lambda s, h: status.append(s),
        )
    ).decode()
    assert status == ["200 OK"]
    assert "libvirt_up 0.0" in body
    assert 'libvirt_exporter_scrape_errors_total{stage="connect"} 1.0' in body
    assert "libvirt_domain_info_cpu_time_seconds_total{" not in body

    factory.down = False
    result = scrape(registry)
    assert result[("libvirt_up", ())] == 1
    assert result[
        ("libvirt_domain_info_cpu_time_seconds_total", tuple(sorted(A.items())))
    ] == pytest.approx(0.87)
    assert errors(result, "connect") == 1  # a counter: the earlier failure stays counted


def test_connection_is_reused_and_reopened_after_a_failure():
    factory = Factory(lambda: FakeConnection(recorded_host()))
    registry, _ = build(factory)
    scrape(registry)
    scrape(registry)
    assert len(factory.opened) == 1
    factory.opened[0].stats_error = libvirt_error(
        libvirt.VIR_ERR_INTERNAL_ERROR, "client socket is closed"
    )
    result = scrape(registry)
    assert result[("libvirt_up", ())] == 0
    assert errors(result, "stats") == 1
    result = scrape(registry)
    assert result[("libvirt_up", ())] == 1
    assert len(factory.opened) == 2
    # The broken connection is closed by its worker once it is retired.
    deadline = time.monotonic() + 2
    while not factory.opened[0].closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert factory.opened[0].closed


def test_hung_libvirt_is_cut_at_the_scrape_timeout():
    gate = threading.Event()

    def hung():
        conn = FakeConnection(recorded_host())
        if not factory.opened:
            conn.stats_gate = gate
        return conn

    factory = Factory(hung)
    # The gate opens only in ``finally``: a scrape that returns at all was cut at the timeout. The
    # timeout is real time, so it is the second, ungated scrape's whole allowance too: 1 s, not a
    # tighter figure, so that a loaded machine does not cut the healthy scrape as well.
    registry, _ = build(factory, clock=time.monotonic, timeout=1.0)
    try:
        result = scrape(registry)
        assert not gate.is_set()
        assert result[("libvirt_up", ())] == 0
        assert errors(result, "stats") == 1
        # Node facts gathered before the hang are still reported.
        assert result[("libvirt_node_cpus", ())] == 2
        # The next scrape does not queue behind the hung call: it opens a fresh connection.
        result = scrape(registry)
        assert result[("libvirt_up", ())] == 1
        assert len(factory.opened) == 2
    finally:
        gate.set()


def test_domain_vanishing_mid_scrape_is_skipped():
    factory = Factory(lambda: FakeConnection(recorded_host()))
    conn = FakeConnection(recorded_host())
    factory.conn_maker = lambda: conn
    conn.domain("vbexp-a").xml = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found")
    conn.domain("vbexp-b").job = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN, "Domain not found")
    registry, _ = build(factory)
    result = scrape(registry)
    assert result[("libvirt_up", ())] == 1
    domains = {dict(labels).get("domain") for _, labels in result} - {None}
    assert domains == {"vbexp-c", "vbexp-d", "vbexp-e", "vbexp-f"}
    assert result[("libvirt_domains_number", ())] == 4
    assert all(errors(result, stage) == 0 for stage in STAGES)


@pytest.mark.parametrize(
    "xml",
    [
        "<domain><name>vbexp-a</name><devices><interface type='bridge'>",
        "<network><name>not-a-domain</name></network>",
        "<domain><metadata><p:placement xmlns:p='https://virtbalance.org/xmlns/domain/1' pinned='maybe'/></metadata></domain>",
    ],
    ids=["truncated", "wrong-root", "bad-placement"],
)
def test_malformed_xml_omits_topology_and_counts_an_error(xml):
    conn = FakeConnection(recorded_host())
    conn.domain("vbexp-a").xml = xml
    registry, _ = build(Factory(lambda: conn))
    for expected_errors in (1, 2):  # not cached: read again, and counted again, every scrape
        result = scrape(registry)
        assert errors(result, "xml") == expected_errors
        with_a = {name for name, labels in result if dict(labels).get("domain") == "vbexp-a"}
        assert "libvirt_domain_interface_info" not in with_a
        assert "libvirt_domain_chunk_info" not in with_a
        assert "libvirt_domain_info_cpu_time_seconds_total" in with_a
        # b and c still form their chunk through lan12; b's lan11 link is still private.
        chunk = chunks(result)
        assert chunk["vbexp-b"] == chunk["vbexp-c"] == "lan11+lan12"


def test_topology_cache_reads_xml_only_for_new_or_restarted_domains():
    conn = FakeConnection(recorded_host())
    clock = FakeClock()
    registry, _ = build(Factory(lambda: conn), clock=clock, max_age=60.0)
    scrape(registry)
    scrape(registry)
    assert {d.name(): d.xml_calls for d in conn.domains} == dict.fromkeys(
        [d.name() for d in conn.domains], 1
    )
    conn.domain("vbexp-a").domain_id = 99  # restarted: a new run id
    scrape(registry)
    assert conn.domain("vbexp-a").xml_calls == 2
    assert conn.domain("vbexp-b").xml_calls == 1
    clock.advance(61)  # hotplug and metadata edits keep the id: entries expire
    scrape(registry)
    assert all(d.xml_calls >= 2 for d in conn.domains)


def test_group_change_is_seen_after_max_age():
    conn = FakeConnection(recorded_host())
    clock = FakeClock()
    registry, _ = build(Factory(lambda: conn), clock=clock, max_age=30.0)
    scrape(registry)
    d = conn.domain("vbexp-d")
    assert isinstance(d.xml, str)
    d.xml = d.xml.replace(
        "<memory",
        "<metadata><v:placement xmlns:v='https://virtbalance.org/xmlns/domain/1' group='web'/></metadata><memory",
        1,
    )
    clock.advance(31)
    chunk = chunks(scrape(registry))
    assert chunk["vbexp-d"] == chunk["vbexp-e"] == "isonet+group:web"


def test_health_path_answers_503_while_libvirt_is_unreachable():
    factory = Factory(lambda: FakeConnection(recorded_host()))
    _, collector = build(factory)
    app = build_app(collector, "/metrics", health_path="/health")

    def get(path: str) -> str:
        status: list[str] = []
        b"".join(app({"PATH_INFO": path}, lambda s, h: status.append(s)))
        return status[0]

    factory.down = True
    assert get("/health") == "503 Service Unavailable"
    factory.down = False
    assert get("/health") == "200 OK"
    assert len(factory.opened) == 1
    assert get("/health") == "200 OK"
    assert len(factory.opened) == 1  # the scrape connection is reused, not one per check
    assert get("/healthz") == "404 Not Found"
    without = build_app(collector, "/metrics")
    status: list[str] = []
    b"".join(without({"PATH_INFO": "/health"}, lambda s, h: status.append(s)))
    assert status == ["404 Not Found"]
