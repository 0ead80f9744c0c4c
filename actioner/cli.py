"""``virtbalance status|vms|drain|history``: cluster tables, the domain list, maintenance drains, the journal."""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import sys
from typing import Any

import requests

from virtbalance.actioner.config import Config, load_config
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.live import live_view
from virtbalance.chunks import ChunkMember, chunk_of
from virtbalance.commands.plan import LiveCluster
from virtbalance.errors import ValidationError
from virtbalance.snapshot import Snapshot

DEFAULT_CONFIG = "/etc/virtbalance/actioner.yml"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the actioner's subcommands."""
    default = os.environ.get("VIRTBALANCE_CONFIG", DEFAULT_CONFIG)

    def config_arg(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--config",
            default=default,
            metavar="FILE",
            help=f"actioner config (default $VIRTBALANCE_CONFIG or {DEFAULT_CONFIG})",
        )

    status = subparsers.add_parser("status", help="per-host capacity and load, cluster totals")
    config_arg(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=run_status)

    vms = subparsers.add_parser("vms", help="domains with host, load, memory and chunk")
    config_arg(vms)
    vms.add_argument(
        "patterns",
        nargs="*",
        metavar="PATTERN",
        help="wildcards on NAME or HOST/NAME: '*web*' 'hv1/*sql*'",
    )
    vms.add_argument("--json", action="store_true", help="machine-readable output")
    vms.set_defaults(func=run_vms)

    drain = subparsers.add_parser("drain", help="ask the running actioner to evacuate a host")
    config_arg(drain)
    drain.add_argument("host", metavar="HOST")
    drain.add_argument("--url", help="actioner URL (default: from webhook.listen in the config)")
    drain.add_argument("--cacert", metavar="FILE", help="CA of the actioner's TLS certificate")
    drain.add_argument("--cert", metavar="FILE", help="client certificate (with --key)")
    drain.add_argument("--key", metavar="FILE", help="key of the client certificate")
    drain.set_defaults(func=run_drain)

    hist = subparsers.add_parser("history", help="recent plans and migrations from the journal")
    config_arg(hist)
    hist.add_argument("--limit", type=int, default=20, help="plans to show (20)")
    hist.add_argument("--json", action="store_true", help="machine-readable output")
    hist.set_defaults(func=run_history)


def live_plan_input(config_path: str) -> LiveCluster:
    """``virtbalance plan --live``: the snapshot and forecast the actioner would plan from, and its
    config's policy.

    A bad config raises ConfigError (exit 2) listing every problem.
    """
    config = load_config(config_path)
    view = live_view(config)
    return LiveCluster(view.snapshot, config.policy, view.forecast, view.forecast_notes)


def _gib(value: float) -> str:
    return f"{value / 1024**3:.2f}G" if value >= 1024**3 else f"{value / 1024**2:.0f}M"


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    )


def chunks_by_domain(snapshot: Snapshot) -> dict[str, str]:
    out: dict[str, str] = {}
    for host in snapshot.hosts:
        members = [
            ChunkMember(d.name, d.private_networks, d.group)
            for d in snapshot.domains
            if d.host == host.name
        ]
        out.update(chunk_of(members))
    return out


def host_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    chunks = chunks_by_domain(snapshot)
    rows = []
    for host in sorted(snapshot.hosts, key=lambda h: h.name):
        domains = [d for d in snapshot.domains if d.host == host.name]
        rows.append(
            {
                "host": host.name,
                "cpus": host.cpus,
                "cpu_used": round(host.cpu_used, 3),
                "cpu_ratio": round(host.cpu_ratio, 4),
                "memory_bytes": host.memory_bytes,
                "memory_used_bytes": host.memory_used_bytes,
                "memory_free_bytes": max(0, host.memory_bytes - host.memory_used_bytes),
                "domains": len(domains),
                "chunks": len({chunks[d.name] for d in domains}),
            }
        )
    return rows


