"""The actioner's configuration: YAML parsed once into a validated frozen object, every problem listed."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from virtbalance.contract import ALERT_HOT, ALERT_IMBALANCED, ALERT_OVERLOAD, ALERT_UNDERUTILIZED
from virtbalance.errors import ConfigError
from virtbalance.policy import Policy
from virtbalance.reader import (
    DURATION,
    NOT_NEGATIVE,
    POSITIVE,
    SIZE,
    Check,
    option,
    pattern,
    read_section,
    spec,
)
from virtbalance.yamlfile import read_yaml

COPY_STORAGE = ("none", "all", "incremental")
# What becomes of a guest's disk image on the host it left after a move with copy_storage: kept (the
# default: an operator removes it once satisfied) or removed through that host's storage API.
SOURCE_DISK_AFTER_MOVE = ("keep", "remove")
# URI schemes libvirt accepts for a remote hypervisor; a password in the URI is refused.
_LIBVIRT_SCHEMES = re.compile(r"^(qemu|test)(\+(tcp|tls|ssh|libssh|libssh2|unix|ext))?$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_POSITIVE = (POSITIVE,)
_TEXT = (Check(lambda value: bool(value.strip()), "expected a non-empty string"),)


def _stream_uri(schemes: tuple[str, ...], host_needed: tuple[str, ...]) -> Check:
    """A migration or NBD stream address: one of ``schemes``, with a host for ``host_needed``."""

    def holds(uri: str) -> bool:
        parts = urlsplit(uri)
        return parts.scheme in schemes and (parts.scheme not in host_needed or bool(parts.hostname))

    return Check(holds, "expected tcp://ADDRESS[:PORT]")


def _http_url(raw: Any) -> str:
    """An http(s) URL without an inline password, its trailing slash dropped."""
    if not isinstance(raw, str):
        raise ValueError(f"expected a URL, got {raw!r}")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http(s) URL, got {raw!r}")
    if parts.password:
        raise ValueError("must not carry a password inline")
    return raw.rstrip("/")


def _tcp_port(value: int) -> bool:
    return 0 <= value <= 65535


@dataclass(frozen=True)
class HostConfig:
    """One hypervisor: how to reach libvirt and where migration traffic goes."""

    name: str = field(
        metadata=spec(checks=(pattern(_HOST_NAME, "a host name (letters, digits, _.-)"),))
    )
    uri: str = field(metadata=spec(checks=_TEXT))
    migration_uri: str | None = option(
        None, checks=(_stream_uri(("tcp", "rdma", "unix"), ("tcp", "rdma")),)
    )
    # where the destination's NBD server listens for a storage copy (tcp://ADDRESS[:PORT]); libvirt's
    # default is the migration address on a port of its own range
    disks_uri: str | None = option(None, checks=(_stream_uri(("tcp", "unix"), ("tcp",)),))
    # declared capacity, overriding what libvirt reports
    cpus: float | None = option(None, checks=_POSITIVE)
    memory_bytes: int | None = option(None, key="memory", unit=SIZE, checks=_POSITIVE)

    def section_problems(self) -> list[tuple[str, str]]:
        """A libvirt URI of a scheme libvirt serves remotely, without an inline password."""
        parts = urlsplit(self.uri)
        if not _LIBVIRT_SCHEMES.match(parts.scheme):
            scheme = f"unsupported libvirt URI scheme {parts.scheme!r}"
            return [("uri", f"{scheme} (qemu, qemu+tls, qemu+ssh, qemu+tcp, ...)")]
        if parts.password:
            return [("uri", "must not carry a password inline (use TLS certificates or SSH keys)")]
        return []


@dataclass(frozen=True)
class PrometheusConfig:
    """Where CPU demand and memory come from; ``url`` None means read them from libvirt directly."""

    url: str | None = option(None, parse=_http_url)
    timeout: float = option(10.0, unit=DURATION)
    # Without Prometheus, CPU usage is two samples of cpu.time this far apart.
    fallback_sample_interval: float = option(2.0, unit=DURATION, checks=_POSITIVE)
    fallback_to_libvirt: bool = True


@dataclass(frozen=True)
class AlertmanagerConfig:
    """Alertmanager API: silences are freezes; announce mode posts planned moves as alerts first."""

    url: str | None = option(None, parse=_http_url)
    timeout: float = option(5.0, unit=DURATION)
    announce: bool = False
    announce_delay: float = option(60.0, unit=DURATION)

    def section_problems(self) -> list[tuple[str, str]]:
        if self.announce and self.url is None:
            return [("announce", "needs alertmanager.url")]
        return []


@dataclass(frozen=True)
class WebhookConfig:
    """How Alertmanager reaches the actioner."""

    token_file: Path | None = field(default=None, metadata=spec(relative=True))
    max_body_bytes: int = option(1024 * 1024, unit=SIZE, checks=_POSITIVE)
    # Alerts acted upon, each in its mode (actioner.webhook.mode_of); which of them arrive, and when, is
    # Alertmanager's routing (active_time_intervals for consolidation).
    alertnames: tuple[str, ...] = option(
        (ALERT_OVERLOAD, ALERT_HOT, ALERT_UNDERUTILIZED, ALERT_IMBALANCED), each=_TEXT
    )
    # Both from the file's `listen: HOST:PORT` (read_listen).
    listen_host: str = option("127.0.0.1", read=False)
    listen_port: int = option(9096, read=False)
    threads: int = option(4, checks=_POSITIVE)

    def section_problems(self) -> list[tuple[str, str]]:
        if self.token_file is None:
            if _is_loopback(self.listen_host):
                return []
            # Anyone who reaches a non-loopback address could trigger migrations and read the plans.
            return [
                (
                    "token_file",
                    f"required when webhook.listen ({self.listen_host}) is not a loopback address",
                )
            ]
        try:
            if not self.token_file.read_text(encoding="utf-8").strip():
                return [("token_file", f"{self.token_file} is empty")]
        except OSError as exc:
            return [("token_file", f"cannot read {self.token_file}: {exc.strerror}")]
        return []


def read_listen(raw: Any, problems: list[str]) -> dict[str, Any]:
    """``webhook.listen`` (``HOST:PORT``, ``[::1]:PORT``) as WebhookConfig's two fields; {} if absent."""
    if raw is None:
        return {}
    text = raw if isinstance(raw, str) else ""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        problems.append(f"webhook.listen: expected HOST:PORT, got {raw!r}")
        return {}
    return {"listen_host": host.strip("[]"), "listen_port": int(port)}


