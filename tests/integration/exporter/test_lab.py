"""The exporter against real libvirtd hosts of the lab: real QEMU guests, chunks, migration, drop-in."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter_fixtures import inovex_series, label_names
from tests.go_exporter import GO_EXPORTER, start_go_exporter
from tests.waiting import wait_answering
from virtbalance.exporter.jobs import JobWatch, start_event_loop
from virtbalance.lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]

INOVEX_STYLE_PORT = 19180
MIB = 1024 * 1024
# inovex series whose data a lab guest cannot produce: its boot sector runs no balloon driver.
NEEDS_GUEST_BALLOON_DRIVER = {
    "libvirt_domain_memory_stats_swap_in_bytes",
    "libvirt_domain_memory_stats_swap_out_bytes",
    "libvirt_domain_memory_stats_major_fault_total",
    "libvirt_domain_memory_stats_minor_fault_total",
    "libvirt_domain_memory_stats_unused_bytes",
    "libvirt_domain_memory_stats_available_bytes",
    "libvirt_domain_memory_stats_usable_bytes",
    "libvirt_domain_memory_stats_disk_caches_bytes",
    "libvirt_domain_memory_stats_hugetlb_pgalloc_total",
    "libvirt_domain_memory_stats_hugetlb_pgfail_total",
    "libvirt_domain_memory_stats_used_percent",
    "libvirt_domain_memory_stats_last_update_timestamp_seconds",
}
# Served while a job runs (an idle domain has only libvirt_domain_job_info_type 0).
JOB_SERIES = {
    f"libvirt_domain_job_info_{name}"
    for name in (
        "time_elapsed_seconds",
        "time_remaining_seconds",
        *(
            f"{kind}_{part}_bytes"
            for kind in ("data", "memory", "file")
            for part in ("total", "processed", "remaining")
        ),
    )
}

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def fetch(target: str, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://{target}{path}", timeout=20) as response:
        assert response.status == 200
        return str(response.read().decode())


def parse(text: str) -> Series:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def pick(series: Series, name: str, **labels: str) -> dict[str, float]:
    """Values of ``name`` whose labels include ``labels``, keyed by the domain label."""
    found = {}
    for (metric, items), value in series.items():
        as_dict = dict(items)
        if metric == name and all(as_dict.get(k) == v for k, v in labels.items()):
            found[as_dict.get("domain", "")] = value
    return found


def label_of(series: Series, name: str, label: str) -> dict[str, str]:
    return {
        dict(items)["domain"]: dict(items)[label] for (metric, items) in series if metric == name
    }


@pytest.fixture(scope="module")
def exporters(lab: Lab) -> dict[str, str]:
    return lab.start_exporters()


def test_real_domains_values_units_and_topology(fresh_lab: Lab, exporters: dict[str, str]) -> None:
    first = parse(fetch(exporters["hv1"]))
    time.sleep(2.0)
    second = parse(fetch(exporters["hv1"]))
    assert pick(second, "libvirt_up") == {"": 1}
    on_hv1 = {"web1", "app1", "db1", "batch1", "batch2"}
    assert set(pick(second, "libvirt_domain_state_code")) == on_hv1
    assert pick(second, "libvirt_domains_number") == {"": 5}
    cpu_before = pick(first, "libvirt_domain_info_cpu_time_seconds_total")
    cpu_after = pick(second, "libvirt_domain_info_cpu_time_seconds_total")
    # db1 runs at a 10% load dial: its CPU time grows, in seconds, well below 2 s of one core.
    assert 0.02 < cpu_after["db1"] - cpu_before["db1"] < 2.0
    assert pick(second, "libvirt_domain_info_maximum_memory_bytes")["web1"] == 64 * MIB
    assert pick(second, "libvirt_domain_info_memory_usage_bytes")["web1"] == 64 * MIB
    assert 0 < pick(second, "libvirt_domain_memory_rss_bytes")["web1"] < 512 * MIB
    assert pick(second, "libvirt_domain_info_virtual_cpus")["web1"] == 1
    assert pick(second, "libvirt_domain_migration_in_progress")["web1"] == 0
    assert set(pick(second, "libvirt_domain_vcpu_delay_seconds_total", vcpu="0")) == on_hv1
    # Declared capacity of hv1 (1 CPU, 1 GiB) and free memory derived from its five 64 MiB guests.
    assert pick(second, "libvirt_node_cpus") == {"": 1}
    assert pick(second, "libvirt_node_memory_total_bytes") == {"": 1024 * MIB}
    assert pick(second, "libvirt_node_memory_free_bytes") == {"": (1024 - 5 * 64) * MIB}
    info = [dict(items) for (name, items) in second if name == "libvirt_node_info"]
    assert len(info) == 1 and info[0]["hostname"] == "hv1" and info[0]["libvirt_version"]
    # Topology: lab private networks are bridges with guest taps only.
    bridges = {
        (dict(items)["domain"], dict(items)["bridge"]): dict(items)["private"]
        for (name, items) in second
        if name == "libvirt_domain_interface_info"
    }
    assert bridges == {
        ("web1", "lan11"): "true",
        ("app1", "lan11"): "true",
        ("app1", "lan12"): "true",
        ("db1", "lan12"): "true",
    }
    assert label_of(second, "libvirt_domain_chunk_info", "chunk") == {
        "web1": "lan11+lan12",
        "app1": "lan11+lan12",
        "db1": "lan11+lan12",
        "batch1": "domain:batch1",
        "batch2": "domain:batch2",
    }
    hv2 = parse(fetch(exporters["hv2"]))
    chunks = label_of(hv2, "libvirt_domain_chunk_info", "chunk")
    assert chunks["cache1"] == chunks["cache2"] == "group:cache"
    hv3 = parse(fetch(exporters["hv3"]))
    assert pick(hv3, "libvirt_domain_info_virtual_cpus")["mon1"] == 2


def test_migration_in_progress_is_seen_and_scrapes_stay_fast(
    fresh_lab: Lab, exporters: dict[str, str]
) -> None:
    done = threading.Event()
    failure: list[BaseException] = []

    def migrate() -> None:
        try:
            fresh_lab.migrate("batch1", "hv2")
        except BaseException as exc:  # reported by the test thread
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=migrate)
    worker.start()
    seen_source = seen_destination = 0.0
    slowest = 0.0
    job_types: set[float] = set()
    job_names: set[str] = set()
    iterations: set[float] = set()
    remaining: list[float] = []
    while not done.is_set():
        began = time.monotonic()
        source = parse(fetch(exporters["hv1"]))
        slowest = max(slowest, time.monotonic() - began)
        assert pick(source, "libvirt_up") == {"": 1}
        seen_source = max(
            seen_source, pick(source, "libvirt_domain_migration_in_progress").get("batch1", 0)
        )
        job_types.update(pick(source, "libvirt_domain_job_info_type", domain="batch1").values())
        job_names.update(name for name in JOB_SERIES if pick(source, name, domain="batch1"))
        iterations.update(
            pick(source, "libvirt_domain_migration_memory_iteration", domain="batch1").values()
        )
        remaining.extend(
            pick(
                source,
                "libvirt_domain_migration_remaining_bytes",
                domain="batch1",
            ).values()
        )
        destination = parse(fetch(exporters["hv2"]))
        seen_destination = max(
            seen_destination,
            pick(destination, "libvirt_domain_migration_in_progress").get("batch1", 0),
        )
    worker.join()
    assert not failure, failure
    assert seen_source == 1, "the source never reported the running migration job"
    # libvirt's events marked batch1, so its job was read: unbounded (2), memory passes, a rate.
    assert 2 in job_types, job_types
    assert job_names == JOB_SERIES, sorted(JOB_SERIES - job_names)
    # A lab guest's memory is copied in a blink: the scrapes catch the job in its setup mostly.
    assert iterations and min(iterations) >= 0, iterations
    assert remaining and min(remaining) >= 0, remaining
    assert slowest < 5.0  # far below the scrape timeout; the benchmark measures it properly
    after = parse(fetch(exporters["hv2"]))
    assert pick(after, "libvirt_domain_migration_in_progress")["batch1"] == 0
    assert label_of(after, "libvirt_domain_chunk_info", "chunk")["batch1"] == "domain:batch1"
    assert "batch1" not in pick(parse(fetch(exporters["hv1"])), "libvirt_domain_state_code")
    fresh_lab.migrate("batch1", "hv1")


@pytest.fixture
def go_exporter(lab: Lab) -> Iterator[str]:
    binary = shutil.which(GO_EXPORTER)
    assert binary, f"{GO_EXPORTER} is installed by scripts/bootstrap"
    target, process = start_go_exporter(lab, binary)
    try:
        wait_answering(f"{GO_EXPORTER} on {target}", lambda: fetch(target), process, 20)
        yield target
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_drop_in_for_debians_go_exporter(
    fresh_lab: Lab, exporters: dict[str, str], go_exporter: str
) -> None:
    host = fresh_lab.hosts[0].name
    go_text, ours_text = fetch(go_exporter), fetch(exporters[host])
    go, ours = label_names(go_text), label_names(ours_text)
    libvirt_names = {name for name in go if name.startswith("libvirt_")}
    # Sanity: the Go exporter saw the guests (block, interface and info series per domain).
    assert "libvirt_domain_interface_stats_receive_bytes_total" in libvirt_names
    assert "libvirt_domain_block_stats_read_bytes_total" in libvirt_names
    missing = sorted(libvirt_names - set(ours))
    assert not missing, f"names the Go exporter has and we lack: {missing}"
    for name in sorted(libvirt_names):
        assert go[name] <= ours[name], f"{name}: labels {sorted(go[name] - ours[name])} missing"
    # Same meaning and units where values are stable between the two scrapes.
    go_series, our_series = parse(go_text), parse(ours_text)
    for name in (
        "libvirt_domains_number",
        "libvirt_domain_state_code",
        "libvirt_domain_info_virtual_cpus",
        "libvirt_domain_info_maximum_memory_bytes",
        "libvirt_domain_info_memory_usage_bytes",
    ):
        assert pick(go_series, name) == pick(our_series, name), name
    go_cpu = pick(go_series, "libvirt_domain_info_cpu_time_seconds_total")
    our_cpu = pick(our_series, "libvirt_domain_info_cpu_time_seconds_total")
    assert go_cpu.keys() == our_cpu.keys()
    for domain, seconds in go_cpu.items():
        assert our_cpu[domain] == pytest.approx(seconds, abs=5.0)
    go_ifaces = {
        (dict(items)["domain"], dict(items)["source_bridge"], dict(items)["target_device"])
        for (name, items) in go_series
        if name == "libvirt_domain_interface_stats_receive_bytes_total"
    }
    our_ifaces = {
        (dict(items)["domain"], dict(items)["source_bridge"], dict(items)["target_device"])
        for (name, items) in our_series
        if name == "libvirt_domain_interface_stats_receive_bytes_total"
    }
    assert go_ifaces == our_ifaces


@pytest.fixture
def storage_pool(lab: Lab, tmp_path: Path) -> Iterator[str]:
    """A directory pool defined and started on the first lab host for the test."""
    host = lab.hosts[0].name
    name = "vbtestpool"
    virsh = ["virsh", "-c", "qemu:///system"]
    for argv in (
        [*virsh, "pool-define-as", name, "dir", "--target", str(tmp_path)],
        [*virsh, "pool-start", name],
    ):
        result = lab.run_in_host(host, argv, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
    try:
        yield name
    finally:
        lab.run_in_host(host, [*virsh, "pool-destroy", name], capture_output=True, timeout=30)
        lab.run_in_host(host, [*virsh, "pool-undefine", name], capture_output=True, timeout=30)


def test_drop_in_for_inovex_exporter_on_real_libvirtd(
    fresh_lab: Lab, exporters: dict[str, str], storage_pool: str
) -> None:
    text = fetch(exporters[fresh_lab.hosts[0].name])
    ours = label_names(text)
    expected = inovex_series()
    producible = set(expected) - NEEDS_GUEST_BALLOON_DRIVER - JOB_SERIES
    missing = sorted(producible - set(ours))
    assert not missing, f"inovex series we lack on a real libvirtd: {missing}"
    for name in sorted(producible):
        assert expected[name] <= ours[name], f"{name}: labels {expected[name] - ours[name]}"
    series = parse(text)
    on_hv1 = {"web1", "app1", "db1", "batch1", "batch2"}
    assert set(pick(series, "libvirt_domain_info_state", state_desc="the domain is running")) == (
        on_hv1
    )
    assert pick(series, "libvirt_domains") == {"": 5}
    assert pick(series, "libvirt_domain_vcpu_current")["web1"] == 1
    assert pick(series, "libvirt_domain_job_info_type") == dict.fromkeys(on_hv1, 0.0)
    assert pick(series, "libvirt_domain_timed_out") == dict.fromkeys(on_hv1, 0.0)
    # The lab's disks are 1 MiB images; the pool is a directory on the machine's filesystem.
    assert set(pick(series, "libvirt_domain_block_stats_capacity_bytes").values()) == {MIB}
    pool = {"storage_pool": storage_pool}
    values = {
        name: value
        for (name, labels), value in series.items()
        if dict(labels) == pool and name.startswith("libvirt_storage_pool_")
    }
    assert values["libvirt_storage_pool_state"] == 2  # VIR_STORAGE_POOL_RUNNING
    assert values["libvirt_storage_pool_timed_out"] == 0
    assert (
        values["libvirt_storage_pool_capacity_bytes"]
        > values["libvirt_storage_pool_available_bytes"]
        > 0
    )
    # RSS from /proc (the exporter runs inside the host) agrees with libvirt's own figure.
    conn = fresh_lab.connection("hv1")
    libvirt_rss = conn.lookupByName("web1").memoryStats()["rss"] * 1024
    ours_rss = pick(series, "libvirt_domain_memory_rss_bytes")["web1"]
    assert ours_rss == pytest.approx(libvirt_rss, rel=0.2)


def test_inovex_style_flags_socket_path_health_and_root_path(fresh_lab: Lab) -> None:
    host = fresh_lab.hosts[0]
    target = f"{host.address}:{INOVEX_STYLE_PORT}"
    exporter = str(Path(sys.executable).parent / "virtbalance-exporter")
    argv = [
        exporter,
        *("--libvirt.uri", "/run/libvirt/libvirt-sock-ro", "--libvirt.driver", "qemu:///system"),
        *("--web.listen-address", target, "--web.telemetry-path", "/"),
        *("--web.health-path", "/health", "--exporter.timeout", "5s"),
        *("--exporter.max-concurrent-collects", "2", "--log.level", "warn"),
    ]
    process = fresh_lab.exec_in_host(
        host.name, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = fetch(target, "/health")
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the exporter did not come up"
                time.sleep(0.2)
        assert health == "ok\n"
        series = parse(fetch(target, "/"))
        assert pick(series, "libvirt_up") == {"": 1}
        # Everything is readable through the read-only socket: no stage failed.
        failures = {
            dict(labels)["stage"]: value
            for (name, labels), value in series.items()
            if name == "libvirt_exporter_scrape_errors_total"
        }
        assert set(failures.values()) == {0}, failures
        assert set(pick(series, "libvirt_domain_info_state")) == {
            "web1",
            "app1",
            "db1",
            "batch1",
            "batch2",
        }
        fresh_lab.stop_libvirtd(host.name)
        try:
            with pytest.raises(urllib.error.HTTPError) as caught:
                fetch(target, "/health")
            assert caught.value.code == 503
            caught.value.close()
        finally:
            fresh_lab.start_libvirtd(host.name)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def test_libvirt_events_mark_the_migrating_domain_on_both_hosts(fresh_lab: Lab) -> None:
    """The event plumbing of --libvirt.job-sweep-interval against real daemons."""
    start_event_loop()  # before the connections open, as the exporter does
    uuid = fresh_lab.connection("hv1").lookupByName("batch1").UUIDString()
    quiet = fresh_lab.connection("hv1").lookupByName("web1").UUIDString()
    watches = {}
    for name in ("hv1", "hv2"):
        conn = libvirt.open(f"qemu+tcp://{fresh_lab.host(name).address}/system")
        watch = JobWatch(time.monotonic, sweep_seconds=60.0)
        watch.attach(conn)
        assert watch.events
        watch.plan()  # the first plan is the sweep
        watch.retain([uuid, quiet])  # as if a scrape had seen both (neither is new)
        assert not watch.plan().wants(uuid, libvirt.VIR_DOMAIN_RUNNING)
        watches[name] = (conn, watch)
    fresh_lab.migrate("batch1", "hv2")
    try:
        deadline = time.monotonic() + 10
        while not all(
            watch.plan().wants(uuid, libvirt.VIR_DOMAIN_RUNNING) for _, watch in watches.values()
        ):
            assert time.monotonic() < deadline, "no migration event reached both watches"
            time.sleep(0.1)
        assert not watches["hv1"][1].plan().wants(quiet, libvirt.VIR_DOMAIN_RUNNING)
    finally:
        for conn, _ in watches.values():
            conn.close()
        fresh_lab.migrate("batch1", "hv1")
