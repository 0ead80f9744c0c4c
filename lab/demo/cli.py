"""``virtbalance demo up|down``: the whole loop on a lab, narrated live (``make demo`` / ``make demo-down``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from virtbalance.lab.demo.clients import ServiceError
from virtbalance.lab.demo.run import demo_down, demo_up
from virtbalance.lab.demo.stack import Backend, StackError
from virtbalance.lab.errors import LabAlreadyUp, LabError
from virtbalance.lab.naming import check_lab_id, lab_id_from_env

DEFAULT_TIMEOUT = 600.0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``demo up`` and ``demo down``."""
    demo = subparsers.add_parser(
        "demo",
        help="bring up a lab with the whole stack, overload a host and watch it rebalanced",
        description="Bring up a lab with the whole stack, overload a host and watch it rebalanced live.",
    )
    actions = demo.add_subparsers(dest="demo_action", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up", help="start the stack, overload a host, narrate, leave it running"
    )
    up.add_argument(
        "--scenario", default="default", help="lab scenario name or file (default: default)"
    )
    up.add_argument(
        "--lab-id", type=int, default=None, help="lab id 0..9 (default: $VIRTBALANCE_LAB_ID or 0)"
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for the overload to be relieved (default: {DEFAULT_TIMEOUT:g})",
    )
    up.add_argument(
        "--policy",
        type=Path,
        default=None,
        metavar="FILE",
        help="a policy file over the lab profile, for the rules and the actioner (default: the lab policy)",
    )
    up.add_argument(
        "--backend",
        type=Backend,
        choices=list(Backend),
        default=Backend.PROMETHEUS,
        help="metrics backend: prometheus, or victoriametrics with vmalert (default: prometheus)",
    )
    up.set_defaults(func=_up)
    down = actions.add_parser("down", help="stop the actioner and bring the lab down")
    down.add_argument(
        "--lab-id", type=int, default=None, help="lab id 0..9 (default: $VIRTBALANCE_LAB_ID or 0)"
    )
    down.set_defaults(func=_down)


def _lab_id(args: argparse.Namespace) -> int:
    return lab_id_from_env() if args.lab_id is None else check_lab_id(args.lab_id)


def _up(args: argparse.Namespace) -> int:
    try:
        return demo_up(
            args.scenario,
            _lab_id(args),
            sys.stdout,
            timeout=args.timeout,
            policy_file=args.policy,
            backend=args.backend,
        )
    except LabAlreadyUp as exc:
        print(
            f"virtbalance demo: {exc}\nvirtbalance demo: stop it first with: make demo-down",
            file=sys.stderr,
        )
    except (LabError, StackError, ServiceError) as exc:
        print(f"virtbalance demo: {exc}", file=sys.stderr)
        print(
            "virtbalance demo: what started is still up for a look; clean up with: make demo-down",
            file=sys.stderr,
        )
    return 1


def _down(args: argparse.Namespace) -> int:
    return demo_down(_lab_id(args), sys.stdout)
