"""Command line: ``python -m virtbalance.mixin.dashboards --output DIR [--policy F] [--check]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from virtbalance.errors import ConfigError
from virtbalance.mixin.config import Config
from virtbalance.mixin.generated import DASHBOARD_DIR, check_or_write, dashboard_outputs
from virtbalance.policy import Policy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m virtbalance.mixin.dashboards",
        description="Write virtbalance's Grafana dashboards, thresholds taken from a policy file.",
    )
    parser.add_argument("--output", type=Path, default=DASHBOARD_DIR, help="directory to write to")
    parser.add_argument(
        "--policy", type=Path, help="policy YAML whose thresholds to draw (default: defaults)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file differs from the generator's output",
    )
    args = parser.parse_args(argv)
    try:
        config = Config(policy=Policy.load(args.policy))
    except ConfigError as exc:
        print(f"dashboards: {exc}", file=sys.stderr)
        return 2
    outputs = dashboard_outputs(args.output, config)
    return check_or_write(
        outputs,
        check=args.check,
        prog="dashboards",
        stale_hint="differs from the generator; regenerate it",
    )


if __name__ == "__main__":
    sys.exit(main())
