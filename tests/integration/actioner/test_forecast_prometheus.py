"""The actioner's forecast from a real Prometheus holding known demand: its peaks and averages, and a
fresh Prometheus' short history falling back."""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType

import pytest

from tests.actioner_fixtures import actioner_config, running_facts
from virtbalance import contract as c
from virtbalance.actioner.forecast_reader import read_forecast
from virtbalance.actioner.libvirt_hosts import DomainFacts
from virtbalance.actioner.prometheus_demand import prometheus_history
from virtbalance.actioner.snapshot_builder import SnapshotBuilder
from virtbalance.policy import Policy

MINUTE = 60
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("prometheus") is None or shutil.which("promtool") is None,
        reason="Prometheus not installed (scripts/bootstrap installs it)",
    ),
]

SCRAPE = 15
POLICY = Policy()  # rate_window 5m, forecast_window and balance_window 1h


def counter(
    name: str, labels: str, rate: Callable[[int], float], start: int, end: int
) -> Iterator[str]:
    """A counter growing at ``rate(t)`` cores from ``start`` to ``end``, a sample every SCRAPE seconds."""
    total = 0.0
    for at in range(start, end + 1, SCRAPE):
        yield f"{name}{{{labels}}} {total:.3f} {at}\n"
        total += rate(at) * SCRAPE


def steady(cores: float) -> Callable[[int], float]:
    return lambda _at: cores


def burst(cores: float, peak: float, begins: int, end: int) -> Callable[[int], float]:
    """``cores``, ``peak`` for ten minutes (longer than the rate window) from ``begins`` minutes
    before ``end``."""
    return lambda at: peak if end - begins * MINUTE <= at < end - (begins - 10) * MINUTE else cores


def samples(end: int) -> Iterator[str]:
    """Seventy minutes of a and b, which burst at different times (b's run time plus 0.25 cores waited
    on a vCPU), and c, which moved 20 minutes ago; ``fresh``, which Prometheus has had for 20 minutes."""
    used, waited = c.DOMAIN_CPU_SECONDS, c.DOMAIN_VCPU_DELAY
    start, moved = end - 70 * MINUTE, end - 20 * MINUTE
    yield f"# TYPE {used.removesuffix('_total')} counter\n"
    yield from counter(used, 'host="hv1",domain="a"', burst(0.5, 2.0, 40, end), start, end)
    yield from counter(used, 'host="hv1",domain="b"', burst(0.75, 1.5, 15, end), start, end)
    # A move restarts the counter under the new host's label; the old series just stops.
    yield from counter(used, 'host="hv1",domain="c"', steady(0.4), start, moved)
    yield from counter(used, 'host="hv2",domain="c"', steady(0.4), moved, end)
    yield from counter(used, 'host="hv3",domain="fresh"', steady(1.0), moved, end)
    yield f"# TYPE {waited.removesuffix('_total')} counter\n"
    yield from counter(waited, 'host="hv1",domain="b",vcpu="0"', steady(0.25), start, end)
    yield "# EOF\n"


