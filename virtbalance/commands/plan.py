"""``virtbalance plan``: compute a plan from a snapshot file or the live cluster, print it, execute nothing."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from virtbalance.errors import ValidationError
from virtbalance.forecast import Forecast
from virtbalance.plan import Mode
from virtbalance.planner import plan
from virtbalance.policy import Policy
from virtbalance.snapshot import Snapshot, load_snapshot


class LiveCluster(NamedTuple):
    """What ``--live`` plans from: the actioner's snapshot, its config's policy, and its forecast."""

    snapshot: Snapshot
    policy: Policy | None
    forecast: Forecast | None = None
    # Why the forecast, or a part of it, is missing (Prometheus down, too little history).
    forecast_notes: tuple[str, ...] = ()


# The live cluster from a config file (the actioner provides it).
LiveInput = Callable[[str], LiveCluster]


def register(subparsers: argparse._SubParsersAction[Any], live: LiveInput) -> None:
    """Add ``plan``; ``live`` reads the cluster for ``--live``."""
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
    parser.set_defaults(func=partial(run, live=live))


def run(args: argparse.Namespace, live: LiveInput) -> int:
    """Print the plan; raise ValidationError (exit 2) on bad input."""
    mode = Mode.parse(args.mode)
    if args.live:
        if not args.config:
            raise ValidationError("plan", ["--live needs --config FILE (the actioner's config)"])
        cluster = live(args.config)
        for note in cluster.forecast_notes:
            sys.stderr.write(f"plan: {note}\n")
    else:
        cluster = LiveCluster(load_snapshot(args.snapshot), None)
    policy = Policy.load(args.policy) if args.policy else (cluster.policy or Policy())
    # The policy's plan_budget runs on this clock: past it, the best plan found so far is printed.
    # A live plan judges destinations on the same forecast the actioner would pass.
    result = plan(cluster.snapshot, policy, mode, clock=time.monotonic, forecast=cluster.forecast)
    if args.json:
        sys.stdout.write(result.to_json() + "\n")
    else:
        sys.stdout.write(result.render(all_hosts=args.all_hosts) + "\n")
    return 0
