"""Command line: ``python -m virtbalance.mixin generate|verify [--root DIR]`` (``make generate``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from virtbalance.errors import ConfigError
from virtbalance.mixin.generated import repository_outputs, stale, write


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
    if args.action == "verify":
        found = stale(outputs)
        for path in found:
            print(f"mixin: {path} is stale; run `make generate`", file=sys.stderr)
        return 1 if found else 0
    for path in write(outputs):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
