"""The snapshot's host reader: bulk libvirt reads and the definition cache, against fake connections."""

from __future__ import annotations

from dataclasses import dataclass, field

import libvirt
import pytest

from tests.actioner_fixtures import actioner_config
from virtbalance import domain_metadata
from virtbalance.actioner.domain_reader import BULK_STATS, DefinitionCache, DomainReader
from virtbalance.actioner.libvirt_hosts import HostPool
from virtbalance.domain_metadata import Placement


def xml(name: str, *bridges: str, placement: Placement | None = None, network: str = "") -> str:
    links = "".join(f'<interface type="bridge"><source bridge="{b}"/></interface>' for b in bridges)
    if network:
        links += f'<interface type="network"><source network="{network}"/></interface>'
    meta = ""
    if placement is not None:
        element = placement.to_xml().replace(
            "<placement",
            f'<virtbalance:placement xmlns:virtbalance="{domain_metadata.NAMESPACE}"',
            1,
        )
        meta = f"<metadata>{element}</metadata>"
    return f"<domain><name>{name}</name>{meta}<devices>{links}</devices></domain>"


def no_domain(name: str) -> libvirt.libvirtError:
    error = libvirt.libvirtError(f"Domain not found: {name}")
    error.err = (libvirt.VIR_ERR_NO_DOMAIN, 0, f"Domain not found: {name}")
    return error


@dataclass
class Dom:
    """One domain; counts the per-domain calls made of it."""

    domain_name: str
    xml: str
    state_reason: tuple[int, int] = (1, 1)
    vcpus: int = 2
    memory_kib: int = 1048576
    persistent: bool = True
    gone: bool = False
    calls: list[str] = field(default_factory=list)

    def name(self):
        return self.domain_name

    def UUIDString(self):
        return f"uuid-{self.domain_name}"

    def XMLDesc(self, flags):
        self.calls.append("XMLDesc")
        if self.gone:
            raise no_domain(self.domain_name)
        return self.xml

    def state(self):
        self.calls.append("state")
        return list(self.state_reason)

    def info(self):
        self.calls.append("info")
        return [self.state_reason[0], 4194304, self.memory_kib, self.vcpus, 0]

    def isActive(self):
        self.calls.append("isActive")
        return 1

    def isPersistent(self):
        self.calls.append("isPersistent")
        return int(self.persistent)

    def stats(self, groups: int, sized: bool) -> dict[str, int]:
        out = {}
        if groups & libvirt.VIR_DOMAIN_STATS_STATE:
            out["state.state"], out["state.reason"] = self.state_reason
        if sized and groups & libvirt.VIR_DOMAIN_STATS_BALLOON:
            out["balloon.current"] = self.memory_kib
        if sized and groups & libvirt.VIR_DOMAIN_STATS_VCPU:
            out["vcpu.current"] = self.vcpus
        return out


class Conn:
    """A host's active domains; ``sized`` False is a driver without balloon and vCPU stats (test driver)."""

    def __init__(self, doms, *, sized=True):
        self.doms = doms
        self.sized = sized
        self.requests: list[tuple[str, int, int]] = []

    def listAllDomains(self, flags):
        self.requests.append(("listAllDomains", flags, 0))
        if flags & libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT:
            return [d for d in self.doms if d.persistent]
        return list(self.doms)

    def getAllDomainStats(self, stats, flags):
        self.requests.append(("getAllDomainStats", stats, flags))
        return [(d, d.stats(stats, self.sized)) for d in self.doms]


class Pool(HostPool):
    def __init__(self, config, conns):
        super().__init__(config)
        self.conns = conns

    def connection(self, name):
        return self.conns[name]


@pytest.fixture
def doms():
    return [
        Dom("web1", xml("web1", "lan1", "br0"), vcpus=4),
        Dom("db1", xml("db1", placement=Placement(group="db", pinned=True), network="net-db")),
        # An incoming migration's shell: paused for migration and not yet persistent.
        Dom(
            "shell",
            xml("shell", "lan1"),
            state_reason=(3, libvirt.VIR_DOMAIN_PAUSED_MIGRATION),
            persistent=False,
        ),
    ]


@pytest.mark.parametrize("sized", [True, False], ids=["bulk-sizes", "sizes-per-domain"])
def test_bulk_reads_give_the_same_facts_as_the_per_domain_reads(tmp_path, doms, sized):
    pool = Pool(actioner_config(tmp_path), {"hv1": Conn(doms, sized=sized)})
    assert DomainReader(pool).domains("hv1") == pool.domains("hv1")


