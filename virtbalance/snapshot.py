"""Cluster snapshot, format version 1: typed frozen records of hosts and domains, parsed from JSON and validated."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from virtbalance.errors import ValidationError
from virtbalance.records import as_dict
from virtbalance.yamlfile import read_text

VERSION = 1


@dataclass(frozen=True)
class HostState:
    """One hypervisor: capacity and what is used on it (cores and bytes)."""

    name: str
    cpus: float
    memory_bytes: int
    cpu_used: float
    memory_used_bytes: int
    maintenance: bool = False
    # Emptied for power-off by an earlier consolidation: receives nothing unless relief needs its room.
    emptied: bool = False

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_used / self.cpus

    @property
    def memory_ratio(self) -> float:
        return self.memory_used_bytes / self.memory_bytes

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


@dataclass(frozen=True)
class DomainState:
    """One running domain: where it is, what it uses, and the placement facts that constrain moving it."""

    name: str
    host: str
    vcpus: int
    cpu_used: float
    memory_bytes: int
    private_networks: tuple[str, ...] = ()
    group: str | None = None
    anti_affinity: str | None = None
    pinned: bool = False
    last_migrated: float | None = None
    last_host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


@dataclass(frozen=True)
class Snapshot:
    """Where every domain runs and how loaded every host is, at ``time`` (unix seconds)."""

    time: float
    hosts: tuple[HostState, ...]
    domains: tuple[DomainState, ...]
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "time": self.time,
            "hosts": [h.to_dict() for h in self.hosts],
            "domains": [d.to_dict() for d in self.domains],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    def host(self, name: str) -> HostState:
        """The host called ``name``; KeyError if absent."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def with_domains(self, domains: tuple[DomainState, ...]) -> Snapshot:
        return replace(self, domains=domains)


_TOP_KEYS = ("version", "time", "hosts", "domains")
_HOST_KEYS = (
    "name",
    "cpus",
    "memory_bytes",
    "cpu_used",
    "memory_used_bytes",
    "maintenance",
    "emptied",
)
_DOMAIN_KEYS = (
    "name",
    "host",
    "vcpus",
    "cpu_used",
    "memory_bytes",
    "private_networks",
    "group",
    "anti_affinity",
    "pinned",
    "last_migrated",
    "last_host",
)


_Number = TypeVar("_Number", int, float)


def _where(path: str, key: str) -> str:
    """Where a key stands in the document, for a problem's message."""
    return f"{path}.{key}" if path else key


