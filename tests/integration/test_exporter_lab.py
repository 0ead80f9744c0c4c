"""The exporter against real libvirtd hosts of the lab: real QEMU guests, chunks, migration, drop-in."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.lab]

GO_EXPORTER = "prometheus-libvirt-exporter"
GO_PORT = 19177
MIB = 1024 * 1024

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def fetch(target: str) -> str:
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=20) as response:
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
    while not done.is_set():
        began = time.monotonic()
        source = parse(fetch(exporters["hv1"]))
        slowest = max(slowest, time.monotonic() - began)
        assert pick(source, "libvirt_up") == {"": 1}
        seen_source = max(
            seen_source, pick(source, "libvirt_domain_migration_in_progress").get("batch1", 0)
        )
        destination = parse(fetch(exporters["hv2"]))
        seen_destination = max(
            seen_destination,
            pick(destination, "libvirt_domain_migration_in_progress").get("batch1", 0),
        )
    worker.join()
    assert not failure, failure
    assert seen_source == 1, "the source never reported the running migration job"
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
    host = lab.hosts[0]
    target = f"{host.address}:{GO_PORT}"
    process = lab.exec_in_host(
        host.name,
        [binary, "--libvirt.uri", "qemu:///system", "--web.listen-address", target],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                fetch(target)
                break
            except OSError:
                assert process.poll() is None, f"{GO_EXPORTER} exited with {process.returncode}"
                assert time.monotonic() < deadline, f"{GO_EXPORTER} did not come up on {target}"
                time.sleep(0.2)
        yield target
    finally:
        process.terminate()
        process.wait(timeout=10)


def families(text: str) -> dict[str, set[str]]:
    """Metric sample name -> union of its label names."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_drop_in_for_debians_go_exporter(
    fresh_lab: Lab, exporters: dict[str, str], go_exporter: str
) -> None:
    host = fresh_lab.hosts[0].name
    go_text, ours_text = fetch(go_exporter), fetch(exporters[host])
    go, ours = families(go_text), families(ours_text)
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