def test_every_fact_but_the_xml_comes_from_two_bulk_calls(tmp_path, doms):
    conn = Conn(doms)
    facts = DomainReader(Pool(actioner_config(tmp_path), {"hv1": conn})).domains("hv1")
    assert [d.calls for d in doms] == [["XMLDesc"]] * 3
    assert conn.requests == [
        (
            "listAllDomains",
            libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE | libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT,
            0,
        ),
        (
            "getAllDomainStats",
            BULK_STATS,
            libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
            | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT,
        ),
    ]
    by_name = {f.name: f for f in facts}
    assert (by_name["web1"].vcpus, by_name["web1"].memory_bytes) == (4, 1048576 * 1024)
    assert by_name["web1"].bridges == ("lan1", "br0")
    assert by_name["db1"].placement == Placement(group="db", pinned=True)
    assert by_name["db1"].networks == ("net-db",)
    assert [f.name for f in facts if not f.running_here] == ["shell"]


def test_sizes_are_asked_per_domain_only_where_the_driver_leaves_them_out(tmp_path, doms):
    facts = DomainReader(Pool(actioner_config(tmp_path), {"hv1": Conn(doms, sized=False)})).domains(
        "hv1"
    )
    assert [d.calls for d in doms] == [["XMLDesc", "info"]] * 3
    assert [f.vcpus for f in facts] == [4, 2, 2]


def test_a_domain_gone_while_read_is_skipped_and_other_errors_raise(tmp_path, doms):
    reader = DomainReader(Pool(actioner_config(tmp_path), {"hv1": Conn(doms)}))
    doms[1].gone = True
    assert [f.name for f in reader.domains("hv1")] == ["web1", "shell"]
    error = libvirt.libvirtError("internal error")
    error.err = (libvirt.VIR_ERR_INTERNAL_ERROR, 0, "internal error")

    def broken(flags):
        raise error

    doms[0].XMLDesc = broken
    with pytest.raises(libvirt.libvirtError, match="internal error"):
        reader.domains("hv1")


def test_an_unchanged_xml_is_parsed_once(tmp_path, doms):
    reader = DomainReader(Pool(actioner_config(tmp_path), {"hv1": Conn(doms)}))
    first = reader.domains("hv1")
    second = reader.domains("hv1")
    assert second == first
    assert (reader.cache.parsed, reader.cache.reused) == (3, 3)


def test_every_change_of_the_xml_is_parsed_again(tmp_path, doms):
    reader = DomainReader(Pool(actioner_config(tmp_path), {"hv1": Conn(doms)}))
    reader.domains("hv1")
    doms[0].xml = xml("web1", "lan1", "br0", placement=Placement(pinned=True))  # a new pin
    doms[1].xml = xml("db1", "lan7", network="net-db")  # hot-plugged link, metadata removed
    by_name = {f.name: f for f in reader.domains("hv1")}
    assert by_name["web1"].placement.pinned is True
    assert (by_name["db1"].bridges, by_name["db1"].placement) == (("lan7",), Placement())
    assert (reader.cache.parsed, reader.cache.reused) == (5, 1)


def test_live_state_and_sizes_are_never_taken_from_the_cache(tmp_path, doms):
    reader = DomainReader(Pool(actioner_config(tmp_path), {"hv1": Conn(doms)}))
    reader.domains("hv1")
    doms[0].state_reason = (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER)
    doms[0].memory_kib, doms[0].vcpus = 524288, 1
    doms[2].persistent = True  # the migration finished (PERSIST_DEST)
    doms[2].state_reason = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_MIGRATED)
    by_name = {f.name: f for f in reader.domains("hv1")}
    web1 = by_name["web1"]
    assert (web1.state, web1.memory_bytes, web1.vcpus) == (
        libvirt.VIR_DOMAIN_PAUSED,
        524288 * 1024,
        1,
    )
    assert by_name["shell"].running_here
    assert reader.cache.reused == 3


def test_the_cache_forgets_domains_not_retained():
    cache = DefinitionCache()
    a = cache.definition("ua", xml("a", "lan1"))
    cache.definition("ub", xml("b", "lan2"))
    cache.retain(["ua"])
    assert len(cache) == 1
    assert cache.definition("ua", xml("a", "lan1")) is a
    cache.definition("ub", xml("b", "lan2"))
    assert (cache.parsed, cache.reused) == (3, 1)


def test_the_same_xml_under_another_uuid_is_its_own_entry():
    # A domain undefined and defined again with a new UUID, or a clone with the same XML body.
    cache = DefinitionCache()
    cache.definition("u1", xml("a", "lan1"))
    cache.definition("u2", xml("a", "lan1"))
    assert (len(cache), cache.parsed) == (2, 2)
