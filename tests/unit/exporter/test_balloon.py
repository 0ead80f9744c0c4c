"""The balloon stats group only where it adds something, and RSS read from /proc otherwise."""

from __future__ import annotations

from pathlib import Path

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
from virtbalance.exporter.balloon import DEFAULT_RECHECK_SECONDS
from virtbalance.exporter.procfs import PAGE_KIB, QemuProcesses, is_local_system_uri
from virtbalance.exporter.source import BALLOON_GROUP

A = {"domain": "vbexp-a", "uuid": "b7fbb86e-17a3-5ed4-bcf5-91e9a585a1d3"}
KIB = 1024


class FakeProcesses(QemuProcesses):
    """RSS by domain name; a missing name cannot be read (another machine, no permission)."""

    def __init__(self, rss: dict[str, int]) -> None:
        super().__init__()
        self.rss = rss

    def rss_kib(self, name: str) -> int | None:
        return self.rss.get(name)


def build(
    conn: FakeConnection, processes: QemuProcesses | None
) -> tuple[CollectorRegistry, FakeClock]:
    clock = FakeClock()
    collector = fake_collector(lambda: conn, clock=clock, max_age=3600.0, processes=processes)
    return registry_of(collector), clock


def asked_for_balloon(conn: FakeConnection) -> set[str]:
    """Domains whose bulk call of the last scrape included the balloon group."""
    calls = list(zip(conn.list_stats_calls, conn.list_stats_flags, strict=True))
    conn.list_stats_calls.clear()
    conn.list_stats_flags.clear()
    return {name for names, (groups, _) in calls if groups & BALLOON_GROUP for name in names}


def test_balloon_group_only_for_guests_reporting_memory_or_without_local_rss():
    conn = FakeConnection(recorded_host())
    conn.domain("vbexp-a").stats["balloon.usable"] = 30000  # a guest with a balloon driver
    names = [d.name() for d in conn.domains]
    local = {name: 4000 + i for i, name in enumerate(names) if name != "vbexp-c"}
    registry, clock = build(conn, FakeProcesses(local))
    list(registry.collect())
    assert asked_for_balloon(conn) == set(names)  # the first scrape learns about every domain
    list(registry.collect())
    assert asked_for_balloon(conn) == {"vbexp-a", "vbexp-c"}
    value = registry.get_sample_value  # each call scrapes again
    assert value("libvirt_domain_memory_rss_bytes", A) == 45736 * KIB  # libvirt's figure
    b = {"domain": "vbexp-b", "uuid": conn.domain("vbexp-b").UUIDString()}
    assert value("libvirt_domain_memory_rss_bytes", b) == local["vbexp-b"] * KIB  # from /proc
    assert value("libvirt_domain_memory_stats_usable_bytes", A) == 30000 * KIB
    clock.advance(DEFAULT_RECHECK_SECONDS)
    list(registry.collect())
    assert asked_for_balloon(conn) == set(names)  # a driver may have loaded meanwhile


def test_remote_libvirt_keeps_the_balloon_group_for_every_domain():
    conn = FakeConnection(recorded_host())
    registry, _ = build(conn, None)
    for _ in range(3):
        list(registry.collect())
        assert asked_for_balloon(conn) == {d.name() for d in conn.domains}


def test_cpu_time_and_memory_come_from_domain_info():
    conn = FakeConnection(recorded_host())
    conn.domain("vbexp-a").info_values = [1, 131072, 98304, 1, 2_500_000_000]
    registry, _ = build(conn, FakeProcesses({}))
    value = registry.get_sample_value
    assert value("libvirt_domain_info_cpu_time_seconds_total", A) == 2.5
    assert value("libvirt_domain_info_maximum_memory_bytes", A) == 128 * 1024 * KIB
    assert value("libvirt_domain_info_memory_usage_bytes", A) == 96 * 1024 * KIB
    assert not any(
        groups & libvirt.VIR_DOMAIN_STATS_CPU_TOTAL for groups, _ in conn.list_stats_flags
    )


def test_info_failure_is_counted_and_a_vanished_domain_skipped():
    conn = FakeConnection(recorded_host())
    conn.domain("vbexp-a").info_error = libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR)
    conn.domain("vbexp-b").info_error = libvirt_error(libvirt.VIR_ERR_NO_DOMAIN)
    registry, _ = build(conn, None)
    value = registry.get_sample_value
    assert value("libvirt_exporter_scrape_errors_total", {"stage": "stats"}) == 1
    assert value("libvirt_domain_info_cpu_time_seconds_total", A) is None
    assert value("libvirt_domains_number") == 5  # vbexp-b left the host


def write_qemu(root: Path, name: str, pid: int, cmdline: bytes, resident_pages: int) -> None:
    (root / "run").mkdir(exist_ok=True)
    (root / "run" / f"{name}.pid").write_text(f"{pid}\n")
    (root / "proc" / str(pid)).mkdir(parents=True)
    (root / "proc" / str(pid) / "cmdline").write_bytes(cmdline)
    (root / "proc" / str(pid) / "statm").write_text(
        f"362465 {resident_pages} 5671 1431 0 286520 0\n"
    )


def test_rss_from_proc_only_for_the_domains_own_process(tmp_path):
    write_qemu(tmp_path, "g00", 100, b"/usr/bin/qemu\0-name\0guest=g00,debug-threads=on\0", 10325)
    write_qemu(tmp_path, "a,b", 101, b"qemu\0-name\0guest=a,,b,debug-threads=on\0", 7)
    write_qemu(tmp_path, "g01", 102, b"/usr/bin/python3\0server.py\0", 50)  # PID reused
    processes = QemuProcesses(tmp_path / "run", tmp_path / "proc")
    assert processes.rss_kib("g00") == 10325 * PAGE_KIB
    assert processes.rss_kib("a,b") == 7 * PAGE_KIB
    assert processes.rss_kib("g01") is None
    assert processes.rss_kib("g99") is None  # no PID file: not running here


@pytest.mark.parametrize(
    ("uri", "local"),
    [
        ("qemu:///system", True),
        ("qemu+unix:///system?socket=/var/run/libvirt/libvirt-sock-ro", True),
        ("qemu+tcp://10.0.0.1/system", False),
        ("qemu+ssh://root@h/system", False),
        ("qemu:///session", False),
        ("test:///default", False),
    ],
)
def test_proc_is_read_only_for_this_machines_system_daemon(uri, local):
    assert is_local_system_uri(uri) is local
