"""Entry point of ``virtbalance-actioner --config FILE``: one process (state lives in it), threads."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from actioner.app import create_app
from actioner.config import STOP_GRACE, load_config
from actioner.journal import JournalLockedError
from actioner.serving import Served
from actioner.worker import Worker
from virtbalance.basic_auth import BasicAuth
from virtbalance.errors import ConfigError
from virtbalance.redact import install_log_redaction, uri_secrets
from virtbalance.webconfig import load_web_config

EXIT_CONFIG = 2
EXIT_LOCKED = 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="virtbalance-actioner",
        description="Alertmanager webhook receiver that plans and live-migrates chunks.",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="actioner YAML config")
    parser.add_argument(
        "--check", action="store_true", help="validate the config and exit (0 when usable)"
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config",
        metavar="FILE",
        help="TLS and basic auth, in the Prometheus exporters' web config format",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ... (INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
        web = load_web_config(args.web_config)
    except ConfigError as exc:
        print(f"virtbalance-actioner: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(
            f"{args.config}: ok ({len(config.hosts)} hosts, dry_run={config.dry_run},"
            f" tls={web.tls is not None})"
        )
        return 0
    install_log_redaction(uri_secrets(h.uri for h in config.hosts))

    if config.webhook.token_file is None:
        logging.getLogger("actioner").warning(
            "webhook.token_file is not set: anyone who reaches %s:%s can trigger migrations",
            config.webhook.listen_host,
            config.webhook.listen_port,
        )
    try:
        app = create_app(
            config, basic_auth=BasicAuth(web.basic_auth_users) if web.basic_auth_users else None
        )
    except JournalLockedError as exc:
        print(f"virtbalance-actioner: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    worker = app.extensions["virtbalance"].worker
    try:
        server = Served(app, config.webhook, web.tls)
    except OSError as exc:
        print(f"virtbalance-actioner: cannot listen: {exc}", file=sys.stderr)
        if isinstance(worker, Worker):
            worker.stop(STOP_GRACE)
        return 1
    logging.getLogger("actioner").info(
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
        logging.getLogger("actioner").info(
            "stopping: aborting and resolving the migrations in flight"
        )
    finally:
        if isinstance(worker, Worker):
            worker.stop(STOP_GRACE)
            if worker.alive:
                logging.getLogger("actioner").critical(
                    "stopped with a migration unresolved after %.0f s; the next start reconciles it",
                    STOP_GRACE,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
