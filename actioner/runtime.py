"""Wiring of the real services: journal, libvirt pool, snapshot builder, executor, worker; reconcile first."""

from __future__ import annotations

import logging
import threading
import time

from virtbalance.actioner import event_loop
from virtbalance.actioner.config import Config
from virtbalance.actioner.domain_events import DomainWatch
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


def _warm(builder: SnapshotBuilder) -> None:
    began = time.monotonic()
    try:
        hosts, domains = builder.warm()
    except Exception:  # a warm-up is an optimisation: the first snapshot reads whatever it missed
        log.exception("warming up the snapshot failed")
        return
    log.info(
        "snapshot warmed up: %d hosts, %d domains in %.1f s",
        hosts,
        domains,
        time.monotonic() - began,
    )


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
    # The event loop before the first connection: only connections opened under it deliver events.
    event_loop.DEFAULT.start()
    pool = HostPool(config, DomainWatch(event_loop.DEFAULT))
    builder = SnapshotBuilder(config, pool)
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
        builder=builder,
        executor=executor,
        recheck=lambda: recheck(journal, resolver, executor),
        emptied=EmptiedHosts(journal, metrics, config.host_names),
    )
    report = reconcile(journal, resolver, executor)
    if start:
        worker.start()
        # After the reconcile (which must not wait for it), beside the webhook: the first alert after
        # a start then finds the connections open and the definitions read.
        threading.Thread(
            target=_warm, args=(builder,), name="snapshot-warm-up", daemon=True
        ).start()
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
