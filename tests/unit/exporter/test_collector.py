"""The collector on recorded libvirt data: values, units, labels, topology and chunks."""

from __future__ import annotations

from collections.abc import Sequence

import libvirt
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from tests.exporter_fixtures import fake_collector, registry_of
from tests.fixtures.exporter.fake_libvirt import (
    RECORDED_BRIDGES,
    FakeBridges,
    FakeConnection,
    recorded_host,
)
from virtbalance.exporter.collector import CapacityOverride
from virtbalance.exporter.config import parse_config
from virtbalance.exporter.source import DIRTYRATE_GROUP, STATS_GROUPS

UUID_A = "b7fbb86e-17a3-5ed4-bcf5-91e9a585a1d3"
A = {"domain": "vbexp-a", "uuid": UUID_A}
KIB = 1024


NO_OVERRIDE = CapacityOverride()


def make(
    conn: FakeConnection,
    *,
    capacity: CapacityOverride = NO_OVERRIDE,
    private: Sequence[str] = (),
    public: Sequence[str] = (),
    bridges: FakeBridges | None = None,
    groups: int = STATS_GROUPS,
) -> CollectorRegistry:
    collector = fake_collector(
        lambda: conn,
        bridges=bridges,
        stats_groups=groups,
        collector={
            "capacity": capacity,
            "private_bridges": frozenset(private),
            "public_bridges": frozenset(public),
        },
    )
    return registry_of(collector)


def samples(registry: CollectorRegistry, name: str) -> list[Sample]:
    return [s for family in registry.collect() for s in family.samples if s.name == name]


def by_domain(registry: CollectorRegistry, name: str, label: str = "chunk") -> dict[str, str]:
    return {s.labels["domain"]: s.labels[label] for s in samples(registry, name)}


@pytest.fixture
def conn():
    return FakeConnection(recorded_host())


def test_drop_in_domain_values_are_in_base_units(conn):
    registry = make(conn)
    value = registry.get_sample_value
    assert value("libvirt_up") == 1
    assert value("libvirt_domains_number") == 6
    assert value("libvirt_domain_state_code", A) == 1  # VIR_DOMAIN_RUNNING
    assert value("libvirt_domain_info_cpu_time_seconds_total", A) == pytest.approx(0.87)
    assert value("libvirt_domain_info_virtual_cpus", A) == 1
    assert value("libvirt_domain_info_maximum_memory_bytes", A) == 64 * 1024 * 1024
    assert value("libvirt_domain_info_memory_usage_bytes", A) == 64 * 1024 * 1024
    disk = {**A, "source_file": "/tmp/vbexp/guest.img", "target_device": "vda"}
    assert value("libvirt_domain_block_stats_read_bytes_total", disk) == 512
    assert value("libvirt_domain_block_stats_read_requests_total", disk) == 1
    assert value("libvirt_domain_block_stats_write_bytes_total", disk) == 0
    nic = {**A, "source_bridge": "lan11", "target_device": "vnet7"}
    assert value("libvirt_domain_interface_stats_receive_bytes_total", nic) == 110
    assert value("libvirt_domain_interface_stats_receive_packets_total", nic) == 1
    assert value("libvirt_domain_interface_stats_transmit_drops_total", nic) == 0


def test_libvirt_network_interface_reports_its_bridge(conn):
    registry = make(conn)
    nic = {
        "domain": "vbexp-f",
        "uuid": conn.domain("vbexp-f").UUIDString(),
        "source_bridge": "vbexpiso",
        "target_device": "vnet13",
    }
    assert (
        registry.get_sample_value("libvirt_domain_interface_stats_receive_bytes_total", nic) == 90
    )


def test_virtbalance_domain_metrics(conn):
    registry = make(conn, groups=STATS_GROUPS | DIRTYRATE_GROUP)
    value = registry.get_sample_value
    assert value("libvirt_domain_memory_rss_bytes", A) == 45736 * KIB
    assert value("libvirt_domain_memory_balloon_current_bytes", A) == 65536 * KIB
    assert value("libvirt_domain_vcpu_delay_seconds_total", {**A, "vcpu": "0"}) == pytest.approx(
        0.070706127
    )
    assert value("libvirt_domain_migration_in_progress", A) == 0
    # Only vbexp-a had a finished dirty-rate calculation when recorded (0 MiB/s, an idle guest).
    assert value("libvirt_domain_dirty_rate_bytes_per_second", A) == 0
    assert [
        s.labels["domain"] for s in samples(registry, "libvirt_domain_dirty_rate_bytes_per_second")
    ] == ["vbexp-a"]


def test_dirty_rate_converts_mebibytes(conn):
    conn.domain("vbexp-a").stats["dirtyrate.megabytes_per_second"] = 3
    registry = make(conn, groups=STATS_GROUPS | DIRTYRATE_GROUP)
    assert (
        registry.get_sample_value("libvirt_domain_dirty_rate_bytes_per_second", A)
        == 3 * 1024 * 1024
    )


