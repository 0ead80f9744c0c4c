"""The snapshot builder: libvirt facts to planner records, CPU from Prometheus or two libvirt samples."""

from __future__ import annotations

import threading
import time

import libvirt
import pytest

from tests.actioner_fixtures import actioner_config
from virtbalance.actioner.libvirt_hosts import DomainFacts, HostUnreachableError
from virtbalance.actioner.prometheus_demand import DemandHistory
from virtbalance.actioner.snapshot_builder import SnapshotBuilder, SnapshotError
from virtbalance.domain_metadata import Placement

MiB = 1024 * 1024


class Dom:
    def __init__(self, name):
        self._name = name

    def name(self):
        return self._name


class FakeTime:
    """The builder's monotonic clock and sleep: time passes only when asked, so rates are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


TIME = FakeTime()  # shared by the fake hosts and the builders of this module


class Conn:
    """cpu.time grows at ``rate`` cores in (fake) time; the first stats call can be slow."""

    def __init__(self, rates, first_call_delay=0.0, waits=None):
        self.rates = rates
        self.delay = first_call_delay
        self.calls = 0
        self.waits = waits or {}  # domain -> cores its single vCPU spends waiting for a host CPU

    def getAllDomainStats(self, stats, flags):
        self.calls += 1
        slow = self.calls == 1 and self.delay
        if slow:
            TIME.sleep(self.delay / 2)  # the request travels...
        now = TIME.monotonic()
        if slow:
            TIME.sleep(self.delay / 2)  # ...and the answer comes back
        return [
            (
                Dom(n),
                {
                    "cpu.time": int(r * now * 1e9),
                    "vcpu.0.delay": int(self.waits.get(n, 0) * now * 1e9),
                },
            )
            for n, r in self.rates.items()
        ]


NO_PLACEMENT = Placement()


def facts(name, host, bridges=(), placement=NO_PLACEMENT, *, vcpus=1, running=True):
    return DomainFacts(
        name=name,
        uuid=name,
        host=host,
        active=True,
        persistent=running,
        state=libvirt.VIR_DOMAIN_RUNNING if running else libvirt.VIR_DOMAIN_PAUSED,
        reason=0 if running else libvirt.VIR_DOMAIN_PAUSED_MIGRATION,
        vcpus=vcpus,
        memory_bytes=64 * MiB,
        bridges=tuple(bridges),
        networks=(),
        placement=placement,
    )


class Pool:
    def __init__(self, config, hosts, conns, down=()):
        self.config = config
        self.hosts = hosts
        self.conns = conns
        self.down = set(down)

    def capacity(self, host):
        if host in self.down:
            raise HostUnreachableError(host)
        return 2.0, 1024 * MiB

    def domains(self, host):
        return self.hosts[host]

    def connection(self, host):
        return self.conns[host]

    def drop(self, host):
        pass

    def private_links(self, f):
        return tuple(sorted(b for b in f.bridges if b != "br0"))


class Reader:
    """The builder's host reader over the fake pool; remembers which domains it was told to keep."""

    def __init__(self, pool):
        self.pool = pool
        self.retained = None

    def domains(self, host):
        return self.pool.domains(host)

    def retain(self, uuids):
        self.retained = sorted(uuids)


def builder(tmp_path, hosts, conns, cpu_query=None, down=(), *, history_query=None, **config):
    cfg = actioner_config(tmp_path, prometheus={"fallback_sample_interval": "50ms"}, **config)
    pool = Pool(cfg, hosts, conns, down)
    return SnapshotBuilder(
        cfg,
        pool,
        cpu_query=cpu_query,
        history_query=history_query,
        reader=Reader(pool),
        sleep=TIME.sleep,
        monotonic=TIME.monotonic,
    )


def test_each_host_sample_uses_its_own_interval(tmp_path):
    # hv2's first stats call takes 0.4 s: with one shared interval hv1's rate would read about 8x too high
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [facts("b", "hv2")], "hv3": []}
    conns = {
        "hv1": Conn({"a": 0.5}),
        "hv2": Conn({"b": 0.25}, first_call_delay=0.4),
        "hv3": Conn({}),
    }
    view = builder(tmp_path, hosts, conns).build()
    cpu = {d.name: d.cpu_used for d in view.snapshot.domains}
    assert view.cpu_source == "libvirt"
    assert cpu["a"] == pytest.approx(0.5, abs=0.05)
    assert cpu["b"] == pytest.approx(0.25, abs=0.05)


