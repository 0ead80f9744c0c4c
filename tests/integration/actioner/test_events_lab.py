"""libvirt events from real hypervisors (the lab's libvirtd and QEMU) invalidate the cached definitions.

The test driver cannot migrate: here a live migration, and a metadata change on a running QEMU guest,
must reach the actioner's watch and make the next snapshot read that domain again while every other
domain stays cached. (The lab's guests have no PCI hot-plug, so a NIC hot-plug is shown with fakes only,
tests/unit/actioner/test_domain_events.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt
import pytest

from tests.actioner_fixtures import actioner_config
from tests.waiting import wait_until
from virtbalance.actioner import event_loop
from virtbalance.actioner.domain_events import DomainWatch
from virtbalance.actioner.domain_reader import DomainReader
from virtbalance.actioner.libvirt_hosts import DomainFacts, HostPool
from virtbalance.domain_metadata import NAMESPACE, PREFIX, Placement

pytestmark = [pytest.mark.integration, pytest.mark.lab]


class Watched:
    """The actioner's reads of every lab host, through connections opened under the event loop."""

    def __init__(self, lab, tmp_path: Path) -> None:
        event_loop.DEFAULT.start()
        self.watch = DomainWatch(event_loop.DEFAULT)
        config = actioner_config(tmp_path, hosts={h.name: h.libvirt_uri for h in lab.hosts})
        self.pool = HostPool(config, self.watch)
        self.reader = DomainReader(self.pool)
        self.hosts = [h.name for h in lab.hosts]

    def read(self) -> dict[str, DomainFacts]:
        facts = {}
        for host in self.hosts:
            facts.update({f.name: f for f in self.reader.domains(host) if f.running_here})
        return facts

    def await_event(self, uuid: str, change: Callable[[], object]) -> None:
        """Make ``change`` and wait until an event about ``uuid`` reached the watch."""
        before = self.watch.events(uuid)
        change()
        wait_until(
            f"a libvirt event for {uuid}", lambda: self.watch.events(uuid) != before, 30, 0.05
        )


@pytest.fixture
def watched(fresh_lab, tmp_path: Path) -> Iterator[Watched]:
    w = Watched(fresh_lab, tmp_path)
    yield w
    w.pool.close()


def test_a_metadata_change_on_a_real_hypervisor_invalidates_only_that_guest(fresh_lab, watched):
    first = watched.read()
    cache = watched.reader.cache
    unread = cache.unread
    assert watched.read() == first
    assert cache.unread - unread == len(first)  # nothing changed: no XML read at all
    assert first["batch1"].placement == Placement()
    dom = watched.pool.connection("hv1").lookupByName("batch1")
    try:
        watched.await_event(
            first["batch1"].uuid,
            lambda: dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                Placement(pinned=True).to_xml(),
                PREFIX,
                NAMESPACE,
                libvirt.VIR_DOMAIN_AFFECT_LIVE,
            ),
        )
        unread = cache.unread
        after = watched.read()
        assert after["batch1"].placement.pinned is True
        assert cache.unread - unread == len(first) - 1
    finally:
        dom.setMetadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            None,
            None,
            NAMESPACE,
            libvirt.VIR_DOMAIN_AFFECT_LIVE,
        )


def test_a_live_migration_invalidates_the_guest_on_both_hosts(fresh_lab, watched):
    first = watched.read()
    assert first["batch3"].host == "hv3"
    cache = watched.reader.cache
    try:
        watched.await_event(first["batch3"].uuid, lambda: fresh_lab.migrate("batch3", "hv2"))
        unread = cache.unread
        after = watched.read()
        assert after["batch3"].host == "hv2"
        assert cache.unread - unread == len(first) - 1  # every other guest stayed cached
        assert after["batch3"].placement == first["batch3"].placement
    finally:
        fresh_lab.reset()