# How long a clean stop (SIGTERM) may take to abort and resolve the migrations in flight; below the
# systemd unit's TimeoutStopSec (deploy/virtbalance-actioner.service), so the stop is never a SIGKILL.
STOP_GRACE = 100.0


@dataclass(frozen=True)
class ExecutionConfig:
    """Safety rails and libvirt migration settings of the executor."""

    dry_run: bool = False
    max_concurrent: int = option(4, checks=_POSITIVE)
    max_concurrent_per_host: int = option(4, checks=_POSITIVE)
    migration_timeout: float = option(600.0, unit=DURATION, checks=_POSITIVE)
    bandwidth_mib_per_s: int = option(0, checks=(NOT_NEGATIVE,))  # 0: unlimited
    auto_converge: bool = True
    post_copy: bool = False
    copy_storage: str = option("none", choices=COPY_STORAGE)
    source_disk_after_move: str = option("keep", choices=SOURCE_DISK_AFTER_MOVE)
    # NBD port on the destination for storage copies (0: libvirt picks one); a host's disks_uri wins
    nbd_port: int = option(0, checks=(Check(_tcp_port, "must be a TCP port 1..65535"),))
    # TLS for memory and NBD streams (VIR_MIGRATE_TLS): needs libvirt's migrate_tls certificates
    migration_tls: bool = False
    # Storage copies in one chunk step at once (each reads a whole disk): lower than max_concurrent
    max_concurrent_storage_copies: int = option(2, checks=_POSITIVE)
    # The copy rate to count on when a move copies storage: each member's timeout grows by its disk
    # bytes at this rate (see storage_timeout)
    storage_copy_mib_per_s: int = option(20, checks=_POSITIVE)
    unsafe: bool = False
    # The source libvirtd drives the migration: the actioner dying mid-job cannot strand it between
    # Finish and Confirm (client-driven migration can, leaving the source paused, see actioner.proof).
    peer2peer: bool = True
    manage_bridges: bool = True
    replan_rounds: int = option(3, checks=_POSITIVE)
    # Hosts read at once for a snapshot: connections opened and read concurrently, never more than this
    # (a thousand hypervisors read one by one would take seconds; all at once would flood the network).
    snapshot_connections: int = option(32, checks=_POSITIVE)
    # How often domains in doubt (ambiguous, or paused by a migration without a job) are judged again.
    recheck_interval: float = option(30.0, unit=DURATION, checks=_POSITIVE)
    # A private bridge is one of these names (glob); others are shared uplinks present on every host.
    private_bridges: tuple[str, ...] = option(("*",), each=_TEXT)
    shared_bridges: tuple[str, ...] = option((), each=_TEXT)

    def section_problems(self) -> list[tuple[str, str]]:
        problems = []
        if self.max_concurrent_per_host > self.max_concurrent:
            problems.append(("max_concurrent_per_host", "must not exceed execution.max_concurrent"))
        if self.copy_storage != "none" and self.unsafe:
            # unsafe skips the very check that tells a copied disk from a shared one
            problems.append(("unsafe", "must be off when execution.copy_storage copies disks"))
        return problems