def render_status(rows: list[dict[str, Any]], unreachable: tuple[str, ...]) -> str:
    header = ("HOST", "CPUS", "CPU%", "MEM USED", "MEM FREE", "MEM%", "VMS", "CHUNKS")
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        lines.append(
            (
                r["host"],
                f"{r['cpus']:g}",
                f"{100 * r['cpu_ratio']:.1f}",
                _gib(r["memory_used_bytes"]),
                _gib(r["memory_free_bytes"]),
                f"{100 * r['memory_used_bytes'] / r['memory_bytes']:.1f}",
                str(r["domains"]),
                str(r["chunks"]),
            )
        )
    for name in unreachable:
        lines.append((name, "-", "-", "-", "-", "-", "-", "unreachable"))
    cpus = sum(r["cpus"] for r in rows)
    used = sum(r["cpu_used"] for r in rows)
    memory = sum(r["memory_bytes"] for r in rows)
    memory_used = sum(r["memory_used_bytes"] for r in rows)
    lines.append(
        (
            "TOTAL",
            f"{cpus:g}",
            f"{100 * used / cpus:.1f}" if cpus else "-",
            _gib(memory_used),
            _gib(max(0, memory - memory_used)),
            f"{100 * memory_used / memory:.1f}" if memory else "-",
            str(sum(r["domains"] for r in rows)),
            str(sum(r["chunks"] for r in rows)),
        )
    )
    return table(lines)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def run_status(args: argparse.Namespace) -> int:
    view = live_view(_config(args))
    rows = host_rows(view.snapshot)
    if args.json:
        payload = {
            "hosts": rows,
            "unreachable": list(view.unreachable),
            "cpu_source": view.cpu_source,
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(render_status(rows, view.unreachable) + "\n")
    return 0


def matches(patterns: list[str], host: str, name: str) -> bool:
    """``*web*`` matches domain names on any host; ``hv1/*sql*`` a host and a name (both wildcards)."""
    if not patterns:
        return True
    for pattern in patterns:
        if "/" in pattern:
            host_pattern, _, name_pattern = pattern.partition("/")
            if fnmatch.fnmatchcase(host, host_pattern) and fnmatch.fnmatchcase(
                name, name_pattern or "*"
            ):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def domain_rows(snapshot: Snapshot, patterns: list[str]) -> list[dict[str, Any]]:
    chunks = chunks_by_domain(snapshot)
    return [
        {
            "domain": d.name,
            "host": d.host,
            "vcpus": d.vcpus,
            "cpu_used": round(d.cpu_used, 3),
            "cpu_ratio": round(d.cpu_used / d.vcpus, 4),
            "memory_bytes": d.memory_bytes,
            "chunk": chunks[d.name],
            "pinned": d.pinned,
            "last_migrated": d.last_migrated,
        }
        for d in sorted(snapshot.domains, key=lambda d: (d.host, d.name))
        if matches(patterns, d.host, d.name)
    ]


def run_vms(args: argparse.Namespace) -> int:
    view = live_view(_config(args))
    rows = domain_rows(view.snapshot, list(args.patterns))
    if args.json:
        sys.stdout.write(json.dumps({"domains": rows}, indent=2) + "\n")
        return 0
    lines: list[tuple[str, ...]] = [("DOMAIN", "HOST", "VCPUS", "CPU%", "MEMORY", "CHUNK")]
    for r in rows:
        lines.append(
            (
                r["domain"] + (" (pinned)" if r["pinned"] else ""),
                r["host"],
                str(r["vcpus"]),
                f"{100 * r['cpu_ratio']:.1f}",
                _gib(r["memory_bytes"]),
                r["chunk"],
            )
        )
    sys.stdout.write(table(lines) + "\n")
    if args.patterns and not rows:
        sys.stderr.write(f"no domain matches {' '.join(args.patterns)}\n")
        return 1
    return 0


def run_drain(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.host not in config.host_names:
        raise ValidationError(
            "drain", [f"unknown host {args.host!r} (known: {', '.join(config.host_names)})"]
        )
    url = args.url or f"http://{config.webhook.listen_host}:{config.webhook.listen_port}"
    headers = {}
    token = config.read_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.post(
            f"{url}/api/v1/drain/{args.host}",
            headers=headers,
            timeout=10,
            verify=args.cacert or True,
            cert=(args.cert, args.key) if args.cert else None,
        )
    except requests.RequestException as exc:
        sys.stderr.write(f"virtbalance drain: the actioner at {url} did not answer: {exc}\n")
        return 1
    if response.status_code != 202:
        sys.stderr.write(f"virtbalance drain: {response.status_code}: {response.text.strip()}\n")
        return 1
    plan_id = response.json()["queued_plan"]
    sys.stdout.write(
        f"drain of {args.host} queued as plan {plan_id}; follow it with `virtbalance history`\n"
    )
    return 0


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def run_history(args: argparse.Namespace) -> int:
    config = _config(args)
    if not config.journal_path.exists():
        sys.stderr.write(f"no journal at {config.journal_path} yet\n")
        return 0 if not args.json else _empty_json()
    journal = Journal(config.journal_path)
    try:
        plans = journal.plans(args.limit)
        migrations = {p.id: journal.migrations(p.id) for p in plans}
    finally:
        journal.close()
    if args.json:
        out = []
        for p in plans:
            item = p.to_dict()
            item["migrations"] = [m.to_dict() for m in migrations[p.id]]
            out.append(item)
        sys.stdout.write(json.dumps({"plans": out}, indent=2) + "\n")
        return 0
    for p in plans:
        sys.stdout.write(
            f"plan {p.id}  {_when(p.created)}  {p.trigger} {p.mode} {','.join(p.hosts)}  "
            f"{p.state}  {p.detail}\n"
        )
        rows = migrations[p.id]
        if rows:
            lines: list[tuple[str, ...]] = [
                ("  CHUNK", "DOMAIN", "FROM", "TO", "STATE", "FINISHED", "NOTE")
            ]
            for m in rows:
                lines.append(
                    (
                        "  " + m.chunk,
                        m.domain,
                        m.source,
                        m.destination,
                        m.state,
                        _when(m.finished),
                        (m.error or m.reason)[:80],
                    )
                )
            sys.stdout.write(table(lines) + "\n")
    return 0


def _empty_json() -> int:
    sys.stdout.write(json.dumps({"plans": []}) + "\n")
    return 0
