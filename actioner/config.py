"""The actioner's configuration: YAML parsed once into a validated frozen object, every problem listed."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from virtbalance.contract import ALERT_HOT, ALERT_IMBALANCED, ALERT_OVERLOAD, ALERT_UNDERUTILIZED
from virtbalance.durations import parse_duration
from virtbalance.errors import ConfigError
from virtbalance.policy import Policy
from virtbalance.sizes import parse_size
from virtbalance.yamlfile import read_yaml

COPY_STORAGE = ("none", "all", "incremental")
# What becomes of a guest's disk image on the host it left after a move with copy_storage: kept (the
# default: an operator removes it once satisfied) or removed through that host's storage API.
SOURCE_DISK_AFTER_MOVE = ("keep", "remove")
# URI schemes libvirt accepts for a remote hypervisor; a password in the URI is refused.
_LIBVIRT_SCHEMES = re.compile(r"^(qemu|test)(\+(tcp|tls|ssh|libssh|libssh2|unix|ext))?$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class HostConfig:
    """One hypervisor: how to reach libvirt and where migration traffic goes."""

    name: str
    uri: str
    migration_uri: str | None = None
    # where the destination's NBD server listens for a storage copy (tcp://ADDRESS[:PORT]); libvirt's
    # default is the migration address on a port of its own range
    disks_uri: str | None = None
    cpus: float | None = None  # declared capacity, overriding what libvirt reports
    memory_bytes: int | None = None


@dataclass(frozen=True)
class PrometheusConfig:
    """Where CPU demand and memory come from; ``url`` None means read them from libvirt directly."""

    url: str | None = None
    timeout: float = 10.0
    # Without Prometheus, CPU usage is two samples of cpu.time this far apart.
    fallback_sample_interval: float = 2.0
    fallback_to_libvirt: bool = True


@dataclass(frozen=True)
class AlertmanagerConfig:
    """Alertmanager API: silences are freezes; announce mode posts planned moves as alerts first."""

    url: str | None = None
    timeout: float = 5.0
    announce: bool = False
    announce_delay: float = 60.0


@dataclass(frozen=True)
class WebhookConfig:
    """How Alertmanager reaches the actioner."""

    token_file: Path | None = None
    max_body_bytes: int = 1024 * 1024
    # Alerts acted upon, each in its mode (actioner.webhook.mode_of); which of them arrive, and when, is
    # Alertmanager's routing (active_time_intervals for consolidation).
    alertnames: tuple[str, ...] = (
        ALERT_OVERLOAD,
        ALERT_HOT,
        ALERT_UNDERUTILIZED,
        ALERT_IMBALANCED,
    )
    listen_host: str = "127.0.0.1"
    listen_port: int = 9096
    threads: int = 4


# How long a clean stop (SIGTERM) may take to abort and resolve the migrations in flight; below the
# systemd unit's TimeoutStopSec (deploy/virtbalance-actioner.service), so the stop is never a SIGKILL.
STOP_GRACE = 100.0


@dataclass(frozen=True)
class ExecutionConfig:
    """Safety rails and libvirt migration settings of the executor."""

    dry_run: bool = False
    max_concurrent: int = 4
    max_concurrent_per_host: int = 4
    migration_timeout: float = 600.0
    bandwidth_mib_per_s: int = 0  # 0: unlimited
    auto_converge: bool = True
    post_copy: bool = False
    copy_storage: str = "none"
    source_disk_after_move: str = "keep"
    # NBD port on the destination for storage copies (0: libvirt picks one); a host's disks_uri wins
    nbd_port: int = 0
    # TLS for memory and NBD streams (VIR_MIGRATE_TLS): needs libvirt's migrate_tls certificates
    migration_tls: bool = False
    # Storage copies in one chunk step at once (each reads a whole disk): lower than max_concurrent
    max_concurrent_storage_copies: int = 2
    # The copy rate to count on when a move copies storage: each member's timeout grows by its disk
    # bytes at this rate (see storage_timeout)
    storage_copy_mib_per_s: int = 20
    unsafe: bool = False
    # The source libvirtd drives the migration: the actioner dying mid-job cannot strand it between
    # Finish and Confirm (client-driven migration can, leaving the source paused, see actioner.proof).
    peer2peer: bool = True
    manage_bridges: bool = True
    replan_rounds: int = 3
    # Hosts read at once for a snapshot: connections opened and read concurrently, never more than this
    # (a thousand hypervisors read one by one would take seconds; all at once would flood the network).
    snapshot_connections: int = 32
    # How often domains in doubt (ambiguous, or paused by a migration without a job) are judged again.
    recheck_interval: float = 30.0
    # A private bridge is one of these names (glob); others are shared uplinks present on every host.
    private_bridges: tuple[str, ...] = ("*",)
    shared_bridges: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """The whole validated configuration; defaults live in the dataclasses above and nowhere else."""

    hosts: tuple[HostConfig, ...]
    policy: Policy
    journal_path: Path
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    alertmanager: AlertmanagerConfig = field(default_factory=AlertmanagerConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    source: str = "config"

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


_TOP_KEYS = (
    "hosts",
    "policy",
    "policy_file",
    "journal",
    "prometheus",
    "alertmanager",
    "webhook",
    "execution",
    "dry_run",
)


class _Reader:
    """Reads typed values from nested mappings, collecting every problem with its dotted path."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def section(self, data: Mapping[str, Any], key: str, known: tuple[str, ...]) -> dict[str, Any]:
        raw = data.get(key)
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.problems.append(f"{key}: expected a mapping, got {type(raw).__name__}")
            return {}
        for sub in raw:
            if sub not in known:
                self.problems.append(f"{key}.{sub}: unknown key (known: {', '.join(known)})")
        return dict(raw)

    def value(self, path: str, data: Mapping[str, Any], key: str, default: Any, kind: str) -> Any:
        if key not in data or data[key] is None:
            return default
        raw = data[key]
        where = f"{path}.{key}" if path else key
        try:
            return _coerce(kind, raw)
        except ValueError as exc:
            self.problems.append(f"{where}: {exc}")
            return default


