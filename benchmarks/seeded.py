"""The planner benchmarks' seeded instances on the command line, and their report file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser, *, instances: int, first_seed: int) -> None:
    """``--instances`` seeds from ``--first-seed``, or ``--seeds``; ``--json`` for the report."""
    parser.add_argument("--instances", type=int, default=instances)
    parser.add_argument("--first-seed", type=int, default=first_seed)
    parser.add_argument("--seeds", help="comma-separated seeds instead of --first-seed/--instances")
    parser.add_argument("--json", type=Path, help="write the summary and every row here")


def seeds(args: argparse.Namespace) -> list[int]:
    """The seeds ``add_arguments``' options name, in order."""
    if args.seeds:
        return [int(seed) for seed in args.seeds.split(",")]
    return list(range(args.first_seed, args.first_seed + args.instances))


def write_report(path: Path | None, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The summary and the rows as one JSON file, when ``--json`` named one."""
    if path is not None:
        path.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
