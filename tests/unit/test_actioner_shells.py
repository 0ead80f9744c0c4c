"""Stale incoming-migration shells: found only where the domain runs elsewhere, destroyed only when idle."""

from __future__ import annotations

from types import SimpleNamespace

import libvirt

from actioner.libvirt_hosts import DomainFacts
from actioner.shells import stale_shells, sweep_incoming_shells
from virtbalance.domain_metadata import Placement

MiB = 1024 * 1024


def facts(name, host, *, shell=False):
    return DomainFacts(
        name=name,
        uuid=name,
        host=host,
        active=True,
        persistent=not shell,
        state=libvirt.VIR_DOMAIN_PAUSED if shell else libvirt.VIR_DOMAIN_RUNNING,
        reason=libvirt.VIR_DOMAIN_PAUSED_MIGRATION if shell else 0,
        vcpus=1,
        memory_bytes=64 * MiB,
        bridges=(),
        networks=(),
        placement=Placement(),
    )


class Dom:
    def __init__(self, job=libvirt.VIR_DOMAIN_JOB_NONE):
        self.job = job
        self.destroyed = False

    def isPersistent(self):
        return 0

    def jobInfo(self):
        return [self.job, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]

    def destroy(self):
        self.destroyed = True


class Pool:
    def __init__(self, by_host, doms):
        self.by_host = by_host
        self.doms = doms  # (host, name) -> Dom
        self.config = SimpleNamespace(host_names=tuple(by_host))

    def domains(self, host):
        return self.by_host[host]

    def connection(self, host):
        return SimpleNamespace(lookupByName=lambda name: self.doms[(host, name)])


def test_a_shell_is_stale_only_when_its_domain_runs_on_another_host():
    by_host = {
        "hv1": [facts("web1", "hv1"), facts("db1", "hv1")],
        "hv3": [facts("web1", "hv3", shell=True), facts("lonely", "hv3", shell=True)],
    }
    # "lonely" runs nowhere else: its shell may be the only copy left, so it is never stale.
    assert stale_shells(by_host) == [("hv3", "web1")]


def test_the_sweep_destroys_idle_stale_shells_and_spares_migrating_ones():
    by_host = {
        "hv1": [facts("web1", "hv1"), facts("app1", "hv1")],
        "hv3": [facts("web1", "hv3", shell=True), facts("app1", "hv3", shell=True)],
    }
    idle, migrating = Dom(), Dom(job=libvirt.VIR_DOMAIN_JOB_UNBOUNDED)
    pool = Pool(by_host, {("hv3", "web1"): idle, ("hv3", "app1"): migrating})
    assert sweep_incoming_shells(pool) == [("hv3", "web1")]
    assert idle.destroyed and not migrating.destroyed