def _coerce(kind: str, raw: Any) -> Any:
    if kind == "duration":
        return parse_duration(raw)
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ValueError(f"expected true or false, got {raw!r}")
        return raw
    if kind in ("int", "posint"):
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected a whole number, got {raw!r}")
        if raw < 0 or (kind == "posint" and raw == 0):
            raise ValueError(
                f"must be {'positive' if kind == 'posint' else 'non-negative'}, got {raw}"
            )
        return raw
    if kind == "posfloat":
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
            raise ValueError(f"expected a positive number, got {raw!r}")
        return float(raw)
    if kind == "size":
        return positive_size(raw)
    if kind == "str":
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError(f"expected a non-empty string, got {raw!r}")
        return raw.strip()
    if kind == "url":
        if not isinstance(raw, str):
            raise ValueError(f"expected a URL, got {raw!r}")
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected an http(s) URL, got {raw!r}")
        if parts.password:
            raise ValueError("must not carry a password inline")
        return raw.rstrip("/")
    if kind == "strlist":
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
            raise ValueError(f"expected a list of non-empty strings, got {raw!r}")
        return tuple(raw)
    raise AssertionError(kind)


def positive_size(raw: Any) -> int:
    """Bytes from ``1024``, ``64GiB``, ``512M`` (virtbalance.sizes); a size here must be more than 0."""
    size = parse_size(raw)
    if size <= 0:
        raise ValueError(f"must be positive, got {raw!r}")
    return size


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost`` (any other name may resolve elsewhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_libvirt_uri(uri: str) -> str | None:
    parts = urlsplit(uri)
    if not _LIBVIRT_SCHEMES.match(parts.scheme):
        return f"unsupported libvirt URI scheme {parts.scheme!r} (qemu, qemu+tls, qemu+ssh, qemu+tcp, ...)"
    if parts.password:
        return "must not carry a password inline (use TLS certificates or SSH keys)"
    return None


def _parse_hosts(reader: _Reader, raw: Any) -> tuple[HostConfig, ...]:
    if raw is None:
        reader.problems.append("hosts: missing (name -> libvirt URI)")
        return ()
    if not isinstance(raw, Mapping) or not raw:
        reader.problems.append("hosts: expected a non-empty mapping of host name -> settings")
        return ()
    known = ("uri", "migration_uri", "disks_uri", "cpus", "memory")
    hosts = []
    for name, spec in raw.items():
        path = f"hosts.{name}"
        if not isinstance(name, str) or not _HOST_NAME.match(name):
            reader.problems.append(f"{path}: not a valid host name")
            continue
        if isinstance(spec, str):
            spec = {"uri": spec}  # noqa: PLW2901 - the short form `name: URI`
        if not isinstance(spec, Mapping):
            reader.problems.append(
                f"{path}: expected a URI or a mapping, got {type(spec).__name__}"
            )
            continue
        for key in spec:
            if key not in known:
                reader.problems.append(f"{path}.{key}: unknown key (known: {', '.join(known)})")
        uri = reader.value(path, spec, "uri", None, "str")
        if uri is None:
            if "uri" not in spec or spec["uri"] is None:
                reader.problems.append(f"{path}.uri: missing")
            continue
        problem = _check_libvirt_uri(uri)
        if problem:
            reader.problems.append(f"{path}.uri: {problem}")
        migration_uri = reader.value(path, spec, "migration_uri", None, "str")
        if migration_uri is not None:
            mparts = urlsplit(migration_uri)
            if mparts.scheme not in ("tcp", "rdma", "unix") or (
                mparts.scheme != "unix" and not mparts.hostname
            ):
                reader.problems.append(
                    f"{path}.migration_uri: expected tcp://ADDRESS[:PORT], got {migration_uri!r}"
                )
        disks_uri = reader.value(path, spec, "disks_uri", None, "str")
        if disks_uri is not None:
            dparts = urlsplit(disks_uri)
            if dparts.scheme not in ("tcp", "unix") or (
                dparts.scheme == "tcp" and not dparts.hostname
            ):
                reader.problems.append(
                    f"{path}.disks_uri: expected tcp://ADDRESS[:PORT], got {disks_uri!r}"
                )
        hosts.append(
            HostConfig(
                name=name,
                uri=uri,
                migration_uri=migration_uri,
                disks_uri=disks_uri,
                cpus=reader.value(path, spec, "cpus", None, "posfloat"),
                memory_bytes=reader.value(path, spec, "memory", None, "size"),
            )
        )
    return tuple(hosts)


def _parse_policy(reader: _Reader, data: Mapping[str, Any], base: Path) -> Policy:
    if "policy" in data and "policy_file" in data:
        reader.problems.append("policy_file: give either policy or policy_file, not both")
        return Policy()
    if "policy_file" in data:
        path_value = reader.value("", data, "policy_file", None, "str")
        if path_value is None:
            return Policy()
        path = Path(path_value)
        if not path.is_absolute():
            path = base / path
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            reader.problems.append(f"policy_file: cannot read {path}: {exc.strerror}")
            return Policy()
        except yaml.YAMLError as exc:
            reader.problems.append(f"policy_file: {path} is not valid YAML: {exc}")
            return Policy()
        policy, problems = Policy.parse(loaded, prefix="policy_file:")
        reader.problems.extend(problems)
        return policy
    policy, problems = Policy.parse(data.get("policy"), prefix="policy.")
    reader.problems.extend(problems)
    return policy


def parse_config(data: Any, source: str = "config", base: Path | None = None) -> Config:
    """Validate a parsed YAML document; raise ConfigError listing every problem at once."""
    reader = _Reader()
    base = base or Path.cwd()
    if not isinstance(data, Mapping):
        raise ConfigError(source, [f"expected a mapping at the top, got {type(data).__name__}"])
    for key in data:
        if key not in _TOP_KEYS:
            reader.problems.append(f"{key}: unknown key (known: {', '.join(_TOP_KEYS)})")

    hosts = _parse_hosts(reader, data.get("hosts"))
    policy = _parse_policy(reader, data, base)

    journal = reader.section(data, "journal", ("path",))
    journal_value = reader.value(
        "journal", journal, "path", "/var/lib/virtbalance/journal.sqlite", "str"
    )
    journal_path = Path(journal_value)
    if not journal_path.is_absolute():
        journal_path = base / journal_path

    p = reader.section(
        data, "prometheus", ("url", "timeout", "fallback_sample_interval", "fallback_to_libvirt")
    )
    pdef = PrometheusConfig()
    prometheus = PrometheusConfig(
        url=reader.value("prometheus", p, "url", pdef.url, "url"),
        timeout=reader.value("prometheus", p, "timeout", pdef.timeout, "duration"),
        fallback_sample_interval=reader.value(
            "prometheus", p, "fallback_sample_interval", pdef.fallback_sample_interval, "duration"
        ),
        fallback_to_libvirt=reader.value(
            "prometheus", p, "fallback_to_libvirt", pdef.fallback_to_libvirt, "bool"
        ),
    )
    if prometheus.fallback_sample_interval <= 0:
        reader.problems.append("prometheus.fallback_sample_interval: must be positive")

    a = reader.section(data, "alertmanager", ("url", "timeout", "announce", "announce_delay"))
    adef = AlertmanagerConfig()
    alertmanager = AlertmanagerConfig(
        url=reader.value("alertmanager", a, "url", adef.url, "url"),
        timeout=reader.value("alertmanager", a, "timeout", adef.timeout, "duration"),
        announce=reader.value("alertmanager", a, "announce", adef.announce, "bool"),
        announce_delay=reader.value(
            "alertmanager", a, "announce_delay", adef.announce_delay, "duration"
        ),
    )
    if alertmanager.announce and alertmanager.url is None:
        reader.problems.append("alertmanager.announce: needs alertmanager.url")

    w = reader.section(
        data, "webhook", ("token_file", "max_body_bytes", "alertnames", "listen", "threads")
    )
    wdef = WebhookConfig()
    token_value = reader.value("webhook", w, "token_file", None, "str")
    token_file: Path | None = None
    if token_value is not None:
        token_file = Path(token_value)
        if not token_file.is_absolute():
            token_file = base / token_file
        try:
            if not token_file.read_text(encoding="utf-8").strip():
                reader.problems.append(f"webhook.token_file: {token_file} is empty")
        except OSError as exc:
            reader.problems.append(f"webhook.token_file: cannot read {token_file}: {exc.strerror}")
    listen_host, listen_port = wdef.listen_host, wdef.listen_port
    listen = reader.value("webhook", w, "listen", None, "str")
    if listen is not None:
        host_part, _, port_part = listen.rpartition(":")
        if not host_part or not port_part.isdigit() or not 0 < int(port_part) < 65536:
            reader.problems.append(f"webhook.listen: expected HOST:PORT, got {listen!r}")
        else:
            listen_host, listen_port = host_part.strip("[]"), int(port_part)
    if token_value is None and not _is_loopback(listen_host):
        # Anyone who reaches a non-loopback address could trigger migrations and read the plans.
        reader.problems.append(
            f"webhook.token_file: required when webhook.listen ({listen_host}) is not a loopback address"
        )
    webhook = WebhookConfig(
        token_file=token_file,
        max_body_bytes=reader.value("webhook", w, "max_body_bytes", wdef.max_body_bytes, "size"),
        alertnames=reader.value("webhook", w, "alertnames", wdef.alertnames, "strlist"),
        listen_host=listen_host,
        listen_port=listen_port,
        threads=reader.value("webhook", w, "threads", wdef.threads, "posint"),
    )

    e = reader.section(
        data,
        "execution",
        (
            "dry_run",
            "max_concurrent",
            "max_concurrent_per_host",
            "migration_timeout",
            "bandwidth_mib_per_s",
            "auto_converge",
            "post_copy",
            "copy_storage",
            "source_disk_after_move",
            "nbd_port",
            "migration_tls",
            "max_concurrent_storage_copies",
            "storage_copy_mib_per_s",
            "unsafe",
            "peer2peer",
            "manage_bridges",
            "replan_rounds",
            "snapshot_connections",
            "recheck_interval",
            "private_bridges",
            "shared_bridges",
        ),
    )
    edef = ExecutionConfig()
    dry_run_top = reader.value("", data, "dry_run", None, "bool")
    dry_run_exec = reader.value("execution", e, "dry_run", None, "bool")
    if dry_run_top is not None and dry_run_exec is not None and dry_run_top != dry_run_exec:
        reader.problems.append("dry_run: contradicts execution.dry_run")
    copy_storage = reader.value("execution", e, "copy_storage", edef.copy_storage, "str")
    if copy_storage not in COPY_STORAGE:
        reader.problems.append(
            f"execution.copy_storage: must be one of {', '.join(COPY_STORAGE)}, got {copy_storage!r}"
        )
    source_disk = reader.value(
        "execution", e, "source_disk_after_move", edef.source_disk_after_move, "str"
    )
    if source_disk not in SOURCE_DISK_AFTER_MOVE:
        reader.problems.append(
            "execution.source_disk_after_move: must be one of "
            f"{', '.join(SOURCE_DISK_AFTER_MOVE)}, got {source_disk!r}"
        )
    execution = ExecutionConfig(
        dry_run=bool(dry_run_top if dry_run_top is not None else (dry_run_exec or False)),
        max_concurrent=reader.value(
            "execution", e, "max_concurrent", edef.max_concurrent, "posint"
        ),
        max_concurrent_per_host=reader.value(
            "execution", e, "max_concurrent_per_host", edef.max_concurrent_per_host, "posint"
        ),
        migration_timeout=reader.value(
            "execution", e, "migration_timeout", edef.migration_timeout, "duration"
        ),
        bandwidth_mib_per_s=reader.value(
            "execution", e, "bandwidth_mib_per_s", edef.bandwidth_mib_per_s, "int"
        ),
        auto_converge=reader.value("execution", e, "auto_converge", edef.auto_converge, "bool"),
        post_copy=reader.value("execution", e, "post_copy", edef.post_copy, "bool"),
        copy_storage=copy_storage,
        source_disk_after_move=source_disk,
        nbd_port=reader.value("execution", e, "nbd_port", edef.nbd_port, "int"),
        migration_tls=reader.value("execution", e, "migration_tls", edef.migration_tls, "bool"),
        max_concurrent_storage_copies=reader.value(
            "execution",
            e,
            "max_concurrent_storage_copies",
            edef.max_concurrent_storage_copies,
            "posint",
        ),
        storage_copy_mib_per_s=reader.value(
            "execution", e, "storage_copy_mib_per_s", edef.storage_copy_mib_per_s, "posint"
        ),
        unsafe=reader.value("execution", e, "unsafe", edef.unsafe, "bool"),
        peer2peer=reader.value("execution", e, "peer2peer", edef.peer2peer, "bool"),
        manage_bridges=reader.value("execution", e, "manage_bridges", edef.manage_bridges, "bool"),
        replan_rounds=reader.value("execution", e, "replan_rounds", edef.replan_rounds, "posint"),
        snapshot_connections=reader.value(
            "execution", e, "snapshot_connections", edef.snapshot_connections, "posint"
        ),
        recheck_interval=reader.value(
            "execution", e, "recheck_interval", edef.recheck_interval, "duration"
        ),
        private_bridges=reader.value(
            "execution", e, "private_bridges", edef.private_bridges, "strlist"
        ),
        shared_bridges=reader.value(
            "execution", e, "shared_bridges", edef.shared_bridges, "strlist"
        ),
    )
    if execution.migration_timeout <= 0:
        reader.problems.append("execution.migration_timeout: must be positive")
    if execution.recheck_interval <= 0:
        reader.problems.append("execution.recheck_interval: must be positive")
    if execution.max_concurrent_per_host > execution.max_concurrent:
        reader.problems.append(
            "execution.max_concurrent_per_host: must not exceed execution.max_concurrent"
        )
    if execution.nbd_port > 65535:
        reader.problems.append(
            f"execution.nbd_port: must be a TCP port 1..65535, got {execution.nbd_port}"
        )
    if execution.copy_storage != "none" and execution.unsafe:
        # unsafe skips the very check that tells a copied disk from a shared one
        reader.problems.append(
            "execution.unsafe: must be off when execution.copy_storage copies disks"
        )
    if execution.copy_storage == "none":
        copy_only: list[str] = [k for k in ("source_disk_after_move", "nbd_port") if k in e]
        copy_only += [f"hosts.{h.name}.disks_uri" for h in hosts if h.disks_uri]
        for key in copy_only:
            where = key if key.startswith("hosts.") else f"execution.{key}"
            reader.problems.append(
                f"{where}: only used with execution.copy_storage all or incremental"
            )
    if reader.problems:
        raise ConfigError(source, reader.problems)
    return Config(
        hosts=hosts,
        policy=policy,
        journal_path=journal_path,
        prometheus=prometheus,
        alertmanager=alertmanager,
        webhook=webhook,
        execution=execution,
        source=source,
    )


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML file; ConfigError naming the file and every problem."""
    path = Path(path)
    data = read_yaml(path)
    return parse_config(data, source=str(path), base=path.parent.resolve())