@dataclass(frozen=True)
class Journal:
    """Where the actioner keeps its journal (the file's ``journal`` section)."""

    path: Path = field(
        default=Path("/var/lib/virtbalance/journal.sqlite"), metadata=spec(relative=True)
    )


@dataclass(frozen=True)
class _TopLevel:
    """The file's top-level keys that are not fields of Config: read first, they fill some of its fields."""

    policy_file: Path | None = field(default=None, metadata=spec(relative=True))
    journal: Journal = field(default_factory=Journal)
    # A short form of execution.dry_run.
    dry_run: bool | None = None


_TOP_LEVEL = ("policy_file", "journal", "dry_run")


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; defaults live in the dataclasses above and nowhere else."""

    hosts: tuple[HostConfig, ...] = field(
        metadata=spec(keyed="name", short="uri", min_items=1, hint="name -> libvirt URI")
    )
    policy: Policy
    journal_path: Path = field(metadata=spec(read=False))
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    source: str = option("config", read=False)

    @property
    def dry_run(self) -> bool:
        return self.execution.dry_run

    def host(self, name: str) -> HostConfig:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    def read_token(self) -> str | None:
        """The webhook bearer token, read at startup; None when no token file is configured."""
        if self.webhook.token_file is None:
            return None
        return self.webhook.token_file.read_text(encoding="utf-8").strip()


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost`` (any other name may resolve elsewhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_policy_file(path: Path, problems: list[str]) -> Policy:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"policy_file: cannot read {path}: {exc.strerror}")
        return Policy()
    except yaml.YAMLError as exc:
        problems.append(f"policy_file: {path} is not valid YAML: {exc}")
        return Policy()
    policy, found = Policy.parse(loaded, prefix="policy_file:")
    problems.extend(found)
    return policy


def parse_config(data: Any, source: str = "config", base: Path | None = None) -> Config:
    """Validate a parsed YAML document; raise ConfigError listing every problem at once."""
    base = base or Path.cwd()
    if not isinstance(data, Mapping):
        raise ConfigError(source, [f"expected a mapping at the top, got {type(data).__name__}"])
    problems: list[str] = []
    top_level = {k: v for k, v in data.items() if k in _TOP_LEVEL}
    top = read_section(_TopLevel, top_level, "", problems, base=base) or _TopLevel()
    given: dict[str, Any] = {"journal_path": top.journal.path, "source": source}
    if top.policy_file is not None:
        if "policy" in data:
            problems.append("policy_file: give either policy or policy_file, not both")
        given["policy"] = _read_policy_file(top.policy_file, problems)
    elif "policy" not in data:
        given["policy"] = Policy()
    raw_webhook = data.get("webhook")
    if isinstance(raw_webhook, Mapping):
        listen = read_listen(raw_webhook.get("listen"), problems)
        webhook = read_section(
            WebhookConfig, raw_webhook, "webhook", problems, base=base, skip=("listen",), **listen
        )
        given["webhook"] = webhook or WebhookConfig()
    skip = (*_TOP_LEVEL, *(k for k in ("policy", "webhook") if k in given))
    config = read_section(Config, data, "", problems, base=base, skip=skip, **given)
    if config is None:
        raise ConfigError(source, problems)
    raw_execution = data.get("execution")
    execution = raw_execution if isinstance(raw_execution, Mapping) else {}
    if top.dry_run is not None:
        written = execution.get("dry_run")
        if isinstance(written, bool) and written != top.dry_run:
            problems.append("dry_run: contradicts execution.dry_run")
        config = replace(config, execution=replace(config.execution, dry_run=top.dry_run))
    if config.execution.copy_storage == "none":
        copy_only = [
            f"execution.{k}" for k in ("source_disk_after_move", "nbd_port") if k in execution
        ]
        copy_only += [f"hosts.{h.name}.disks_uri" for h in config.hosts if h.disks_uri]
        problems += [
            f"{where}: only used with execution.copy_storage all or incremental"
            for where in copy_only
        ]
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML file; ConfigError naming the file and every problem."""
    path = Path(path)
    data = read_yaml(path)
    return parse_config(data, source=str(path), base=path.parent.resolve())
