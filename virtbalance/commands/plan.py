"""``virtbalance plan``: compute a plan from a snapshot file or the live cluster, print it, execute nothing."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from virtbalance.errors import ValidationError
from virtbalance.plan import Mode
from virtbalance.planner import plan
from virtbalance.policy import Policy
from virtbalance.snapshot import Snapshot, load_snapshot


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="compute a migration plan (never executes it)",
        description="Compute a chunk-aware migration plan from a snapshot file or the live cluster. "
        "Nothing is migrated. Exit 0 with a plan (unresolved hosts are listed in it), 2 for bad input.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--snapshot", metavar="FILE", help="cluster snapshot JSON (docs/snapshot.md)"
    )
    source.add_argument(
        "--live", action="store_true", help="snapshot the live cluster (needs --config)"
    )
    parser.add_argument("--config", metavar="FILE", help="actioner config, for --live")
    parser.add_argument("--policy", metavar="FILE", help="policy YAML (default: built-in defaults)")
    parser.add_argument(
        "--mode",
        default="relieve",
        metavar="MODE",
        help="relieve (default), drain:HOST, balance or consolidate",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--all-hosts", action="store_true", help="table: list every host after the plan"
    )
    parser.set_defaults(func=run)


def _live_snapshot(config_path: str | None) -> tuple[Snapshot, Policy | None]:
    if not config_path:
        raise ValidationError("plan", ["--live needs --config FILE (the actioner's config)"])
    try:
        from actioner.config import load_config  # noqa: PLC0415
        from actioner.live import live_snapshot  # noqa: PLC0415
    except ImportError as exc:
        raise ValidationError(
            "plan", [f"--live: the actioner is not available ({exc}); use --snapshot FILE"]
        ) from exc
    config = load_config(config_path)  # ConfigError (exit 2) listing every problem
    return live_snapshot(config), config.policy


def run(args: argparse.Namespace) -> int:
    mode = Mode.parse(args.mode)
    if args.live:
        snapshot, config_policy = _live_snapshot(args.config)
    else:
        snapshot, config_policy = load_snapshot(args.snapshot), None
    policy = Policy.load(args.policy) if args.policy else (config_policy or Policy())
    # The policy's plan_budget runs on this clock: past it, the best plan found so far is printed.
    result = plan(snapshot, policy, mode, clock=time.monotonic)
    if args.json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        sys.stdout.write(result.render(all_hosts=args.all_hosts) + "\n")
    return 0
