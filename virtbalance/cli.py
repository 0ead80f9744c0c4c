"""The ``virtbalance`` admin command: one entry point, each subsystem contributes its subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from virtbalance import __version__
from virtbalance.errors import ValidationError

# Each module has ``register(subparsers)``; a subcommand sets ``func(args) -> int`` as its handler.
COMMAND_MODULES = (
    "virtbalance.commands.plan",
    "virtbalance.commands.rules",
    "actioner.cli",
    "lab.cli",
    "simulator.cli",
    "virtbalance.commands.demo",
)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virtbalance",
        description="Chunk-aware automatic rebalancing for libvirt/KVM clusters.",
    )
    parser.add_argument("--version", action="version", version=f"virtbalance {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
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
