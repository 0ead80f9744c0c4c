"""Hosts emptied for power-off: marked after a plan leaves them empty, unmarked once something lands there.

The mark lives in the journal (it survives a restart) and in ``virtbalance_host_emptied{host}``; the
planner sees it as ``hosts[].emptied`` in the snapshot and places nothing there unless relief needs it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from virtbalance.actioner import journal as jr
from virtbalance.actioner.journal import Journal, MigrationRow
from virtbalance.actioner.metrics import Metrics
from virtbalance.plan import Plan
from virtbalance.snapshot import Snapshot

log = logging.getLogger(__name__)


def final_hosts(rows: Iterable[MigrationRow]) -> dict[str, str]:
    """Domain -> where the plan's finished moves left it (a rollback row moves it back)."""
    where: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: (r.finished or 0.0, r.id)):
        if row.state == jr.DONE:
            where[row.domain] = row.destination
    return where


class EmptiedHosts:
    """The emptied marks of the configured hosts, kept in the journal and exported as a gauge."""

    def __init__(self, journal: Journal, metrics: Metrics, hosts: Iterable[str]) -> None:
        self.journal = journal
        self.metrics = metrics
        self.hosts = tuple(hosts)
        self._export()

    def marked(self) -> frozenset[str]:
        return frozenset(self.journal.emptied_hosts())

    def view(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with the marks as ``hosts[].emptied``; a marked host that runs domains again
        (started by hand, or by something else) is unmarked first."""
        marked = self.marked()
        busy = {d.host for d in snapshot.domains}
        for host in sorted(marked & busy):
            names = sorted(d.name for d in snapshot.domains if d.host == host)
            self._unmark(host, f"runs {', '.join(names[:5])} again")
        marked -= busy
        hosts = tuple(
            dataclasses.replace(h, emptied=True) if h.name in marked else h for h in snapshot.hosts
        )
        return dataclasses.replace(snapshot, hosts=hosts)

    def after(self, plan_id: int, plan: Plan, snapshot: Snapshot) -> tuple[list[str], list[str]]:
        """After plan ``plan_id`` ran: mark the hosts it left empty, unmark those it placed on.

        A host counts as emptied when every domain the snapshot had on it ended elsewhere (journaled
        ``done``); only consolidation empties on purpose. Returns (marked, unmarked).
        """
        where = final_hosts(self.journal.migrations(plan_id))
        unmarked = []
        for host in sorted(set(where.values()) & self.marked()):
            moved = sorted(d for d, h in where.items() if h == host)
            if self._unmark(host, f"plan {plan_id} placed {', '.join(moved[:5])} on it"):
                unmarked.append(host)
        marked = []
        if plan.mode.kind == "consolidate":
            on: dict[str, list[str]] = {}
            for domain in snapshot.domains:
                on.setdefault(domain.host, []).append(domain.name)
            for host, names in sorted(on.items()):
                if host in where.values() or any(where.get(n, host) == host for n in names):
                    continue
                reason = f"plan {plan_id} (consolidate) moved its {len(names)} domain(s) away"
                if self.journal.mark_emptied(host, plan_id, reason):
                    log.info("host %s emptied: %s", host, reason)
                    marked.append(host)
        self._export()
        return marked, unmarked

    def _unmark(self, host: str, how: str) -> bool:
        done = self.journal.unmark_emptied(host, how)
        if done:
            log.info("host %s no longer emptied: %s", host, how)
        self._export()
        return done

    def _export(self) -> None:
        marked = self.marked()
        for host in self.hosts:
            self.metrics.host_emptied.labels(host=host).set(1 if host in marked else 0)
