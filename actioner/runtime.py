"""Wiring of the real services: journal, libvirt pool, snapshot builder, executor, worker; reconcile first."""

from __future__ import annotations

import logging

from virtbalance.actioner.config import Config
from virtbalance.actioner.emptied import EmptiedHosts
from virtbalance.actioner.executor import Executor
from virtbalance.actioner.journal import Journal, JournalLock
from virtbalance.actioner.libvirt_hosts import HostPool
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.reconcile import recheck, reconcile
from virtbalance.actioner.resolver import Resolver
from virtbalance.actioner.services import Services
from virtbalance.actioner.silences import AlertmanagerClient
from virtbalance.actioner.snapshot_builder import SnapshotBuilder
from virtbalance.actioner.worker import Worker
from virtbalance.planner import exact

log = logging.getLogger(__name__)


def build_services(
    config: Config, *, start: bool = True, lock: JournalLock | None = None
) -> Services:
    """Lock and open the journal, reconcile what a previous run left open, then start the worker.

    ``lock``: the journal's lock if the caller holds it already, else it is taken here.
    JournalLockedError when another actioner holds the journal (nothing is touched then).
    """
    lock = lock or JournalLock(config.journal_path)
    if config.policy.plan_solver != "greedy":
        # OR-Tools takes a second or more to import: here, in the background, not in the first plan.
        exact.warm_up()
    journal = Journal(config.journal_path)
    metrics = Metrics()
    pool = HostPool(config)
    resolver = Resolver(pool, journal, metrics)
    alertmanager = (
        AlertmanagerClient(config.alertmanager.url, config.alertmanager.timeout)
        if config.alertmanager.url
        else None
    )
    executor = Executor(
        config=config,
        pool=pool,
        journal=journal,
        metrics=metrics,
        alertmanager=alertmanager,
        resolver=resolver,
    )
    worker = Worker(
        config=config,
        journal=journal,
        builder=SnapshotBuilder(config, pool),
        executor=executor,
        metrics=metrics,
        alertmanager=alertmanager,
        recheck=lambda: recheck(journal, resolver, executor),
        emptied=EmptiedHosts(journal, metrics, config.host_names),
    )
    report = reconcile(journal, resolver, executor)
    if start:
        worker.start()
    for plan_id in report.requeued_plans:
        worker.submit(plan_id)
    return Services(
        config=config,
        journal=journal,
        metrics=metrics,
        worker=worker,
        token=config.read_token(),
        progress=executor.progress,
        journal_lock=lock,
    )
