"""Command-line flags of ``virtbalance-exporter``, parsed once into a validated ``ExporterConfig``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from virtbalance.errors import ConfigError

# 9177 belongs to the Go libvirt exporters; 9178 keeps both side by side on one hypervisor.
DEFAULT_LISTEN_ADDRESS = ":9178"
DEFAULT_URI = "qemu:///system"
DEFAULT_TELEMETRY_PATH = "/metrics"
DEFAULT_SCRAPE_TIMEOUT = 8.0
DEFAULT_XML_MAX_AGE = 60.0
DEFAULT_STATS_CONCURRENCY = 4


@dataclass(frozen=True)
class ExporterConfig:
    """Everything the exporter needs to know, validated; defaults live in the flag definitions."""

    libvirt_uri: str = DEFAULT_URI
    listen_host: str = ""
    listen_port: int = 9178
    telemetry_path: str = DEFAULT_TELEMETRY_PATH
    host_cpus: int | None = None
    host_memory_bytes: int | None = None
    private_bridges: frozenset[str] = frozenset()
    public_bridges: frozenset[str] = frozenset()
    scrape_timeout: float = DEFAULT_SCRAPE_TIMEOUT
    xml_max_age: float = DEFAULT_XML_MAX_AGE
    stats_concurrency: int = DEFAULT_STATS_CONCURRENCY
    collect_dirty_rate: bool = False
    web_config_file: str | None = None


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as ConfigError instead of exiting, so the caller decides."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError("virtbalance-exporter flags", [message])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="virtbalance-exporter",
        description="Prometheus exporter for libvirt: host capacity, VM usage, chunk topology.",
    )
    parser.add_argument("--libvirt.uri", dest="uri", default=DEFAULT_URI, help="libvirt URI")
    parser.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEFAULT_LISTEN_ADDRESS,
        help=f"[host]:port to serve on (default {DEFAULT_LISTEN_ADDRESS})",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config",
        default=None,
        metavar="FILE",
        help="TLS and basic auth (the Prometheus exporters' web config format)",
    )
    parser.add_argument(
        "--web.telemetry-path", dest="path", default=DEFAULT_TELEMETRY_PATH, help="metrics path"
    )
    parser.add_argument(
        "--host.cpus",
        dest="cpus",
        default=None,
        help="declared logical CPUs of this host, overriding libvirt's node info",
    )
    parser.add_argument(
        "--host.memory-bytes",
        dest="memory",
        default=None,
        help="declared memory of this host in bytes, overriding libvirt's node info",
    )
    parser.add_argument(
        "--bridge.private",
        dest="private",
        action="append",
        default=[],
        metavar="NAME",
        help="treat this bridge or libvirt network as private (repeatable)",
    )
    parser.add_argument(
        "--bridge.public",
        dest="public",
        action="append",
        default=[],
        metavar="NAME",
        help="treat this bridge or libvirt network as public (repeatable)",
    )
    parser.add_argument(
        "--scrape.timeout",
        dest="timeout",
        default=str(DEFAULT_SCRAPE_TIMEOUT),
        help="seconds one scrape may spend talking to libvirt",
    )
    parser.add_argument(
        "--xml.max-age",
        dest="xml_max_age",
        default=str(DEFAULT_XML_MAX_AGE),
        help="seconds a cached domain XML topology is trusted before it is read again",
    )
    parser.add_argument(
        "--libvirt.stats-concurrency",
        dest="concurrency",
        default=str(DEFAULT_STATS_CONCURRENCY),
        help="concurrent bulk stats calls over shards of the domains (1: one call)",
    )
    parser.add_argument(
        "--collect.dirty-rate",
        dest="dirty_rate",
        action="store_true",
        help="also ask libvirt for the last dirty-rate calculation (a QEMU command per domain)",
    )
    return parser


def _positive_int(text: str | None, flag: str, problems: list[str]) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{flag}: {text!r} is not an integer")
        return None
    if value <= 0:
        problems.append(f"{flag}: must be positive, got {value}")
        return None
    return value


def _positive_float(text: str, flag: str, problems: list[str]) -> float:
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{flag}: {text!r} is not a number of seconds")
        return 0.0
    if not value > 0:
        problems.append(f"{flag}: must be positive, got {text}")
    return value


def _listen_address(text: str, problems: list[str]) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        problems.append(f"--web.listen-address: {text!r} is not [host]:port")
        return "", 0
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        problems.append(f"--web.listen-address: port {port_text!r} is not a number")
        return host, 0
    if not 0 < port < 65536:
        problems.append(f"--web.listen-address: port {port} is out of range 1-65535")
    return host, port


def parse_config(argv: Sequence[str] | None = None) -> ExporterConfig:
    """Parse flags; raise ConfigError listing every problem found."""
    args = build_parser().parse_args(argv)
    problems: list[str] = []
    host, port = _listen_address(args.listen, problems)
    if not args.path.startswith("/") or args.path == "/":
        problems.append(f"--web.telemetry-path: {args.path!r} must start with / and not be /")
    cpus = _positive_int(args.cpus, "--host.cpus", problems)
    memory = _positive_int(args.memory, "--host.memory-bytes", problems)
    timeout = _positive_float(args.timeout, "--scrape.timeout", problems)
    xml_max_age = _positive_float(args.xml_max_age, "--xml.max-age", problems)
    concurrency = _positive_int(args.concurrency, "--libvirt.stats-concurrency", problems)
    private, public = frozenset(args.private), frozenset(args.public)
    for name in sorted(private & public):
        problems.append(f"--bridge.private/--bridge.public: {name!r} is given as both")
    for name in sorted(private | public):
        if not name.strip():
            problems.append("--bridge.private/--bridge.public: empty bridge name")
    if not args.uri.strip():
        problems.append("--libvirt.uri: empty")
    if problems:
        raise ConfigError("virtbalance-exporter flags", problems)
    return ExporterConfig(
        libvirt_uri=args.uri,
        listen_host=host,
        listen_port=port,
        telemetry_path=args.path,
        host_cpus=cpus,
        host_memory_bytes=memory,
        private_bridges=private,
        public_bridges=public,
        scrape_timeout=timeout,
        xml_max_age=xml_max_age,
        stats_concurrency=concurrency or DEFAULT_STATS_CONCURRENCY,
        collect_dirty_rate=bool(args.dirty_rate),
        web_config_file=args.web_config,
    )
