"""Command-line flags of ``virtbalance-exporter``, parsed once into a validated ``ExporterConfig``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from virtbalance import __version__
from virtbalance.durations import parse_duration
from virtbalance.errors import ConfigError

# 9177 belongs to the Go libvirt exporters; 9178 keeps both side by side on one hypervisor.
DEFAULT_LISTEN_ADDRESS = ":9178"
DEFAULT_URI = "qemu:///system"
DEFAULT_TELEMETRY_PATH = "/metrics"
DEFAULT_SCRAPE_TIMEOUT = 8.0
DEFAULT_XML_MAX_AGE = 60.0
DEFAULT_STATS_CONCURRENCY = 4
# inovex's exporter takes a socket path in --libvirt.uri and the driver URI in --libvirt.driver.
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")


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
    job_sweep_seconds: float = 0.0  # 0: every domain's job every scrape; see exporter/jobs.py
    health_path: str = ""  # "" = no health endpoint
    log_level: str = "info"
    log_format: str = "logfmt"


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as ConfigError instead of exiting, so the caller decides."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError("virtbalance-exporter flags", [message])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="virtbalance-exporter",
        description="Prometheus exporter for libvirt: host capacity, VM usage, chunk topology.",
    )
    parser.add_argument(
        "--libvirt.uri",
        dest="uri",
        default=None,
        help=f"libvirt URI (default {DEFAULT_URI}), or the path of libvirtd's socket as inovex's "
        "exporter takes it (then --libvirt.driver names the driver)",
    )
    parser.add_argument(
        "--libvirt.driver",
        dest="driver",
        default=None,
        help=f"driver URI used with a socket path in --libvirt.uri (default {DEFAULT_URI})",
    )
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
        "--web.health-path",
        dest="health",
        default="",
        help="path of a health endpoint: 200 while libvirt answers, 503 otherwise (default: none)",
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
    for kind in ("private", "public"):
        parser.add_argument(
            f"--bridge.{kind}",
            dest=kind,
            action="append",
            default=[],
            metavar="NAME",
            help=f"treat this bridge or libvirt network as {kind} (repeatable)",
        )
    parser.add_argument(
        "--scrape.timeout",
        dest="timeout",
        default=None,
        help=f"seconds one scrape may spend talking to libvirt (default {DEFAULT_SCRAPE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--exporter.timeout",
        dest="go_timeout",
        default=None,
        help="--scrape.timeout as a Go duration (3s, 500ms), as inovex's exporter takes it",
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
        default=None,
        help="concurrent bulk stats calls over shards of the domains (1: one call; "
        f"default {DEFAULT_STATS_CONCURRENCY})",
    )
    parser.add_argument(
        "--exporter.max-concurrent-collects",
        dest="max_collects",
        default=None,
        help="--libvirt.stats-concurrency under the name inovex's exporter uses",
    )
    parser.add_argument(
        "--version", action="version", version=f"virtbalance-exporter {__version__}"
    )
    parser.add_argument(
        "--log.level", dest="log_level", default="info", help=f"one of {', '.join(LOG_LEVELS)}"
    )
    parser.add_argument(
        "--log.format", dest="log_format", default="logfmt", help=f"one of {', '.join(LOG_FORMATS)}"
    )
    parser.add_argument(
        "--libvirt.job-sweep-interval",
        dest="job_sweep",
        default="0",
        help="0 (default): ask every running domain for its job each scrape; N > 0: only the "
        "domains libvirt's events mark (and paused or new ones), and all of them every N seconds",
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


def go_duration_seconds(text: str) -> float | None:
    """Seconds of a Go duration ("3s", "1m30s", "250ms") or a plain number of seconds; None if neither."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except ValueError:
        return None


def _alias(
    ours: str | None, theirs: str | None, flags: tuple[str, str], problems: list[str]
) -> str | None:
    """One value from a flag and its inovex-named twin; giving both is an error."""
    if ours is not None and theirs is not None:
        problems.append(f"{flags[0]} and {flags[1]} are the same setting: give one")
    return ours if ours is not None else theirs


