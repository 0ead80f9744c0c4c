"""HostPool helpers: private link patterns."""

from __future__ import annotations

from tests.actioner_fixtures import actioner_config
from virtbalance.actioner.libvirt_hosts import DomainFacts, HostPool
from virtbalance.domain_metadata import Placement


def test_private_links_follow_the_patterns(tmp_path):
    pool = HostPool(
        actioner_config(
            tmp_path, execution={"private_bridges": ["lan*", "net*"], "shared_bridges": ["lanbr0"]}
        )
    )
    facts = DomainFacts(
        name="web1",
        uuid="u",
        host="hv1",
        active=True,
        persistent=True,
        state=1,
        reason=1,
        vcpus=1,
        memory_bytes=1,
        bridges=("lan11", "br0", "lanbr0"),
        networks=("net-db", "default"),
        placement=Placement(),
    )
    assert pool.private_bridges(facts) == ("lan11",)
    assert pool.private_networks(facts) == ("net-db",)
    assert pool.private_links(facts) == ("lan11", "net-db")