def test_facts_become_planner_records(tmp_path):
    hosts = {
        "hv1": [
            facts("web1", "hv1", bridges=("lan11", "br0")),
            facts("db1", "hv1", placement=Placement(group="db", pinned=True), vcpus=2),
            facts("incoming", "hv1", running=False),  # a migration's paused shell: runs elsewhere
        ],
        "hv2": [facts("incoming", "hv2")],
        "hv3": [],
    }
    rates = {"hv1": {"web1": 0.2, "db1": 3.0}, "hv2": {"incoming": 0.1}, "hv3": {}}
    conns = {h: Conn(r) for h, r in rates.items()}
    view = builder(tmp_path, hosts, conns).build()
    domains = {d.name: d for d in view.snapshot.domains}
    assert domains["web1"].private_networks == ("lan11",)
    assert (domains["db1"].group, domains["db1"].pinned) == ("db", True)
    assert domains["db1"].cpu_used == 2.0  # never more than its vCPUs
    assert domains["incoming"].host == "hv2"
    host = view.snapshot.host("hv1")
    assert (host.cpus, host.memory_used_bytes) == (2.0, 128 * MiB)
    assert host.cpu_used == pytest.approx(domains["web1"].cpu_used + 2.0)


def test_unreachable_host_is_left_out(tmp_path):
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [], "hv3": []}
    conns = {"hv1": Conn({"a": 0.1}), "hv2": Conn({}), "hv3": Conn({})}
    view = builder(tmp_path, hosts, conns, down=("hv3",)).build()
    assert view.unreachable == ("hv3",)
    assert [h.name for h in view.snapshot.hosts] == ["hv1", "hv2"]


def test_a_domain_running_twice_stops_the_plan(tmp_path):
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [facts("a", "hv2")], "hv3": []}
    conns = {h: Conn({}) for h in hosts}
    with pytest.raises(SnapshotError, match="runs on both hv1 and hv2"):
        builder(tmp_path, hosts, conns).build()


def test_prometheus_answers_are_used_and_gaps_sampled(tmp_path):
    hosts = {"hv1": [facts("a", "hv1"), facts("new", "hv1")], "hv2": [], "hv3": []}
    conns = {"hv1": Conn({"a": 0.9, "new": 0.3}), "hv2": Conn({}), "hv3": Conn({})}
    windows = []

    def query(window):
        windows.append(window)
        return {"a": 0.7, "gone": 1.0}

    view = builder(tmp_path, hosts, conns, cpu_query=query).build()
    cpu = {d.name: d.cpu_used for d in view.snapshot.domains}
    assert windows == [300.0]  # the policy's rate_window
    assert view.cpu_source == "prometheus+libvirt"
    assert cpu["a"] == 0.7
    assert cpu["new"] == pytest.approx(0.3, abs=0.05)


def test_prometheus_failure_falls_back_or_fails_as_configured(tmp_path):
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [], "hv3": []}

    def broken(window):
        raise ConnectionError("refused")

    conns = {"hv1": Conn({"a": 0.4}), "hv2": Conn({}), "hv3": Conn({})}
    view = builder(tmp_path, hosts, conns, cpu_query=broken).build()
    assert view.cpu_source == "libvirt"
    strict = tmp_path / "strict"
    strict.mkdir()
    with pytest.raises(SnapshotError, match="Prometheus query failed"):
        cfg = actioner_config(strict, prometheus={"fallback_to_libvirt": False})
        pool = Pool(cfg, hosts, conns)
        SnapshotBuilder(cfg, pool, cpu_query=broken, reader=Reader(pool)).build()


def test_the_forecast_is_read_for_the_placement_libvirt_reports(tmp_path):
    # The history carries no placement: hv1's peak is that of a and b, which libvirt says run there.
    hosts = {"hv1": [facts("a", "hv1", vcpus=4), facts("b", "hv1", vcpus=4)], "hv2": [], "hv3": []}
    conns = {h: Conn({}) for h in hosts}
    asked = []

    def history(window, span, step):
        asked.append((window, span, step))
        rows: dict[str, list[float | None]] = {
            "a": [1.0 + (t == 3600.0) for t in points],
            "b": [0.5] * len(points),
        }
        return DemandHistory(3600.0, 300.0, rows)

    points = [300.0 * i for i in range(13)]  # a rate window apart, the last at 3600
    view = builder(
        tmp_path, hosts, conns, cpu_query=lambda w: {"a": 1.0, "b": 0.5}, history_query=history
    ).build()
    # The policy's rate window; an hour is 12 points a rate window apart (the simulator's count).
    assert asked == [(300.0, 3300.0, 300.0)]
    assert view.forecast is not None
    assert view.forecast_notes == ()
    assert view.forecast.domains == {"a": 2.0, "b": 0.5}
    assert view.forecast.hosts == {"hv1": 2.5}
    assert view.forecast.averages == pytest.approx({"a": 1.0 + 1 / 12, "b": 0.5})


