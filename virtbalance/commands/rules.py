"""``virtbalance rules``: write the Prometheus rule file for a policy file and profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from virtbalance.mixin import rulefile
from virtbalance.mixin.config import DEFAULT_RUNBOOK_BASE, PROFILES, Config, load_policy
from virtbalance.mixin.generated import Output, stale, write_atomically


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``rules`` subcommand."""
    parser = subparsers.add_parser(
        "rules",
        help="generate the Prometheus alerting and recording rules from a policy file",
        description=(
            "Generate the Prometheus rule file from a policy. The profile gives the base values "
            "(lab: short windows, demand signal); the policy file's keys override them."
        ),
    )
    parser.add_argument(
        "--policy", metavar="FILE", help="policy YAML file (default: the profile alone)"
    )
    parser.add_argument("--output", metavar="FILE", help="write here instead of standard output")
    parser.add_argument("--profile", choices=PROFILES, default="default", help="base values")
    parser.add_argument(
        "--runbook-base",
        metavar="URL",
        default=DEFAULT_RUNBOOK_BASE,
        help="URL of the runbook page the alerts' runbook_url anchors point into",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write: exit 1 if --output differs from what would be generated",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate; raise ValidationError (the CLI prints it and exits 2) on a bad policy."""
    policy = load_policy(args.policy, args.profile)
    source = f"{Path(args.policy).name}" if args.policy else f"the {args.profile} profile"
    if args.policy and args.profile != "default":
        source += f" over the {args.profile} profile"
    text = rulefile.render(Config(policy=policy, runbook_base=args.runbook_base), source=source)
    if args.check:
        if not args.output:
            print("virtbalance rules: --check needs --output", file=sys.stderr)
            return 2
        if stale([Output(Path(args.output), text)]):
            print(
                f"virtbalance rules: {args.output} is out of date; regenerate it", file=sys.stderr
            )
            return 1
        return 0
    if not args.output:
        sys.stdout.write(text)
        return 0
    write_atomically(Path(args.output), text)
    return 0