def backfilled(repo_root: Path) -> ModuleType:
    """benchmarks/backfilled_prometheus.py: the project's throw-away Prometheus fed by promtool."""
    path = repo_root / "benchmarks" / "backfilled_prometheus.py"
    spec = importlib.util.spec_from_file_location("backfilled_prometheus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def end() -> int:
    """The instant the forecast is read at, a whole minute: the last samples are from now (when the
    module's tests start, not when the suite was collected, which can be long before), so that the
    snapshot's demand query (at Prometheus' own now) finds them within its lookback too."""
    return int(time.time()) // MINUTE * MINUTE


@pytest.fixture(scope="module")
def prometheus(repo_root, tmp_path_factory, end) -> Iterator[str]:
    server: AbstractContextManager[str] = backfilled(repo_root).backfilled_prometheus(
        tmp_path_factory.mktemp("prometheus"), samples(end), ready_within=60
    )
    with server as url:
        yield url


def test_peaks_and_averages_read_from_prometheus(prometheus, end):
    query = prometheus_history(prometheus, 10.0, lambda: float(end))
    placement = {"a": "hv1", "b": "hv1", "c": "hv2"}
    reading = read_forecast(query, POLICY, placement, {"a": 4, "b": 4, "c": 4})
    assert reading.notes == ()
    forecast = reading.forecast
    assert forecast is not None
    # The bursts last longer than the rate window: the rates reach them in full; b's demand is its
    # run time plus its vCPU's wait.
    assert forecast.domains["a"] == pytest.approx(2.0, abs=0.01)
    assert forecast.domains["b"] == pytest.approx(1.75, abs=0.01)
    # hv1's peak is that of a and b together, bursting in turn (not 2 + 1.75), without c, which
    # no longer runs there; hv2's is c's, whose series before and after its move sum to 0.4.
    assert forecast.hosts["hv1"] == pytest.approx(3.0, abs=0.01)
    assert forecast.hosts["hv2"] == pytest.approx(0.4, abs=0.05)
    assert forecast.domains["c"] == pytest.approx(0.4, abs=0.05)
    # The hour's averages: ten minutes of burst in sixty (each burst's ramps inside the hour).
    assert forecast.averages["a"] == pytest.approx(0.5 + 1.5 * 10 / 60, abs=0.02)
    assert forecast.averages["b"] == pytest.approx(1.0 + 0.75 * 10 / 60, abs=0.02)
    assert set(forecast.averages) == {"a", "b", "c"}


def test_a_history_shorter_than_the_hour_gives_no_forecast(prometheus, end):
    # Only fresh is placed: Prometheus holds 20 minutes of it (15 of rates at 5m points), not the hour.
    query = prometheus_history(prometheus, 10.0, lambda: float(end))
    reading = read_forecast(query, POLICY, {"fresh": "hv3"}, {"fresh": 2})
    assert reading.forecast is None
    (note,) = reading.notes
    assert note.startswith("no forecast: Prometheus holds 15m")
    assert note.endswith("of the 1h forecast_window; destinations judged on the last sample")


def test_an_unreachable_prometheus_gives_no_forecast_and_says_why():
    # Nothing listens on port 9 of 127.0.0.1 (discard).
    query = prometheus_history("http://127.0.0.1:9", 2.0, time.time)
    reading = read_forecast(query, POLICY, {"a": "hv1"}, {"a": 1})
    assert reading.forecast is None
    (note,) = reading.notes
    assert note.startswith("no forecast: the demand history query failed (")


class Cluster:
    """Where libvirt says the domains run: the builder's host pool and reader."""

    def __init__(self, placement: dict[str, str]) -> None:
        self.placement = placement

    def capacity(self, host: str) -> tuple[float, int]:
        return 4.0, 8 * 1024**3

    def domains(self, host: str) -> list[DomainFacts]:
        return [
            running_facts(name, host, vcpus=4, memory_bytes=1024**3)
            for name, on in self.placement.items()
            if on == host
        ]

    def retain(self, uuids: object) -> None:
        pass

    def drop(self, host: str) -> None:
        pass

    def private_links(self, facts: DomainFacts) -> tuple[str, ...]:
        return ()


def test_the_actioners_snapshot_builder_reads_the_forecast_from_its_prometheus(
    prometheus, end, tmp_path
):
    config = actioner_config(tmp_path, prometheus={"url": prometheus, "timeout": "10s"})
    cluster = Cluster({"a": "hv1", "b": "hv1", "c": "hv2"})
    builder = SnapshotBuilder(config, cluster, reader=cluster, clock=lambda: float(end))
    view = builder.build()
    assert view.cpu_source == "prometheus"
    assert view.forecast is not None
    assert view.forecast_notes == ()
    assert view.forecast.hosts["hv1"] == pytest.approx(3.0, abs=0.01)
    assert view.forecast.domains["b"] == pytest.approx(1.75, abs=0.01)
