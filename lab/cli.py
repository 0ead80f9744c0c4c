"""``virtbalance lab``: up, down, status, load, migrate and monitor for the one-machine lab."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from virtbalance.chunks import ChunkMember, chunk_of
from virtbalance.contract import ALERT_OVERLOAD
from virtbalance.errors import ValidationError
from virtbalance.lab.api import Lab
from virtbalance.lab.dial import percent_for
from virtbalance.lab.errors import LabError
from virtbalance.lab.naming import MAX_LAB_ID, check_lab_id, lab_id_from_env
from virtbalance.lab.rules import RULE_FILE, write_lab_files
from virtbalance.lab.scenario import shipped_scenarios
from virtbalance.sizes import format_size

EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``lab`` and its subcommands."""
    parser = subparsers.add_parser("lab", help="a multi-host libvirt lab on this machine (root)")
    lab_sub = parser.add_subparsers(dest="lab_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = lab_sub.add_parser(name, help=help_text)
        sub.add_argument(
            "--lab-id",
            type=_lab_id,
            default=None,
            help=f"which lab (0..{MAX_LAB_ID}); default $VIRTBALANCE_LAB_ID or 0",
        )
        return sub

    up = add("up", "start the hosts and guests of a scenario")
    up.add_argument(
        "--scenario",
        default="default",
        help=f"a shipped scenario ({', '.join(shipped_scenarios())}) or a YAML file",
    )
    up.add_argument(
        "--with-monitoring",
        action="store_true",
        help="also start an exporter per host and Prometheus with the lab's alerting rules",
    )
    up.add_argument(
        "--webhook-url",
        help=f"with --with-monitoring: also start Alertmanager routing {ALERT_OVERLOAD} here",
    )
    up.add_argument("--token-file", type=Path, help="bearer token file for the webhook")
    up.add_argument(
        "--rules",
        type=Path,
        action="append",
        help=f"with --with-monitoring: a Prometheus rule file (repeatable; default {RULE_FILE})",
    )
    up.set_defaults(func=_up)

    add("down", "stop and remove everything of the lab (safe to repeat)").set_defaults(func=_down)
    add("status", "hosts, guests, load and chunks").set_defaults(func=_status)

    load = add("load", "set a guest's CPU load (percent of one real core)")
    load.add_argument("domain")
    load.add_argument("percent", type=int)
    load.set_defaults(func=_load)

    migrate = add("migrate", "live-migrate a guest to another lab host")
    migrate.add_argument("domain")
    migrate.add_argument("host")
    migrate.set_defaults(func=_migrate)

    reset = add("reset", "every guest back on its scenario host at its initial load")
    reset.set_defaults(func=_reset)


def _lab_id(text: str) -> int:
    try:
        return check_lab_id(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"lab id must be 0..{MAX_LAB_ID}, not {text!r}") from None


def _resolve_id(args: argparse.Namespace) -> int:
    return int(args.lab_id) if args.lab_id is not None else lab_id_from_env()


def _guarded(func: Any) -> Any:
    """Report a LabError as one clear line and a failing exit status (no traceback)."""

    def wrapper(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except ValidationError:
            raise  # the main CLI reports these with exit status 2
        except (LabError, ValueError) as exc:
            print(f"virtbalance lab {args.lab_command}: {exc}", file=sys.stderr)
            return EXIT_FAILED

    return wrapper


@_guarded
def _up(args: argparse.Namespace) -> int:
    lab = Lab.up(args.scenario, lab_id=_resolve_id(args))
    print(f"lab {lab.lab_id} up: scenario {lab.scenario.name}, state in {lab.state_dir}")
    if args.with_monitoring:
        targets = lab.start_exporters()
        alertmanager = None
        if args.webhook_url:
            alertmanager = lab.start_alertmanager(args.webhook_url, args.token_file)
            print(f"alertmanager {alertmanager} -> {args.webhook_url}")
        # The lab profile's rules (short windows); the production file would duplicate its alerts.
        rules = args.rules or [write_lab_files(Path(lab.state_dir) / "rules")[0]]
        prometheus = lab.start_prometheus(rules, alertmanager=alertmanager)
        print(f"exporters {', '.join(f'{h}={t}' for h, t in targets.items())}")
        print(f"prometheus {prometheus} ({len(rules)} rule files)")
    _print_status(lab)
    return 0


@_guarded
def _down(args: argparse.Namespace) -> int:
    lab_id = _resolve_id(args)
    Lab.teardown(lab_id)
    print(f"lab {lab_id} down: no namespace, link, process, mount or state of it is left")
    return 0


@_guarded
def _status(args: argparse.Namespace) -> int:
    _print_status(Lab.attach(_resolve_id(args)))
    return 0


@_guarded
def _load(args: argparse.Namespace) -> int:
    lab = Lab.attach(_resolve_id(args))
    actual = lab.set_load(args.domain, args.percent)
    print(
        f"{args.domain}: load {args.percent}% requested, the guest's dial runs {actual}% of one core"
    )
    return 0


@_guarded
def _migrate(args: argparse.Namespace) -> int:
    lab = Lab.attach(_resolve_id(args))
    seconds = lab.migrate(args.domain, args.host)
    print(f"{args.domain} now on {args.host} (live migration took {seconds:.1f} s)")
    return 0


@_guarded
def _reset(args: argparse.Namespace) -> int:
    lab = Lab.attach(_resolve_id(args))
    lab.reset()
    _print_status(lab)
    return 0


def _print_status(lab: Lab) -> None:
    running = lab.running_hosts()
    loads = lab.loads()
    print(f"lab {lab.lab_id}: scenario {lab.scenario.name} ({lab.scenario.source})")
    for host in lab.hosts:
        here = sorted(name for name, hosts in running.items() if host.name in hosts)
        members = []
        for name in here:
            try:
                spec = lab.scenario.domain(name)
            except KeyError:
                members.append(ChunkMember(name))
                continue
            members.append(ChunkMember(name, spec.private_networks, spec.group))
        chunks = chunk_of(members)
        load = sum(percent_for(lab.guest_level(n)) for n in here) / 100
        print(
            f"{host.name}  {host.address}  {host.libvirt_uri}  declared {host.cpus:g} CPUs "
            f"{format_size(host.memory_bytes)}  guests {len(here)}  load {load:.2f} cores "
            f"({load / host.cpus:.0%} of declared)"
        )
        for name in here:
            spec_host = lab.scenario.domain(name).host if name in loads else "?"
            moved = "" if spec_host == host.name else f"  (scenario host {spec_host})"
            print(
                f"    {name:<12} load {percent_for(lab.guest_level(name)):>3}%  chunk {chunks[name]}{moved}"
            )
    lost = sorted(name for name, hosts in running.items() if len(hosts) != 1)
    for name in lost:
        print(f"WARNING: {name} runs on {running[name] or 'no host'}")