def test_no_forecast_query_after_the_cpu_query_failed(tmp_path):
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [], "hv3": []}
    conns = {"hv1": Conn({"a": 0.4}), "hv2": Conn({}), "hv3": Conn({})}
    asked = []

    def broken(window):
        raise ConnectionError("refused")

    def history(window, span, step):
        asked.append(window)
        return DemandHistory(0.0, 300.0, {})

    view = builder(tmp_path, hosts, conns, cpu_query=broken, history_query=history).build()
    assert view.cpu_source == "libvirt"
    assert asked == []  # its timeout would only delay the plan again
    assert view.forecast is None
    assert view.forecast_notes == ("no forecast: Prometheus did not answer the CPU query",)


def test_a_builder_without_prometheus_plans_without_a_forecast(tmp_path):
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [], "hv3": []}
    conns = {"hv1": Conn({"a": 0.4}), "hv2": Conn({}), "hv3": Conn({})}
    view = builder(tmp_path, hosts, conns).build()
    assert (view.forecast, view.forecast_notes) == (None, ())


def test_prometheus_is_asked_while_libvirt_is_read(tmp_path):
    # libvirt's reading of hv1 waits for both of Prometheus' answers: read one after the other,
    # the history (asked after the reads) would never come and the wait would time out.
    hosts = {"hv1": [facts("a", "hv1", vcpus=4)], "hv2": [], "hv3": []}
    demanded, historied = threading.Event(), threading.Event()

    class WaitingReader(Reader):
        def domains(self, host):
            if host == "hv1":
                assert demanded.wait(10) and historied.wait(10)
            return super().domains(host)

    def cpu_query(window):
        demanded.set()
        return {"a": 1.0}

    def history(window, span, step):
        historied.set()
        return DemandHistory(3600.0, step, {"a": [1.5] * 12})

    cfg = actioner_config(tmp_path)
    pool = Pool(cfg, hosts, {h: Conn({}) for h in hosts})
    built = SnapshotBuilder(
        cfg, pool, cpu_query=cpu_query, history_query=history, reader=WaitingReader(pool)
    )
    view = built.build()
    assert view.cpu_source == "prometheus"
    assert view.forecast is not None
    assert view.forecast.domains == {"a": 1.5}
    assert view.forecast.hosts == {"hv1": 1.5}


def test_a_failed_history_query_is_noted_and_the_snapshot_stands(tmp_path):
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [], "hv3": []}
    conns = {h: Conn({}) for h in hosts}

    def history(window, span, step):
        raise ConnectionError("reset by peer")

    view = builder(
        tmp_path, hosts, conns, cpu_query=lambda w: {"a": 0.5}, history_query=history
    ).build()
    assert view.cpu_source == "prometheus"
    assert [d.cpu_used for d in view.snapshot.domains] == [0.5]
    assert view.forecast is None
    assert view.forecast_notes == ("no forecast: the demand history query failed (reset by peer)",)


def test_a_failed_build_waits_for_prometheus_and_drops_the_query_not_started(tmp_path):
    # The build fails while the demand query is under way: the build returns once it has its
    # answer, and the history, not started yet, is never asked; no thread of the build is left.
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [facts("a", "hv2")], "hv3": []}
    read, answered, asked = threading.Event(), threading.Event(), []

    class SignallingReader(Reader):
        def domains(self, host):
            read.set()
            return super().domains(host)

    def cpu_query(window):
        assert read.wait(10)  # the reads go on (and fail the build) while Prometheus computes
        time.sleep(0.5)
        answered.set()
        return {"a": 0.5}

    def history(window, span, step):
        asked.append(window)
        return DemandHistory(3600.0, step, {})

    cfg = actioner_config(tmp_path)
    pool = Pool(cfg, hosts, {h: Conn({}) for h in hosts})
    built = SnapshotBuilder(
        cfg, pool, cpu_query=cpu_query, history_query=history, reader=SignallingReader(pool)
    )
    with pytest.raises(SnapshotError, match="runs on both hv1 and hv2"):
        built.build()
    assert answered.is_set()
    assert asked == []
    assert not [t for t in threading.enumerate() if t.name.startswith("snapshot-prometheus")]


