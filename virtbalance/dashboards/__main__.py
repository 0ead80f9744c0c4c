"""Command line: ``python -m virtbalance.dashboards --output grafana/dashboards [--policy F] [--check]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from virtbalance.dashboards import stale_files, write_all
from virtbalance.errors import ConfigError
from virtbalance.policy import Policy


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m virtbalance.dashboards",
        description="Write virtbalance's Grafana dashboards, thresholds taken from a policy file.",
    )
    parser.add_argument(
        "--output", type=Path, default=Path("grafana/dashboards"), help="directory to write to"
    )
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
        policy = Policy.load(args.policy)
    except ConfigError as exc:
        print(f"dashboards: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_files(args.output, policy)
        for name in stale:
            print(
                f"dashboards: {args.output / name} differs from the generator; regenerate it",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path in write_all(args.output, policy):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
