"""Drop-in for inovex's exporter: every series name and label it serves, from recorded libvirt data."""

from __future__ import annotations

import shutil
import subprocess

import libvirt

from tests.exporter_fixtures import fake_collector, inovex_series, label_names
from tests.fixtures.exporter.fake_libvirt import (
    FakeConnection,
    FakePool,
    recorded_host,
)
from virtbalance.exporter.exposition import render

# What a guest with a virtio balloon driver adds to the bulk stats (libvirt's documented keys);
# the recorded guests run a boot sector and have none.
BALLOON_DRIVER_STATS = {
    "balloon.swap_in": 0,
    "balloon.swap_out": 8,
    "balloon.major_fault": 12,
    "balloon.minor_fault": 3400,
    "balloon.unused": 40000,
    "balloon.available": 60000,
    "balloon.usable": 45000,
    "balloon.disk_caches": 9000,
    "balloon.hugetlb_pgalloc": 0,
    "balloon.hugetlb_pgfail": 0,
}


def host_with_everything() -> FakeConnection:
    """The recorded host plus what inovex's series need: a balloon driver, a pool, a job."""
    conn = FakeConnection(recorded_host())
    conn.domain("vbexp-a").stats.update(BALLOON_DRIVER_STATS)
    conn.domain("vbexp-b").job = {"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED, "operation": 5}
    conn.pools = [FakePool("images", [libvirt.VIR_STORAGE_POOL_RUNNING, 10, 4, 6])]
    return conn


def served(conn: FakeConnection) -> str:
    return render(fake_collector(lambda: conn).families()).decode()


def test_fixture_lists_inovex_series():
    series = inovex_series()
    assert len(series) == 67
    assert series["libvirt_domain_info_state"] == {"domain", "state_desc"}
    assert series["libvirt_storage_pool_state"] == {"storage_pool"}


def test_every_inovex_series_is_served_with_its_labels():
    ours = label_names(served(host_with_everything()))
    missing = sorted(set(inovex_series()) - set(ours))
    assert not missing, f"inovex series we lack: {missing}"
    for name, labels in inovex_series().items():
        assert labels <= ours[name], f"{name}: labels {sorted(labels - ours[name])} missing"


def test_the_check_fails_without_the_data_behind_a_series():
    # Proves the test above can fail: the recorded guests have no balloon driver and no pool.
    ours = label_names(served(FakeConnection(recorded_host())))
    missing = set(inovex_series()) - set(ours)
    assert "libvirt_domain_memory_stats_swap_in_bytes" in missing
    assert "libvirt_storage_pool_state" in missing


def test_drop_in_exposition_passes_promtool_check_metrics():
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package (scripts/bootstrap)"
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=served(host_with_everything()).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == ""
