"""HostPool helpers: resuming a domain stranded by an interrupted migration, private link patterns."""

from __future__ import annotations

import libvirt
import pytest

from actioner.libvirt_hosts import DomainFacts, HostPool
from tests.actioner_fixtures import actioner_config
from virtbalance.domain_metadata import Placement


class Dom:
    def __init__(self, state, reason, job):
        self._state = (state, reason)
        self._job = job
        self.resumed = False

    def state(self):
        return list(self._state)

    def jobInfo(self):
        return [self._job] + [0] * 11

    def resume(self):
        self.resumed = True


class Conn:
    def __init__(self, dom):
        self.dom = dom

    def lookupByName(self, name):
        return self.dom


def pool_with(tmp_path, dom, **config):
    pool = HostPool(actioner_config(tmp_path, **config))
    pool.connection = lambda host: Conn(dom)  # type: ignore[method-assign]
    return pool


@pytest.mark.parametrize(
    ("state", "reason", "job", "resumed"),
    [
        (
            libvirt.VIR_DOMAIN_PAUSED,
            libvirt.VIR_DOMAIN_PAUSED_MIGRATION,
            libvirt.VIR_DOMAIN_JOB_NONE,
            True,
        ),
        (
            libvirt.VIR_DOMAIN_PAUSED,
            libvirt.VIR_DOMAIN_PAUSED_MIGRATION,
            libvirt.VIR_DOMAIN_JOB_UNBOUNDED,
            False,
        ),
        (
            libvirt.VIR_DOMAIN_PAUSED,
            libvirt.VIR_DOMAIN_PAUSED_USER,
            libvirt.VIR_DOMAIN_JOB_NONE,
            False,
        ),
        (
            libvirt.VIR_DOMAIN_RUNNING,
            libvirt.VIR_DOMAIN_RUNNING_MIGRATED,
            libvirt.VIR_DOMAIN_JOB_NONE,
            False,
        ),
    ],
    ids=["stranded", "still-migrating", "paused-by-operator", "running"],
)
def test_resume_only_what_an_interrupted_migration_left_paused(
    tmp_path, state, reason, job, resumed
):
    dom = Dom(state, reason, job)
    assert pool_with(tmp_path, dom).resume_if_stranded("hv1", "web1") is resumed
    assert dom.resumed is resumed


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
