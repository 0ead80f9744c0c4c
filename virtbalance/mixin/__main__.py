"""Command line: ``python -m virtbalance.mixin generate|verify [--root DIR]`` (``make generate``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from virtbalance.errors import ConfigError
from virtbalance.mixin.generated import check_or_write, repository_outputs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m virtbalance.mixin",
        description="Generate the repository's rule files and dashboards, or check they are current.",
    )
    parser.add_argument(
        "action", choices=("generate", "verify"), help="write the files, or only compare them"
    )
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="the repository (default: here)"
    )
    args = parser.parse_args(argv)
    try:
        outputs = repository_outputs(args.root)
    except ConfigError as exc:
        print(f"mixin: {exc}", file=sys.stderr)
        return 2
    return check_or_write(
        outputs,
        check=args.action == "verify",
        prog="mixin",
        stale_hint="is stale; run `make generate`",
    )


if __name__ == "__main__":
    sys.exit(main())