def _finite(raw: Any) -> float | None:
    """A finite JSON number as written (an int stays an int, so messages show it as given)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return raw


def _whole(raw: Any) -> int | None:
    """A whole JSON number; JSON writers may emit 1024.0 for one, so accept that, refuse 1024.5."""
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        return None
    return raw


@dataclass(frozen=True)
class _Kind(Generic[_Number]):
    """How the reader reads one kind of number, and what it names it in a problem."""

    parse: Callable[[Any], _Number | None]
    expected: str


_NUMBER: _Kind[float] = _Kind(_finite, "a number")
_WHOLE: _Kind[int] = _Kind(_whole, "a whole number")


class _Reader:
    """Collects every problem of one document instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def unknown_keys(self, path: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
        for key in data:
            if key not in known:
                self.problems.append(
                    f"{_where(path, str(key))}: unknown key (known: {', '.join(known)})"
                )

    def record(
        self,
        path: str,
        data: Mapping[str, Any],
        known: tuple[str, ...],
        fields: Callable[[_Reader, str, Mapping[str, Any]], dict[str, Any]],
    ) -> dict[str, Any] | None:
        """What ``fields`` reads of ``data``, with its path; None when it found a problem or a key
        not in ``known``."""
        before = len(self.problems)
        self.unknown_keys(path, data, known)
        record = {"_path": path, **fields(self, path, data)}
        return record if len(self.problems) == before else None

    def _get(self, path: str, data: Mapping[str, Any], key: str, required: bool) -> Any:
        if key not in data or data[key] is None:
            if required:
                self.problems.append(f"{_where(path, key)}: missing")
            return None
        return data[key]

    def number(
        self, path: str, data: Mapping[str, Any], key: str, *, required: bool, positive: bool
    ) -> float | None:
        value = self._value(path, data, key, _NUMBER, required=required, positive=positive)
        return None if value is None else float(value)

    def integer(
        self, path: str, data: Mapping[str, Any], key: str, *, required: bool, positive: bool
    ) -> int | None:
        return self._value(path, data, key, _WHOLE, required=required, positive=positive)

    def _value(
        self,
        path: str,
        data: Mapping[str, Any],
        key: str,
        kind: _Kind[_Number],
        *,
        required: bool,
        positive: bool,
    ) -> _Number | None:
        """The key's value as ``kind`` reads it, of the sign asked; None (and a problem) otherwise."""
        raw = self._get(path, data, key, required)
        if raw is None:
            return None
        where = _where(path, key)
        value = kind.parse(raw)
        if value is None:
            self.problems.append(f"{where}: expected {kind.expected}, got {raw!r}")
            return None
        return value if self._sign_ok(where, value, positive) else None

    def _sign_ok(self, where: str, value: float, positive: bool) -> bool:
        """Record a negative (or, when ``positive``, zero) value as a problem; whether it passed."""
        if value < 0:
            self.problems.append(f"{where}: must not be negative, got {value}")
            return False
        if positive and value == 0:
            self.problems.append(f"{where}: must be positive, got {value}")
            return False
        return True

    def string(self, path: str, data: Mapping[str, Any], key: str, *, required: bool) -> str | None:
        raw = self._get(path, data, key, required)
        if raw is None:
            return None
        if not isinstance(raw, str) or not raw:
            self.problems.append(f"{path}.{key}: expected a non-empty string, got {raw!r}")
            return None
        return raw

    def boolean(self, path: str, data: Mapping[str, Any], key: str) -> bool:
        raw = self._get(path, data, key, False)
        if raw is None:
            return False
        if not isinstance(raw, bool):
            self.problems.append(f"{path}.{key}: expected true or false, got {raw!r}")
            return False
        return raw

    def strings(self, path: str, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
        raw = self._get(path, data, key, False)
        if raw is None:
            return ()
        if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
            self.problems.append(f"{path}.{key}: expected a list of non-empty strings, got {raw!r}")
            return ()
        return tuple(sorted(set(raw)))

    def records(
        self, data: Mapping[str, Any], key: str, parse: Callable[[str, Mapping[str, Any]], Any]
    ) -> list[Any]:
        raw = data.get(key)
        if raw is None:
            self.problems.append(f"{key}: missing")
            return []
        if not isinstance(raw, list):
            self.problems.append(f"{key}: expected a list, got {type(raw).__name__}")
            return []
        out = []
        for index, item in enumerate(raw):
            path = f"{key}[{index}]"
            if not isinstance(item, Mapping):
                self.problems.append(f"{path}: expected an object, got {type(item).__name__}")
                continue
            record = parse(path, item)
            if record is not None:
                out.append(record)
        return out


def _note_name(reader: _Reader, seen: dict[str, str], record: dict[str, Any], kind: str) -> None:
    """Remember ``record``'s name at its path; a name ``seen`` before is a problem naming both."""
    name = record["name"]
    if name in seen:
        reader.problems.append(
            f"{record['_path']}.name: duplicate {kind} {name!r} (also {seen[name]})"
        )
    seen.setdefault(name, record["_path"])


def parse_snapshot(data: Any, source: str = "snapshot") -> Snapshot:
    """Validate a decoded JSON document; raise ValidationError listing every problem, each naming its field."""
    reader = _Reader()
    if not isinstance(data, Mapping):
        raise ValidationError(source, [f"expected a JSON object, got {type(data).__name__}"])
    reader.unknown_keys("", data, _TOP_KEYS)
    version = data.get("version")
    if version is None:
        reader.problems.append("version: missing")
    elif isinstance(version, bool) or version != VERSION:
        reader.problems.append(
            f"version: unsupported {version!r} (this virtbalance reads {VERSION})"
        )
    time = reader.number("", data, "time", required=True, positive=False)

    raw_hosts: list[dict[str, Any]] = reader.records(
        data, "hosts", lambda p, h: reader.record(p, h, _HOST_KEYS, _host_fields)
    )
    raw_domains: list[dict[str, Any]] = reader.records(
        data, "domains", lambda p, d: reader.record(p, d, _DOMAIN_KEYS, _domain_fields)
    )

    host_names: dict[str, str] = {}
    for host in raw_hosts:
        _note_name(reader, host_names, host, "host")
    # Names of every host entry, valid or not, so an invalid host does not also flag its domains.
    listed = data.get("hosts")
    declared_hosts = {
        h.get("name")
        for h in (listed if isinstance(listed, list) else [])
        if isinstance(h, Mapping)
    }
    domain_names: dict[str, str] = {}
    for domain in raw_domains:
        _note_name(reader, domain_names, domain, "domain")
        if domain["host"] not in declared_hosts:
            reader.problems.append(
                f"{domain['_path']}.host: unknown host {domain['host']!r} (not in hosts)"
            )
    if reader.problems or time is None:
        raise ValidationError(source, reader.problems)

    cpu_sum: dict[str, float] = {}
    memory_sum: dict[str, int] = {}
    for domain in raw_domains:
        cpu_sum[domain["host"]] = cpu_sum.get(domain["host"], 0.0) + domain["cpu_used"]
        memory_sum[domain["host"]] = memory_sum.get(domain["host"], 0) + domain["memory_bytes"]
    hosts = tuple(
        HostState(
            name=h["name"],
            cpus=h["cpus"],
            memory_bytes=h["memory_bytes"],
            cpu_used=h["cpu_used"] if h["cpu_used"] is not None else cpu_sum.get(h["name"], 0.0),
            memory_used_bytes=(
                h["memory_used_bytes"]
                if h["memory_used_bytes"] is not None
                else memory_sum.get(h["name"], 0)
            ),
            maintenance=h["maintenance"],
            emptied=h["emptied"],
        )
        for h in raw_hosts
    )
    domains = tuple(
        DomainState(**{k: v for k, v in d.items() if k != "_path"}) for d in raw_domains
    )
    return Snapshot(time=time, hosts=hosts, domains=domains, version=VERSION)


def _host_fields(reader: _Reader, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": reader.string(path, data, "name", required=True),
        "cpus": reader.number(path, data, "cpus", required=True, positive=True),
        "memory_bytes": reader.integer(path, data, "memory_bytes", required=True, positive=True),
        "cpu_used": reader.number(path, data, "cpu_used", required=False, positive=False),
        "memory_used_bytes": reader.integer(
            path, data, "memory_used_bytes", required=False, positive=False
        ),
        "maintenance": reader.boolean(path, data, "maintenance"),
        "emptied": reader.boolean(path, data, "emptied"),
    }


def _domain_fields(reader: _Reader, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": reader.string(path, data, "name", required=True),
        "host": reader.string(path, data, "host", required=True),
        "vcpus": reader.integer(path, data, "vcpus", required=True, positive=True),
        "cpu_used": reader.number(path, data, "cpu_used", required=True, positive=False),
        "memory_bytes": reader.integer(path, data, "memory_bytes", required=True, positive=False),
        "private_networks": reader.strings(path, data, "private_networks"),
        "group": reader.string(path, data, "group", required=False),
        "anti_affinity": reader.string(path, data, "anti_affinity", required=False),
        "pinned": reader.boolean(path, data, "pinned"),
        "last_migrated": reader.number(path, data, "last_migrated", required=False, positive=False),
        "last_host": reader.string(path, data, "last_host", required=False),
    }


def load_snapshot(path: str | Path) -> Snapshot:
    """Read and validate a snapshot JSON file; ValidationError (naming the file) if unusable."""
    path = Path(path)
    text = read_text(path, ValidationError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            str(path), [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
        ) from exc
    return parse_snapshot(data, source=str(path))