def _libvirt_uri(uri: str | None, driver: str | None, problems: list[str]) -> str:
    """Our URI flag, or inovex's pair: a socket path in --libvirt.uri plus --libvirt.driver."""
    if uri is None:
        return driver if driver is not None else DEFAULT_URI
    if not uri.startswith("/"):
        if driver is not None and driver != uri:
            problems.append(
                "--libvirt.driver: only applies when --libvirt.uri is a socket path, "
                f"but --libvirt.uri is the URI {uri!r}"
            )
        return uri
    scheme, sep, rest = (driver or DEFAULT_URI).partition(":///")
    if not sep or "+" in scheme or "?" in rest:
        problems.append(
            f"--libvirt.driver: {driver!r} is not a local driver URI such as qemu:///system"
        )
        return uri
    return f"{scheme}+unix:///{rest}?socket={uri}"


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
    if not args.path.startswith("/"):
        problems.append(f"--web.telemetry-path: {args.path!r} must start with /")
    if args.health and (not args.health.startswith("/") or args.health == args.path):
        problems.append(
            f"--web.health-path: {args.health!r} must start with / and differ from the metrics path"
        )
    uri = _libvirt_uri(args.uri, args.driver, problems)
    cpus = _positive_int(args.cpus, "--host.cpus", problems)
    memory = _positive_int(args.memory, "--host.memory-bytes", problems)
    timeout_text = _alias(
        args.timeout, args.go_timeout, ("--scrape.timeout", "--exporter.timeout"), problems
    )
    timeout = DEFAULT_SCRAPE_TIMEOUT
    if args.go_timeout is not None and args.timeout is None:
        seconds = go_duration_seconds(args.go_timeout)
        if seconds is None or seconds <= 0:
            problems.append(
                f"--exporter.timeout: {args.go_timeout!r} is not a positive duration such as 3s"
            )
        else:
            timeout = seconds
    elif timeout_text is not None:
        timeout = _positive_float(timeout_text, "--scrape.timeout", problems)
    xml_max_age = _positive_float(args.xml_max_age, "--xml.max-age", problems)
    job_sweep = 0.0
    try:
        job_sweep = float(args.job_sweep)
    except ValueError:
        problems.append(
            f"--libvirt.job-sweep-interval: {args.job_sweep!r} is not a number of seconds"
        )
    if job_sweep < 0:
        problems.append(f"--libvirt.job-sweep-interval: must be 0 or more, got {args.job_sweep}")
    concurrency_text = _alias(
        args.concurrency,
        args.max_collects,
        ("--libvirt.stats-concurrency", "--exporter.max-concurrent-collects"),
        problems,
    )
    concurrency = _positive_int(
        concurrency_text,
        "--libvirt.stats-concurrency"
        if args.concurrency is not None
        else "--exporter.max-concurrent-collects",
        problems,
    )
    if args.log_level not in LOG_LEVELS:
        problems.append(f"--log.level: {args.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    if args.log_format not in LOG_FORMATS:
        problems.append(f"--log.format: {args.log_format!r} is not one of {', '.join(LOG_FORMATS)}")
    private, public = frozenset(args.private), frozenset(args.public)
    for name in sorted(private & public):
        problems.append(f"--bridge.private/--bridge.public: {name!r} is given as both")
    for name in sorted(private | public):
        if not name.strip():
            problems.append("--bridge.private/--bridge.public: empty bridge name")
    if not uri.strip():
        problems.append("--libvirt.uri: empty")
    if problems:
        raise ConfigError("virtbalance-exporter flags", problems)
    return ExporterConfig(
        libvirt_uri=uri,
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
        job_sweep_seconds=job_sweep,
        health_path=args.health,
        log_level=args.log_level,
        log_format=args.log_format,
    )
