"""Observe a domain on every host, judge it (actioner.proof), act only on proof, journal what is unproven.

The reconcile at start-up, the executor after a failed migration, and the periodic recheck all come
here, so a paused or doubled domain is handled the same way whoever finds it. Before each destroy or
resume the domain is observed and judged again: the action happens only if the verdict still holds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import libvirt

from virtbalance.actioner.journal import Journal
from virtbalance.actioner.libvirt_hosts import HostPool, HostUnreachableError
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.proof import (
    MIGRATION_PAUSE_REASONS,
    Action,
    Copy,
    Observation,
    Unanswered,
    Verdict,
    describe,
    judge,
)
from virtbalance.contract import ALERT_JOB_STUCK

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    """A verdict and whether its actions were carried out (``done`` False: left alone, and why)."""

    verdict: Verdict
    done: bool
    detail: str
    domain: str = ""

    @property
    def host(self) -> str | None:
        return self.verdict.host if self.done else None


def observe(pool: HostPool, domain: str) -> Observation:
    """What every configured host holds of ``domain`` right now."""
    seen: dict[str, Copy | Unanswered | None] = {}
    for host in pool.config.host_names:
        try:
            dom = pool.connection(host).lookupByName(domain)
            state, reason = dom.state()
            active = bool(dom.isActive())
            seen[host] = Copy(
                active=active,
                persistent=bool(dom.isPersistent()),
                state=int(state),
                reason=int(reason),
                job=active and _has_job(dom),
                uuid=str(dom.UUIDString()),
            )
        except HostUnreachableError as exc:
            seen[host] = Unanswered(str(exc))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                seen[host] = None
            else:
                seen[host] = Unanswered(str(exc))
    return seen


def _has_job(dom: Any) -> bool:
    try:
        return bool(int(dom.jobInfo()[0]) != libvirt.VIR_DOMAIN_JOB_NONE)
    except libvirt.libvirtError as exc:
        # libvirt refuses job statistics on a destination while its incoming migration job runs
        if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_UNSUPPORTED:
            return True
        raise


class Resolver:
    """Resolves domains left in doubt; one per actioner, shared by reconcile, executor and recheck."""

    def __init__(self, pool: HostPool, journal: Journal, metrics: Metrics | None = None) -> None:
        self.pool = pool
        self.journal = journal
        self.metrics = metrics
        # domain -> when the recheck first saw a job on it (monotonic seconds)
        self._in_flight_since: dict[str, float] = {}
        # domain -> the hosts whose libvirtd holds a migration job of it that it cannot end
        self._stuck: dict[str, tuple[str, ...]] = {}
        self._stuck_lock = threading.Lock()

    def report_stuck(self, domain: str, hosts: tuple[str, ...]) -> None:
        """libvirt on ``hosts`` holds a migration job of ``domain`` that no API call ends (it outlived
        its abort): served as a metric whose alert tells the operator which libvirtd to restart."""
        self._set_stuck(domain, hosts)

    def clear_stuck(self, domain: str) -> None:
        self._set_stuck(domain, ())

    def _set_stuck(self, domain: str, hosts: tuple[str, ...]) -> None:
        with self._stuck_lock:
            if self._stuck.get(domain, ()) == hosts:
                return
            if hosts:
                self._stuck[domain] = hosts
            else:
                del self._stuck[domain]
            stuck = dict(self._stuck)
        if self.metrics is not None:
            self.metrics.set_stuck_jobs(stuck)

    def resolve(self, domain: str, context: str, *, stale_jobs: bool = False) -> Resolution:
        """Judge ``domain`` and act if proven; an unproven domain is journaled ambiguous (and held).

        ``stale_jobs``: the jobs on it have outlived ``migration_timeout`` (see proof.judge)."""
        observation = observe(self.pool, domain)
        verdict = judge(observation, stale_jobs=stale_jobs)
        if verdict.action is Action.IN_FLIGHT:
            return Resolution(verdict, False, verdict.reason, domain)
        # no host holds a job for it any more: whoever judges it (recheck, reconcile, executor)
        # ends the stuck-job report, or a domain settled outside the recheck would keep its alert
        self.clear_stuck(domain)
        if verdict.action is Action.AMBIGUOUS:
            self._ambiguous(domain, context, verdict.reason, describe(observation))
            return Resolution(verdict, False, verdict.reason, domain)
        if verdict.needs_action:
            problem = self._carry_out(domain, verdict, stale_jobs=stale_jobs)
            if problem:
                self._ambiguous(domain, context, problem, describe(observe(self.pool, domain)))
                return Resolution(verdict, False, problem, domain)
        if self.journal.clear_ambiguous(domain, f"{verdict.action.value}: {verdict.reason}"):
            log.warning("%s: no longer ambiguous: %s", domain, verdict.reason)
        self._count()
        return Resolution(verdict, True, verdict.reason, domain)

    def recheck(self) -> list[Resolution]:
        """Every domain journaled ambiguous, paused by a migration, active on two hosts, or defined on
        a host while it runs on another (a source whose libvirtd was away when the move undefined it)."""
        domains = set(self.journal.ambiguous_domains())
        active: dict[str, set[str]] = {}
        defined: dict[str, set[str]] = {}
        for host in self.pool.config.host_names:
            try:
                conn = self.pool.connection(host)
                for facts in self.pool.domains(host):
                    active.setdefault(facts.name, set()).add(host)
                    if (
                        facts.state == libvirt.VIR_DOMAIN_PAUSED
                        and facts.reason in MIGRATION_PAUSE_REASONS
                    ):
                        domains.add(facts.name)
                for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE):
                    defined.setdefault(dom.name(), set()).add(host)
            except (HostUnreachableError, libvirt.libvirtError):
                continue  # its domains are judged when it answers; ambiguous ones stay held
        domains |= {name for name, hosts in defined.items() if active.get(name, set()) - hosts}
        # active on two hosts, whatever the journal says: a double run must be reported as soon as seen
        domains |= {name for name, hosts in active.items() if len(hosts) > 1}
        results = [self.resolve(d, "periodic recheck") for d in sorted(domains)]
        results = self._escalate_stuck_jobs(results)
        self._count()
        return results

    def _escalate_stuck_jobs(self, results: list[Resolution]) -> list[Resolution]:
        """A job that outlives ``migration_timeout`` between plans belongs to no migration of ours (a
        daemon that restarted mid-migration, say). Judged again as stale: a dead migration's receiving
        shell beside the running source is removed; anything else is journaled ambiguous and held.
        Returns ``results`` with the stuck domains' new resolutions."""
        now = time.monotonic()
        stuck = set()
        for resolution in results:
            domain = resolution.domain
            if resolution.verdict.action is not Action.IN_FLIGHT:
                self._in_flight_since.pop(domain, None)
                continue
            since = self._in_flight_since.setdefault(domain, now)
            if now - since >= self.pool.config.execution.migration_timeout:
                stuck.add(domain)
        resolved = {}
        for domain in sorted(stuck):
            again = self.resolve(domain, "periodic recheck", stale_jobs=True)
            resolved[domain] = again
            if again.verdict.action is not Action.IN_FLIGHT:
                self._in_flight_since.pop(domain, None)
                continue
            observation = observe(self.pool, domain)
            seen = describe(observation)
            reason = (
                f"a job has run on it for {now - self._in_flight_since[domain]:.0f} s with no "
                f"migration of this actioner in flight: {seen}"
            )
            # A persistent copy's job with no migration of ours is a source's job libvirt did not
            # end (an abort that met the disks' mirror jobs): its libvirtd's restart recovers it.
            # Receiving shells are a dead migration's, judged above (or a ghost: see the runbook).
            holders = tuple(
                sorted(
                    h
                    for h, c in observation.items()
                    if isinstance(c, Copy) and c.job and c.persistent
                )
            )
            if holders:
                self.report_stuck(domain, holders)
                reason += f"; restart libvirtd on {', '.join(holders)} ({ALERT_JOB_STUCK})"
            self._ambiguous(domain, "periodic recheck", reason, seen)
        return [resolved.get(r.domain, r) for r in results]

    def _carry_out(self, domain: str, verdict: Verdict, *, stale_jobs: bool = False) -> str | None:
        """Do what the verdict says, each step only if a fresh judgement still says the same."""
        fresh = judge(observe(self.pool, domain), stale_jobs=stale_jobs)
        if (fresh.action, fresh.host, fresh.destroy) != (
            verdict.action,
            verdict.host,
            verdict.destroy,
        ):
            return f"changed while acting: was {verdict.reason}; now {fresh.reason}"
        for host in verdict.destroy:
            problem = self._on(host, domain, "destroy", lambda d: d.destroy())
            if problem:
                return problem
        for host in verdict.undefine:
            problem = self._on(host, domain, "undefine", lambda d: d.undefine())
            if problem and "not found" not in problem.lower():
                return problem
        if verdict.action is Action.RESUME and verdict.host is not None:
            problem = self._on(verdict.host, domain, "resume", lambda d: d.resume())
            if problem:
                return problem
        log.warning("%s: %s (%s)", domain, verdict.action.value, verdict.reason)
        return None

    def _on(self, host: str, domain: str, what: str, act: Any) -> str | None:
        try:
            act(self.pool.connection(host).lookupByName(domain))
        except (HostUnreachableError, libvirt.libvirtError) as exc:
            return f"cannot {what} {domain} on {host}: {exc}"
        return None

    def _ambiguous(self, domain: str, context: str, reason: str, seen: str) -> None:
        if self.journal.mark_ambiguous(domain, context=context, reason=reason, seen=seen):
            log.critical(
                "%s is AMBIGUOUS (%s): %s. Left as it is and held from planning until it can be "
                "proven; see the runbook (VirtBalanceDomainAmbiguous). Seen: %s",
                domain,
                context,
                reason,
                seen,
            )
        self._count()

    def _count(self) -> None:
        if self.metrics is not None:
            self.metrics.set_ambiguous(self.journal.ambiguous_domains())