def test_node_metrics_from_libvirt(conn):
    registry = make(conn)
    value = registry.get_sample_value
    info = samples(registry, "libvirt_node_info")
    assert [s.labels for s in info] == [
        {
            "hostname": "vbexp1",
            "host_uuid": "5a1e0000-0000-4000-8000-0000000b0e01",
            "libvirt_version": "9.0.0",
            "hypervisor": "QEMU",
            "hypervisor_version": "7.2.22",
            "cpu_model": "Broadwell",
        }
    ]
    assert info[0].value == 1
    assert value("libvirt_node_cpus") == 2
    assert value("libvirt_node_memory_total_bytes") == 24684084 * KIB
    assert value("libvirt_node_memory_free_bytes") == 23794748 * KIB
    assert value("libvirt_node_memory_available_bytes") == (23794748 + 4532 + 485488) * KIB
    assert value("libvirt_node_cpu_seconds_total", {"mode": "system"}) == pytest.approx(53.29)
    assert value("libvirt_node_cpu_seconds_total", {"mode": "user"}) == pytest.approx(191.41)
    assert value("libvirt_node_cpu_seconds_total", {"mode": "idle"}) == pytest.approx(647.9)
    assert value("libvirt_node_cpu_seconds_total", {"mode": "iowait"}) == pytest.approx(4.54)


def test_capacity_override_declares_cpus_and_derives_free_memory(conn):
    declared = 2 * 1024**3
    registry = make(conn, capacity=CapacityOverride(cpus=4, memory_bytes=declared))
    value = registry.get_sample_value
    assert value("libvirt_node_cpus") == 4
    assert value("libvirt_node_memory_total_bytes") == declared
    used = 6 * 64 * 1024 * 1024  # six running 64 MiB guests
    assert value("libvirt_node_memory_free_bytes") == declared - used
    assert value("libvirt_node_memory_available_bytes") == declared - used


def test_capacity_override_never_reports_negative_free_memory(conn):
    registry = make(conn, capacity=CapacityOverride(memory_bytes=100 * 1024 * 1024))
    assert registry.get_sample_value("libvirt_node_memory_free_bytes") == 0


def test_chunks_follow_private_bridges_networks_and_groups(conn):
    registry = make(conn)
    # a-lan11-b-lan12-c; c also sits on pub0 (uplinked), which chains nothing: d is alone.
    # e and f share the group "web"; f is on isonet, a libvirt network without <forward>.
    assert by_domain(registry, "libvirt_domain_chunk_info") == {
        "vbexp-a": "lan11+lan12",
        "vbexp-b": "lan11+lan12",
        "vbexp-c": "lan11+lan12",
        "vbexp-d": "domain:vbexp-d",
        "vbexp-e": "isonet+group:web",
        "vbexp-f": "isonet+group:web",
    }


def test_interface_info_labels(conn):
    registry = make(conn)
    rows = {
        (s.labels["domain"], s.labels["interface"]): (
            s.labels["bridge"],
            s.labels["network"],
            s.labels["private"],
            s.value,
        )
        for s in samples(registry, "libvirt_domain_interface_info")
    }
    assert rows == {
        ("vbexp-a", "vnet7"): ("lan11", "", "true", 1),
        ("vbexp-b", "vnet8"): ("lan11", "", "true", 1),
        ("vbexp-b", "vnet9"): ("lan12", "", "true", 1),
        ("vbexp-c", "vnet10"): ("lan12", "", "true", 1),
        ("vbexp-c", "vnet11"): ("pub0", "", "false", 1),
        ("vbexp-d", "vnet12"): ("pub0", "", "false", 1),
        ("vbexp-f", "vnet13"): ("vbexpiso", "isonet", "true", 1),
    }


def test_forced_classification_overrides_the_bridge_inspection(conn):
    registry = make(conn, private=["pub0"], public=["lan12", "isonet"])
    assert by_domain(registry, "libvirt_domain_chunk_info") == {
        "vbexp-a": "lan11",
        "vbexp-b": "lan11",
        "vbexp-c": "pub0",
        "vbexp-d": "pub0",
        "vbexp-e": "group:web",
        "vbexp-f": "group:web",
    }


def test_network_with_forward_is_public(conn):
    conn.networks["isonet"] = conn.networks["isonet"].replace(
        "<name>isonet</name>", "<name>isonet</name><forward mode='nat'/>"
    )
    registry = make(conn)
    assert by_domain(registry, "libvirt_domain_interface_info", "private")["vbexp-f"] == "false"
    assert by_domain(registry, "libvirt_domain_chunk_info")["vbexp-f"] == "group:web"


def test_invisible_bridge_counts_as_private(conn):
    registry = make(conn, bridges=FakeBridges({}))
    # Splitting a chunk breaks its network; chaining too much only makes it bigger.
    assert by_domain(registry, "libvirt_domain_chunk_info")["vbexp-d"] == "lan11+lan12+pub0"


