"""Clear incoming-migration shells left behind on a destination whose migration died with its libvirtd.

When a destination's libvirtd dies mid-migration, the source resumes the domain, but the paused QEMU that was
receiving it survives; once that libvirtd is back it adopts the shell, and the domain then exists on two hosts.
A shell is safe to destroy only when it is certain to be garbage: active, paused for an incoming migration,
not persistent, no migration job left on it, and the same domain running for real on another host.
"""

from __future__ import annotations

import logging

import libvirt

from actioner.libvirt_hosts import DomainFacts, HostPool, HostUnreachableError

log = logging.getLogger(__name__)


def stale_shells(by_host: dict[str, list[DomainFacts]]) -> list[tuple[str, str]]:
    """(host, domain) of every incoming shell whose domain runs for real on another host."""
    running = {f.name: host for host, facts in by_host.items() for f in facts if f.running_here}
    return sorted(
        (host, f.name)
        for host, facts in by_host.items()
        for f in facts
        if f.active and not f.running_here and running.get(f.name, host) != host
    )


def sweep_incoming_shells(pool: HostPool) -> list[tuple[str, str]]:
    """Destroy stale incoming shells on every reachable host; returns the (host, domain) destroyed."""
    by_host: dict[str, list[DomainFacts]] = {}
    for host in pool.config.host_names:
        try:
            by_host[host] = pool.domains(host)
        except (HostUnreachableError, libvirt.libvirtError) as exc:
            log.warning(
                "cannot list %s's domains to look for stale migration shells: %s", host, exc
            )
    destroyed = []
    for host, domain in stale_shells(by_host):
        if _destroy_if_idle(pool, host, domain):
            destroyed.append((host, domain))
    return destroyed


def _destroy_if_idle(pool: HostPool, host: str, domain: str) -> bool:
    try:
        dom = pool.connection(host).lookupByName(domain)
        # A migration still in flight decides for itself; only a shell without a job is left over.
        if dom.isPersistent() or dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE:
            return False
        dom.destroy()
    except (HostUnreachableError, libvirt.libvirtError) as exc:
        log.warning("%s on %s: cannot clear a stale migration shell: %s", domain, host, exc)
        return False
    log.warning(
        "%s on %s: destroyed the paused copy an interrupted incoming migration left; "
        "the domain runs on another host",
        domain,
        host,
    )
    return True
