"""Entry point of ``virtbalance-actioner --config FILE``: one process (state lives in it), threads."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from virtbalance.actioner.config import load_config
from virtbalance.actioner.journal import JournalLock, JournalLockedError
from virtbalance.errors import ConfigError
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
    try:
        # Before the web stack and the planner load (30 s of imports on a host at load 40 in the fault
        # campaign): a second actioner on this journal must exit at once, naming the holder.
        lock = JournalLock(config.journal_path)
    except JournalLockedError as exc:
        print(f"virtbalance-actioner: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    # Imported only once the journal is ours, for the reason above.
    from virtbalance.actioner.serve import serve  # noqa: PLC0415

    return serve(config, web, lock)


def run() -> None:
    """The process's entry point: ``main()``, then an exit that skips the interpreter's finalization.

    libvirt's event loop turns on a daemon thread inside C (actioner.event_loop): a timer or event
    callback it makes into an interpreter being finalized can crash the process (seen: SIGSEGV, exit
    -11, after a clean SIGTERM stop in the fault campaign). By the time ``main()`` returns, the worker
    has stopped and every journal write is committed; only the log and the standard streams remain.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