def test_libvirt_samples_count_vcpu_wait_as_demand(tmp_path):
    # A starved guest: it runs 0.3 of a core and waits 0.6 more; what it wants is 0.9.
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [], "hv3": []}
    conns = {"hv1": Conn({"a": 0.3}, waits={"a": 0.6}), "hv2": Conn({}), "hv3": Conn({})}
    view = builder(tmp_path, hosts, conns).build()
    (domain,) = view.snapshot.domains
    assert domain.cpu_used == pytest.approx(0.9, abs=0.05)


class CountingPool(Pool):
    """Counts the hosts read at once; the first ``bound`` readers wait for each other at a barrier."""

    def __init__(self, config, hosts, bound):
        super().__init__(config, hosts, {})
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.barrier = threading.Barrier(bound)
        self.calls = 0

    def capacity(self, host):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.calls += 1
            first_round = self.calls <= self.barrier.parties
        try:
            if first_round:
                # Passes only if `bound` hosts are being read at the same moment.
                self.barrier.wait(timeout=30)
            return super().capacity(host)
        finally:
            with self.lock:
                self.inside -= 1


def test_hosts_are_read_concurrently_up_to_the_configured_bound(tmp_path):
    names = [f"hv{i:02d}" for i in range(12)]
    cfg = actioner_config(
        tmp_path,
        hosts={n: f"qemu+tcp://192.0.2.{i + 1}/system" for i, n in enumerate(names)},
        execution={"snapshot_connections": 4},
    )
    hosts = {n: [facts(f"{n}-a", n)] for n in names}
    pool = CountingPool(cfg, hosts, bound=4)
    usage = {f"{n}-a": 0.1 for n in names}
    view = SnapshotBuilder(cfg, pool, cpu_query=lambda _w: usage, reader=Reader(pool)).build()
    assert pool.most == 4
    assert [h.name for h in view.snapshot.hosts] == names
    assert len(view.snapshot.domains) == 12


def test_a_domain_on_two_hosts_is_still_refused_when_read_concurrently(tmp_path):
    hosts = {"hv1": [facts("a", "hv1")], "hv2": [facts("a", "hv2")], "hv3": []}
    with pytest.raises(SnapshotError, match="runs on both hv1 and hv2"):
        builder(tmp_path, hosts, {}, cpu_query=lambda _w: {}).build()


def test_the_reader_keeps_the_domains_of_the_hosts_read_and_their_shells(tmp_path):
    hosts = {
        "hv1": [facts("a", "hv1"), facts("shell", "hv1", running=False)],
        "hv2": [facts("shell", "hv2")],
        "hv3": [facts("c", "hv3")],
    }
    usage = {"a": 0.1, "shell": 0.1}
    b = builder(tmp_path, hosts, {}, cpu_query=lambda _w: usage, down=("hv3",))
    b.build()
    # hv3 is unreachable: its domains are forgotten (read again, and parsed again, when it is back).
    assert b.reader.retained == ["a", "shell", "shell"]


def test_private_links_are_matched_once_per_distinct_pair_and_kept_for_the_next_snapshot(tmp_path):
    hosts = {
        "hv1": [
            facts("a", "hv1", bridges=("lan1", "br0")),
            facts("b", "hv1", bridges=("lan1", "br0")),
        ],
        "hv2": [facts("c", "hv2", bridges=("lan2",))],
        "hv3": [],
    }
    b = builder(tmp_path, hosts, {}, cpu_query=lambda _w: dict.fromkeys("abc", 0.1))
    matched = []
    links = b.pool.private_links

    def counted(f):
        matched.append(f.name)
        return links(f)

    b.pool.private_links = counted
    first = b.build().snapshot
    assert sorted(matched) == ["a", "c"]  # b shares a's pair
    hosts["hv2"][0] = facts("c", "hv2", bridges=("lan3",))
    second = b.build().snapshot
    assert sorted(matched) == ["a", "c", "c"]  # only the new pair is matched
    assert {d.name: d.private_networks for d in first.domains} == {
        "a": ("lan1",),
        "b": ("lan1",),
        "c": ("lan2",),
    }
    assert {d.name: d.private_networks for d in second.domains}["c"] == ("lan3",)
