"""Remembered domain shapes and rendered text give what a fresh exporter gives, scrape after scrape."""

from __future__ import annotations

import copy
import dataclasses
import random
import uuid
from collections.abc import Callable, Iterator

import libvirt
import pytest
from prometheus_client import generate_latest

from tests.exporter_fixtures import fake_collector, reference_text, registry_of
from tests.fixtures.exporter.fake_libvirt import (
    FakeClock,
    FakeConnection,
    recorded_host,
)
from virtbalance.exporter.domain_families import DomainFamilies
from virtbalance.exporter.exposition import render
from virtbalance.exporter.labels import LabelCache
from virtbalance.exporter.main import build_app
from virtbalance.exporter.rendering import Renderer
from virtbalance.exporter.source import DomainRecord, LibvirtSource
from virtbalance.exporter.topology import TopologyCache

# Label values no exporter should choke on: quotes, backslashes, newlines, %, non-ASCII.
HOSTILE = ('vm "quoted"', "back\\slash", "new\nline", "100%d %s", "é漢😀", "")


def recorded_records() -> list[DomainRecord]:
    clock = FakeClock()
    conn = FakeConnection(recorded_host())
    source = LibvirtSource(
        connect=lambda: conn, clock=clock, timeout=5.0, topology_cache=TopologyCache(60.0)
    )
    data = source.scrape()
    source.close()
    assert data.up and len(data.domains) == 6
    return data.domains


def _copy_device(stats: dict[str, object], group: str, new: int, path: str) -> None:
    for key in [k for k in stats if k.startswith(f"{group}.0.")]:
        stats[f"{group}.{new}." + key.removeprefix(f"{group}.0.")] = stats[key]
    stats[f"{group}.{new}.{'path' if group == 'block' else 'name'}"] = path
    stats[f"{group}.count"] = new + 1


Mutation = Callable[[random.Random, list[DomainRecord], DomainRecord], None]


