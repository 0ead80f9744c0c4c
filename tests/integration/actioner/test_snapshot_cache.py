"""The snapshot's bulk reads and cached definitions against real libvirt code (the test driver, no lab).

After every change a snapshot built by the long-lived builder (definitions parsed on earlier alerts)
must equal one built from scratch by the per-domain reads (``HostPool.domains``, as before the cache).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import libvirt
import pytest

from tests.actioner_fixtures import actioner_config
from tests.waiting import wait_until
from virtbalance import domain_metadata
from virtbalance.actioner import event_loop
from virtbalance.actioner.domain_events import DomainWatch
from virtbalance.actioner.domain_reader import DomainReader
from virtbalance.actioner.libvirt_hosts import DomainFacts, HostPool
from virtbalance.actioner.snapshot_builder import SnapshotBuilder
from virtbalance.domain_metadata import Placement
from virtbalance.snapshot import DomainState, Snapshot

HOSTS = ("hv1", "hv2")
MiB = 1024 * 1024


def domain_xml(name: str, uuid: str, bridge: str, *, memory_mib: int = 512, vcpus: int = 1) -> str:
    return (
        f'<domain type="test"><name>{name}</name><uuid>{uuid}</uuid>'
        f"<memory>{memory_mib * 1024}</memory><vcpu>{vcpus}</vcpu><os><type>hvm</type></os>"
        f'<devices><interface type="bridge"><source bridge="{bridge}"/></interface></devices>'
        "</domain>"
    )


def uuid_of(host: int, index: int) -> str:
    return f"00000000-0000-0000-{host:04d}-{index:012d}"


class PerDomainReads:
    """The reads the snapshot made before the cache: every fact asked of every domain."""

    def __init__(self, pool: HostPool) -> None:
        self.pool = pool

    def domains(self, host: str) -> list[DomainFacts]:
        return self.pool.domains(host)

    def retain(self, uuids: Collection[str]) -> None:
        pass


class Cluster:
    """Two test-driver hosts behind one HostPool; changes go through the pool's own connections
    (each ``test:///file`` connection is a private copy of the file's world)."""

    def __init__(self, tmp_path: Path) -> None:
        hosts = {}
        for h, name in enumerate(HOSTS, 1):
            node = tmp_path / f"{name}.xml"
            body = "".join(
                domain_xml(f"{name}-d{i}", uuid_of(h, i), f"lan{h}{i // 2}") for i in range(4)
            )
            node.write_text(f"<node>{body}</node>\n")
            hosts[name] = {"uri": f"test://{node}", "cpus": 16, "memory": 64 * 1024 * MiB}
        self.config = actioner_config(
            tmp_path,
            hosts=hosts,
            prometheus={"fallback_to_libvirt": False},
            execution={"private_bridges": ["lan*"]},
        )
        self.pool = HostPool(self.config)
        self.reader = DomainReader(self.pool)
        self.builder = self._builder(self.reader)

    def _builder(self, reader: DomainReader | PerDomainReads) -> SnapshotBuilder:
        return SnapshotBuilder(
            self.config, self.pool, cpu_query=lambda _w: {}, reader=reader, clock=lambda: 0.0
        )

    def conn(self, host: str) -> libvirt.virConnect:
        return self.pool.connection(host)

    def snapshot(self) -> Snapshot:
        """The warm builder's snapshot, after checking it equals a from-scratch per-domain one."""
        cached = self.builder.build()
        fresh = self._builder(PerDomainReads(self.pool)).build()
        assert cached.snapshot == fresh.snapshot
        assert cached.facts == fresh.facts
        return cached.snapshot


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.pool.close()


def domain(snapshot: Snapshot, name: str) -> DomainState:
    (found,) = [d for d in snapshot.domains if d.name == name]
    return found


def test_unchanged_domains_are_not_parsed_again(cluster):
    first = cluster.snapshot()
    assert cluster.reader.cache.parsed == 8
    second = cluster.snapshot()
    assert second == first
    assert (cluster.reader.cache.parsed, cluster.reader.cache.reused) == (8, 8)


def test_a_pin_set_on_a_running_domain_shows_in_the_next_snapshot(cluster):
    assert not domain(cluster.snapshot(), "hv1-d0").pinned
    cluster.conn("hv1").lookupByName("hv1-d0").setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT,
        Placement(group="db", pinned=True).to_xml(),
        domain_metadata.PREFIX,
        domain_metadata.NAMESPACE,
        libvirt.VIR_DOMAIN_AFFECT_LIVE,
    )
    after = domain(cluster.snapshot(), "hv1-d0")
    assert (after.pinned, after.group) == (True, "db")


def test_a_redefinition_shows_once_the_domain_restarts_with_it(cluster):
    assert domain(cluster.snapshot(), "hv1-d1").private_networks == ("lan10",)
    conn = cluster.conn("hv1")
    conn.defineXML(domain_xml("hv1-d1", uuid_of(1, 1), "lan19", memory_mib=1024, vcpus=2))
    # The running domain keeps its live definition until it restarts, in libvirt and in the snapshot.
    assert domain(cluster.snapshot(), "hv1-d1").private_networks == ("lan10",)
    dom = conn.lookupByName("hv1-d1")
    dom.destroy()
    dom.create()
    after = domain(cluster.snapshot(), "hv1-d1")
    assert (after.private_networks, after.memory_bytes, after.vcpus) == (("lan19",), 1024 * MiB, 2)


