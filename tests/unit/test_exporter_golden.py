"""The whole exposition of the recorded host, pinned in a golden file that promtool accepts."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.collector import LibvirtCollector
from exporter.source import LibvirtSource
from exporter.topology import TopologyCache
from tests.fixtures.exporter.fake_libvirt import (
    FIXTURES,
    RECORDED_BRIDGES,
    FakeBridges,
    FakeClock,
    FakeConnection,
    recorded_host,
)

GOLDEN = FIXTURES / "golden.prom"


def exposition() -> bytes:
    clock = FakeClock()  # frozen: every stage duration is 0, so the text is deterministic
    conn = FakeConnection(recorded_host())
    source = LibvirtSource(
        connect=lambda: conn, clock=clock, timeout=5.0, topology_cache=TopologyCache(60.0)
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LibvirtCollector(source, bridges=FakeBridges(RECORDED_BRIDGES), clock=clock))
    return generate_latest(registry)


def test_exposition_matches_golden_file():
    text = exposition()
    if os.environ.get("VIRTBALANCE_UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(text)
    assert text.decode() == GOLDEN.read_text()


def test_golden_file_passes_promtool_check_metrics():
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package (scripts/bootstrap)"
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=GOLDEN.read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == ""


@pytest.mark.parametrize(
    "bad",
    ["libvirt_up 1\nlibvirt_up 1\n", '# TYPE x_total counter\nx_total{a="b"} not-a-number\n'],
)
def test_promtool_check_rejects_broken_exposition(bad: str):
    # Proves the check above can fail.
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=bad.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
