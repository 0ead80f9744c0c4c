"""Observe a domain on every host, judge it (actioner.proof), act only on proof, journal what is unproven.

The reconcile at start-up, the executor after a failed migration, and the periodic recheck all come
here, so a paused or doubled domain is handled the same way whoever finds it. Before each destroy or
resume the domain is observed and judged again: the action happens only if the verdict still holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import libvirt

from actioner.journal import Journal
from actioner.libvirt_hosts import HostPool, HostUnreachableError
from actioner.metrics import Metrics
from actioner.proof import (
    MIGRATION_PAUSE_REASONS,
    Action,
    Copy,
    Observation,
    Unanswered,
    Verdict,
    describe,
    judge,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    """A verdict and whether its actions were carried out (``done`` False: left alone, and why)."""

    verdict: Verdict
    done: bool
    detail: str

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
    return bool(int(dom.jobInfo()[0]) != libvirt.VIR_DOMAIN_JOB_NONE)


class Resolver:
    """Resolves domains left in doubt; one per actioner, shared by reconcile, executor and recheck."""

    def __init__(self, pool: HostPool, journal: Journal, metrics: Metrics | None = None) -> None:
        self.pool = pool
        self.journal = journal
        self.metrics = metrics

    def resolve(self, domain: str, context: str) -> Resolution:
        """Judge ``domain`` and act if proven; an unproven domain is journaled ambiguous (and held)."""
        observation = observe(self.pool, domain)
        verdict = judge(observation)
        if verdict.action is Action.IN_FLIGHT:
            return Resolution(verdict, False, verdict.reason)
        if verdict.action is Action.AMBIGUOUS:
            self._ambiguous(domain, context, verdict.reason, describe(observation))
            return Resolution(verdict, False, verdict.reason)
        if verdict.needs_action:
            problem = self._carry_out(domain, verdict)
            if problem:
                self._ambiguous(domain, context, problem, describe(observe(self.pool, domain)))
                return Resolution(verdict, False, problem)
        if self.journal.clear_ambiguous(domain, f"{verdict.action.value}: {verdict.reason}"):
            log.warning("%s: no longer ambiguous: %s", domain, verdict.reason)
        self._count()
        return Resolution(verdict, True, verdict.reason)

    def recheck(self) -> list[Resolution]:
        """Every domain journaled ambiguous, and every domain paused by a migration with no job."""
        domains = set(self.journal.ambiguous_domains())
        for host in self.pool.config.host_names:
            try:
                for facts in self.pool.domains(host):
                    if (
                        facts.state == libvirt.VIR_DOMAIN_PAUSED
                        and facts.reason in MIGRATION_PAUSE_REASONS
                    ):
                        domains.add(facts.name)
            except (HostUnreachableError, libvirt.libvirtError):
                continue  # its domains are judged when it answers; ambiguous ones stay held
        results = [self.resolve(d, "periodic recheck") for d in sorted(domains)]
        self._count()
        return results

    def _carry_out(self, domain: str, verdict: Verdict) -> str | None:
        """Do what the verdict says, each step only if a fresh judgement still says the same."""
        fresh = judge(observe(self.pool, domain))
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
