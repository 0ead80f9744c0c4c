"""Serve the actioner until it is stopped: the app and its worker, SIGTERM as a clean stop."""

from __future__ import annotations

import logging
import signal
import sys

from virtbalance.actioner.app import create_app
from virtbalance.actioner.config import STOP_GRACE, Config
from virtbalance.actioner.journal import JournalLock
from virtbalance.actioner.serving import Served
from virtbalance.actioner.worker import Worker
from virtbalance.basic_auth import BasicAuth
from virtbalance.redact import install_log_redaction, uri_secrets
from virtbalance.webconfig import WebConfig


def serve(config: Config, web: WebConfig, lock: JournalLock) -> int:
    """Run until SIGTERM or Ctrl-C; ``lock`` is the journal's, taken by the caller. Returns the exit code."""
    install_log_redaction(uri_secrets(h.uri for h in config.hosts))

    if config.webhook.token_file is None:
        logging.getLogger("virtbalance.actioner").warning(
            "webhook.token_file is not set: anyone who reaches %s:%s can trigger migrations",
            config.webhook.listen_host,
            config.webhook.listen_port,
        )
    app = create_app(
        config,
        basic_auth=BasicAuth(web.basic_auth_users) if web.basic_auth_users else None,
        journal_lock=lock,
    )
    worker = app.extensions["virtbalance"].worker
    try:
        server = Served(app, config.webhook, web.tls)
    except OSError as exc:
        print(f"virtbalance-actioner: cannot listen: {exc}", file=sys.stderr)
        if isinstance(worker, Worker):
            worker.stop(STOP_GRACE)
        return 1
    logging.getLogger("virtbalance.actioner").info(
        "listening on %s://%s:%s (dry_run=%s)",
        server.scheme,
        config.webhook.listen_host,
        server.port,
        config.dry_run,
    )
    # SIGTERM (systemd stop) behaves like Ctrl-C: waitress returns, the migrations in flight are aborted
    # and resolved (actioner.executor), then the worker ends, all within STOP_GRACE.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        # One process: the worker, the queue and the journal live here; threads serve requests.
        server.run()
    except KeyboardInterrupt:
        logging.getLogger("virtbalance.actioner").info(
            "stopping: aborting and resolving the migrations in flight"
        )
    finally:
        if isinstance(worker, Worker):
            worker.stop(STOP_GRACE)
            if worker.alive:
                logging.getLogger("virtbalance.actioner").critical(
                    "stopped with a migration unresolved after %.0f s; the next start reconciles it",
                    STOP_GRACE,
                )
    return 0