def test_live_memory_and_vcpu_changes_show_without_a_new_definition(cluster):
    cluster.snapshot()
    dom = cluster.conn("hv2").lookupByName("hv2-d3")
    dom.setMemoryFlags(256 * 1024, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    after = domain(cluster.snapshot(), "hv2-d3")
    assert after.memory_bytes == 256 * MiB
    assert cluster.snapshot().host("hv2").memory_used_bytes == (3 * 512 + 256) * MiB


def test_an_undefined_running_domain_is_transient_and_a_stopped_one_is_gone(cluster):
    cluster.snapshot()
    conn = cluster.conn("hv1")
    conn.lookupByName("hv1-d2").undefine()
    view = cluster.builder.build()
    assert view.facts["hv1-d2"].persistent is False
    assert view.facts["hv1-d3"].persistent is True
    conn.lookupByName("hv1-d2").destroy()  # transient: stopping it removes it
    names = {d.name for d in cluster.snapshot().domains}
    assert "hv1-d2" not in names
    assert len(names) == 7
    assert len(cluster.reader.cache) == 7  # its parsed definition is forgotten


def test_a_domain_moved_to_another_host_shows_there_with_its_links(cluster):
    # The test driver cannot migrate between connections: the move is the same domain (UUID, XML)
    # leaving one host and starting on the other, which is what the snapshot sees of a migration.
    cluster.snapshot()
    source = cluster.conn("hv1").lookupByName("hv1-d0")
    xml = source.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    source.destroy()
    source.undefine()
    assert "hv1-d0" not in {d.name for d in cluster.snapshot().domains}
    cluster.conn("hv2").createXML(xml, 0)
    moved = domain(cluster.snapshot(), "hv1-d0")
    assert (moved.host, moved.private_networks) == ("hv2", ("lan10",))


def test_a_suspended_domain_and_a_new_one_show_in_the_next_snapshot(cluster):
    cluster.snapshot()
    conn = cluster.conn("hv2")
    conn.lookupByName("hv2-d1").suspend()
    conn.createXML(domain_xml("new", uuid_of(9, 9), "shared0", vcpus=3), 0)
    view = cluster.builder.build()
    assert view.facts["hv2-d1"].state == libvirt.VIR_DOMAIN_PAUSED
    assert domain(cluster.snapshot(), "new").vcpus == 3


# --- libvirt events vouching for the cached definitions (the test driver raises them) -------------


class EventedCluster(Cluster):
    """The same two hosts, their connections opened under the process's libvirt event loop."""

    def __init__(self, tmp_path: Path) -> None:
        event_loop.DEFAULT.start()  # before the first connection, as the actioner does
        self.watch = DomainWatch(event_loop.DEFAULT)
        super().__init__(tmp_path)
        self.pool.watch = self.watch  # no connection is open yet
        self.reader = DomainReader(self.pool)
        self.builder = self._builder(self.reader)

    def await_event(self, host: str, name: str, change: Callable[[], object]) -> None:
        """Make ``change`` and wait until the watch has had the event it raises."""
        uuid = self.conn(host).lookupByName(name).UUIDString()
        before = self.watch.events(uuid)
        change()
        wait_until(f"a libvirt event for {name}", lambda: self.watch.events(uuid) != before, 10)


@pytest.fixture
def evented(tmp_path: Path) -> Iterator[EventedCluster]:
    c = EventedCluster(tmp_path)
    yield c
    c.pool.close()


def test_with_events_an_unchanged_cluster_is_read_without_any_xml(evented):
    first = evented.snapshot()
    cache = evented.reader.cache
    assert (cache.parsed, cache.unread) == (8, 0)
    assert evented.snapshot() == first
    assert (cache.parsed, cache.reused, cache.unread) == (8, 0, 8)


def test_with_events_set_metadata_on_a_running_domain_invalidates_only_its_entry(evented):
    evented.snapshot()
    dom = evented.conn("hv1").lookupByName("hv1-d0")
    evented.await_event(
        "hv1",
        "hv1-d0",
        lambda: dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            Placement(anti_affinity="db", pinned=True).to_xml(),
            domain_metadata.PREFIX,
            domain_metadata.NAMESPACE,
            libvirt.VIR_DOMAIN_AFFECT_LIVE,
        ),
    )
    cache = evented.reader.cache
    before = (cache.parsed, cache.unread)
    after = domain(evented.snapshot(), "hv1-d0")  # also equal to a from-scratch read
    assert (after.pinned, after.anti_affinity) == (True, "db")
    assert (cache.parsed - before[0], cache.unread - before[1]) == (1, 7)


def test_with_events_a_restart_with_a_new_definition_is_read_again(evented):
    evented.snapshot()
    conn = evented.conn("hv2")
    conn.defineXML(domain_xml("hv2-d1", uuid_of(2, 1), "lan29"))
    dom = conn.lookupByName("hv2-d1")
    evented.await_event("hv2", "hv2-d1", dom.destroy)
    dom.create()
    assert domain(evented.snapshot(), "hv2-d1").private_networks == ("lan29",)


def test_with_events_a_suspend_and_resume_are_seen_and_the_rest_stays_cached(evented):
    evented.snapshot()
    dom = evented.conn("hv2").lookupByName("hv2-d2")
    evented.await_event("hv2", "hv2-d2", dom.suspend)
    cache = evented.reader.cache
    unread = cache.unread
    view = evented.builder.build()
    assert view.facts["hv2-d2"].state == libvirt.VIR_DOMAIN_PAUSED
    assert cache.unread - unread == 7
    evented.await_event("hv2", "hv2-d2", dom.resume)
    assert evented.builder.build().facts["hv2-d2"].state == libvirt.VIR_DOMAIN_RUNNING


def test_with_events_a_reopened_connection_is_read_in_full(evented):
    evented.snapshot()
    evented.pool.drop("hv1")  # as after a dead connection: the next read opens a new one
    cache = evented.reader.cache
    unread = cache.unread
    evented.snapshot()
    assert cache.unread - unread == 4  # hv2's four; hv1's were read again
