"""The ``virtbalance`` admin command: the one module that composes every component's subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from virtbalance import __version__
from virtbalance.actioner import cli as actioner_cli
from virtbalance.commands import plan, rules
from virtbalance.errors import ValidationError
from virtbalance.lab import cli as lab_cli
from virtbalance.lab.demo import cli as demo_cli
from virtbalance.simulator import cli as simulator_cli

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand, in the order ``--help`` lists them; each sets ``func(args) -> int``."""
    parser = argparse.ArgumentParser(
        prog="virtbalance",
        description="Chunk-aware automatic rebalancing for libvirt/KVM clusters.",
    )
    parser.add_argument("--version", action="version", version=f"virtbalance {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # The planner reads a live cluster through the actioner's config; the core only gets the reader.
    plan.register(subparsers, live=actioner_cli.live_plan_input)
    rules.register(subparsers)
    actioner_cli.register(subparsers)
    lab_cli.register(subparsers)
    simulator_cli.register(subparsers)
    demo_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except ValidationError as exc:
        print(f"virtbalance {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