def test_absent_series_when_stats_are_missing(conn):
    stats = conn.domain("vbexp-a").stats
    for key in [k for k in stats if k.startswith(("balloon.", "vcpu.", "block.", "dirtyrate."))]:
        del stats[key]
    registry = make(conn)
    value = registry.get_sample_value
    # CPU time and memory sizes come from virDomainGetInfo, which NOWAIT does not skip.
    assert value("libvirt_domain_info_cpu_time_seconds_total", A) == pytest.approx(0.87)
    assert value("libvirt_domain_info_maximum_memory_bytes", A) == 64 * 1024 * 1024
    assert value("libvirt_domain_memory_balloon_current_bytes", A) == 64 * 1024 * 1024
    for name in (
        "libvirt_domain_info_virtual_cpus",
        "libvirt_domain_memory_rss_bytes",
        "libvirt_domain_dirty_rate_bytes_per_second",
    ):
        assert value(name, A) is None, name
    assert not [
        s
        for s in samples(registry, "libvirt_domain_block_stats_read_bytes_total")
        + samples(registry, "libvirt_domain_vcpu_delay_seconds_total")
        if s.labels["domain"] == "vbexp-a"
    ]
    # The other domains are unaffected.
    assert (
        value(
            "libvirt_domain_memory_rss_bytes",
            {"domain": "vbexp-b", "uuid": conn.domain("vbexp-b").UUIDString()},
        )
        == 45972 * KIB
    )


def test_migration_job_sets_in_progress(conn):
    conn.domain("vbexp-a").job = {
        "type": 2,  # VIR_DOMAIN_JOB_UNBOUNDED
        "operation": 5,  # VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT
    }
    conn.domain("vbexp-b").job = {"type": 2, "operation": 6}  # a snapshot is not a migration
    registry = make(conn)
    assert registry.get_sample_value("libvirt_domain_migration_in_progress", A) == 1
    assert (
        registry.get_sample_value(
            "libvirt_domain_migration_in_progress",
            {"domain": "vbexp-b", "uuid": conn.domain("vbexp-b").UUIDString()},
        )
        == 0
    )


def test_one_bulk_call_with_nowait_and_only_needed_groups(conn):
    registry = make(conn)
    registry.get_sample_value("libvirt_up")
    assert len(conn.list_stats_calls) == 1 and not conn.stats_calls
    groups, flags = conn.list_stats_flags[0]
    assert flags & libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
    assert not groups & libvirt.VIR_DOMAIN_STATS_PERF
    assert not groups & libvirt.VIR_DOMAIN_STATS_IOTHREAD
    assert groups & libvirt.VIR_DOMAIN_STATS_VCPU


def test_sharded_bulk_calls_give_the_same_series(conn):
    single = make(conn)
    reference = {
        (s.name, tuple(s.labels.items()), s.value) for f in single.collect() for s in f.samples
    }
    sharded_conn = FakeConnection(recorded_host())
    registry = registry_of(fake_collector(lambda: sharded_conn, concurrency=4))
    sharded = {
        (s.name, tuple(s.labels.items()), s.value) for f in registry.collect() for s in f.samples
    }
    assert sharded == reference
    # Six domains, at least four per call: one shard would be pointless, so min(4, 6 // 4) = 1 call.
    assert len(sharded_conn.list_stats_calls) == 1
    sharded_conn.domains = sharded_conn.domains * 2  # twelve records: three shards of four
    sharded_conn.list_stats_calls.clear()
    list(registry.collect())
    shards = sharded_conn.list_stats_calls
    assert len(shards) == 3 and sorted(n for shard in shards for n in shard) == sorted(
        d.name() for d in sharded_conn.domains
    )


def test_dirty_rate_group_is_opt_in():
    assert DIRTYRATE_GROUP and not STATS_GROUPS & DIRTYRATE_GROUP
    assert parse_config([]).collect_dirty_rate is False
    assert parse_config(["--collect.dirty-rate"]).collect_dirty_rate is True


def test_bridge_gaining_an_uplink_splits_the_chunk_on_the_next_scrape(conn):
    # Topology rows are reused between scrapes; a changed bridge classification must not be.
    bridges = FakeBridges(dict(RECORDED_BRIDGES))
    registry = make(conn, bridges=bridges)
    assert by_domain(registry, "libvirt_domain_chunk_info")["vbexp-a"] == "lan11+lan12"
    bridges.private["lan12"] = False
    chunks = by_domain(registry, "libvirt_domain_chunk_info")
    assert chunks["vbexp-a"] == chunks["vbexp-b"] == "lan11"
    assert chunks["vbexp-c"] == "domain:vbexp-c"
    private = {
        (s.labels["domain"], s.labels["interface"]): s.labels["private"]
        for s in samples(registry, "libvirt_domain_interface_info")
    }
    assert private[("vbexp-b", "vnet9")] == private[("vbexp-c", "vnet10")] == "false"
    assert private[("vbexp-b", "vnet8")] == "true"