def counters_grow(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    for key, value in r.stats.items():
        if type(value) is int and key.endswith((".bytes", ".reqs", ".time", ".times", ".pkts")):
            r.stats[key] = value + rng.choice([1, 999_999, 10**9, 2**53])


def renamed(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    r.name = rng.choice(HOSTILE) + str(rng.randrange(3))


def disk_plugged(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    _copy_device(r.stats, "block", int(r.stats.get("block.count", 0)), rng.choice(HOSTILE))


def disk_unplugged(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    if r.stats.get("block.count"):
        r.stats["block.count"] -= 1  # the keys of the last disk stay: libvirt's count rules


def disk_swapped(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    if r.stats.get("block.count"):
        r.stats["block.0.path"] = rng.choice(HOSTILE)  # same count, another image


def nic_plugged(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    if "net.0.name" in r.stats:
        _copy_device(r.stats, "net", int(r.stats["net.count"]), rng.choice(["vnet99", *HOSTILE]))


def vcpus_changed(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    r.stats["vcpu.current"] = rng.choice([1, int(r.stats["vcpu.maximum"])])


def paused(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    r.stats["state.state"] = rng.choice([libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_RUNNING])


def key_lost(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    # NOWAIT during a job: some fields are missing for a scrape.
    for key in rng.sample(sorted(r.stats), 3):
        del r.stats[key]


def memory_stat_toggled(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    # A field no flag depends on comes or goes: only the shape's absent keys notice.
    if r.stats.pop("balloon.swap_in", None) is None:
        r.stats["balloon.swap_in"] = rng.randrange(10**6)


def balloon_driver(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    if "balloon.usable" in r.stats and rng.random() < 0.5:
        del r.stats["balloon.usable"]
    else:
        r.stats.update(
            {
                "balloon.available": rng.choice([0, 2_000_000]),
                "balloon.usable": 1_500_000,
                "balloon.unused": 900_000,
            }
        )


def dirty_rate(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    r.stats["dirtyrate.calc_status"] = rng.choice([1, 2])
    r.stats["dirtyrate.megabytes_per_second"] = rng.randrange(100)


def migrating(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    r.migrating = rng.choice([True, False, None])
    if not r.migrating or rng.random() < 0.2:
        r.job = None
        return
    job: dict[str, object] = {"type": 2, "operation": 5, "time_elapsed": rng.randrange(10**5)}
    for key in ("memory_iteration", "memory_bps", "data_remaining", "downtime"):
        if rng.random() < 0.7:
            job[key] = rng.randrange(1, 10**9)
    if rng.random() < 0.7:
        job.update(memory_page_size=rng.choice([0, 4096]), memory_dirty_rate=rng.randrange(10**4))
    r.job = job


def timed_out(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    r.timed_out = not r.timed_out


def xml_unread(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    r.topology = None


def shut_off(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    r.active, r.stats, r.domain_id = False, {}, -1


def gone(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    records.remove(r)


def cloned(rng: random.Random, records: list[DomainRecord], r: DomainRecord) -> None:
    clone = dataclasses.replace(
        r, stats=dict(r.stats), uuid=str(uuid.UUID(int=rng.getrandbits(128)))
    )
    records.insert(rng.randrange(len(records) + 1), clone)


MUTATIONS: tuple[Mutation, ...] = (
    counters_grow,
    renamed,
    disk_plugged,
    disk_unplugged,
    disk_swapped,
    nic_plugged,
    vcpus_changed,
    paused,
    key_lost,
    memory_stat_toggled,
    balloon_driver,
    dirty_rate,
    migrating,
    timed_out,
    xml_unread,
    shut_off,
    gone,
    cloned,
)


@pytest.mark.parametrize("seed", range(6))
def test_remembered_families_and_text_match_a_fresh_exporter(seed: int):
    rng = random.Random(seed)
    records = recorded_records()
    labels = LabelCache()
    remembered = DomainFamilies(labels.get)
    renderer = Renderer()
    for step in range(40):
        records = [
            dataclasses.replace(r, stats=dict(r.stats), job=copy.copy(r.job)) for r in records
        ]
        # Most scrapes change only values, as on a steady host; some change structure too.
        counters_grow(rng, records, rng.choice(records))
        if step % 3 == 0:
            for _ in range(rng.randrange(1, 4)):
                mutation, target = rng.choice(MUTATIONS), rng.choice(records)
                if target.active or mutation in (gone, cloned):
                    mutation(rng, records, target)
                if not records:
                    records = recorded_records()
        active = [r for r in records if r.active]
        inactive = [r for r in records if not r.active]
        families = remembered.build(active, inactive)
        labels.retain({r.uuid for r in records})
        fresh = DomainFamilies(LabelCache().get).build(active, inactive)
        expected = render(fresh)
        assert render(families) == expected, f"step {step}"
        assert renderer.render(families) == expected, f"step {step}"
        assert expected == reference_text(fresh)


def test_a_steady_scrape_reuses_every_shape_and_the_plan():
    records = recorded_records()
    labels = LabelCache()
    families = DomainFamilies(labels.get)
    first = render(families.build(records, []))
    shapes, plan = dict(families._shapes), families._plan
    for record in records:
        record.stats = dict(record.stats)
        record.stats["cpu.time"] += 10**9
    second = render(families.build(records, []))
    assert families._plan is plan
    assert all(families._shapes[uuid] is shape for uuid, shape in shapes.items())
    assert first != second  # the values moved, the structure did not


def test_served_scrapes_match_the_collector_path_while_the_host_changes():
    # The endpoint renders remembered text; prometheus_client renders what collect() yields.
    clock = FakeClock()  # frozen: stage durations are 0, so both texts are deterministic
    conn = FakeConnection(recorded_host())
    collector = fake_collector(lambda: conn, clock=clock)
    app = build_app(collector, "/metrics")
    registry = registry_of(collector)

    def changes() -> Iterator[None]:
        yield  # the first scrape
        for dom in conn.domains:
            dom.info_values[4] += 10**9  # CPU time moves
        yield
        yield  # nothing changed: every family's text is reused
        stats = conn.domains[0].stats
        _copy_device(stats, "block", int(stats["block.count"]), 'hot "plugged"\n%d.qcow2')
        yield
        conn.domains[1]._name = "renamed é 100%"
        yield
        conn.domains.pop()
        yield

    served = []
    for _ in changes():
        body = b"".join(app({"PATH_INFO": "/metrics"}, lambda status, headers: None))
        assert body == generate_latest(registry)
        served.append(body)
    assert served[1] == served[2] != served[0]
    assert b'hot \\"plugged\\"\\n%d.qcow2' in served[3]
    assert b"renamed \xc3\xa9 100%" in served[4]
