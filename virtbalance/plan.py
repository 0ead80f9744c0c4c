"""A migration plan: typed immutable data, printable as a table and serialisable as JSON before anything runs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from virtbalance.causes import Cause
from virtbalance.errors import ValidationError
from virtbalance.records import as_dict

ModeKind = Literal["relieve", "drain", "balance", "consolidate"]
MODE_KINDS: tuple[ModeKind, ...] = ("relieve", "drain", "balance", "consolidate")


@dataclass(frozen=True)
class Mode:
    """What a plan is for; ``host`` names the host to empty and is only used by ``drain``."""

    kind: ModeKind = "relieve"
    host: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODE_KINDS:
            raise ValidationError(
                "mode",
                [f"unknown mode {self.kind!r} (known: relieve, drain:HOST, balance, consolidate)"],
            )
        if self.kind == "drain" and not self.host:
            raise ValidationError("mode", ["drain needs a host: drain:HOST"])
        if self.kind != "drain" and self.host is not None:
            raise ValidationError("mode", [f"{self.kind} takes no host, got {self.host!r}"])

    @classmethod
    def parse(cls, text: str) -> Mode:
        """``relieve``, ``drain:HOST``, ``balance`` or ``consolidate``; ValidationError otherwise."""
        kind, sep, host = text.strip().partition(":")
        if kind not in MODE_KINDS:
            raise ValidationError(
                "mode",
                [f"unknown mode {text!r} (known: relieve, drain:HOST, balance, consolidate)"],
            )
        return cls(kind, host if sep else None)

    def __str__(self) -> str:
        return f"{self.kind}:{self.host}" if self.host else self.kind


@dataclass(frozen=True)
class Migration:
    """Move one domain; every member of a chunk gets one, with the same ``chunk`` and ``destination``."""

    domain: str
    source: str
    destination: str
    chunk: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return as_dict(self)


@dataclass(frozen=True)
class Unresolved:
    """A host the plan could not bring where the mode wanted, and what blocked it."""

    host: str
    resource: str  # cpu, memory, drain, balance
    reason: str
    # What kept it there, typed (the reason text says it for an operator).
    cause: Cause = Cause.OTHER

    def to_dict(self) -> dict[str, str]:
        return {
            "host": self.host,
            "resource": self.resource,
            "reason": self.reason,
            "cause": str(self.cause),
        }


@dataclass(frozen=True)
class HostAfter:
    """A host's load ratios once every migration of the plan is done."""

    name: str
    cpu_ratio: float
    memory_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cpu_ratio": self.cpu_ratio, "memory_ratio": self.memory_ratio}


CutStage = Literal["search", "improvement", "variants", "exact", "moves"]
CUT_STAGES: tuple[CutStage, ...] = ("search", "improvement", "variants", "exact", "moves")


@dataclass(frozen=True)
class CutShort:
    """The planning budget ran out: the plan is the best found by then, not the best there may be.

    ``stage`` is what was running when it ran out (``search``: the per-host search for the cheapest
    set, later hosts took the first set found; ``improvement``: re-solving hosts that competed;
    ``variants``: other orders and packings; ``exact``: the CP-SAT search, not proven optimal;
    ``moves``: a mode's move-by-move loop, stopped early).
    """

    budget: float  # seconds (the policy's plan_budget)
    stage: CutStage
    reason: str

    def __post_init__(self) -> None:
        if self.stage not in CUT_STAGES:
            raise ValidationError(
                "cut_short.stage",
                [f"unknown stage {self.stage!r} (known: {', '.join(CUT_STAGES)})"],
            )

    def to_dict(self) -> dict[str, Any]:
        return {"budget_seconds": self.budget, "stage": self.stage, "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    """The planner's answer: migrations in execution order, chunk by chunk; what stays unresolved."""

    mode: Mode
    migrations: tuple[Migration, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    hosts_after: tuple[HostAfter, ...] = ()
    # Set when the planning budget ran out before the search was done.
    cut_short: CutShort | None = None

    @property
    def empty(self) -> bool:
        return not self.migrations

    def chunks(self) -> tuple[tuple[Migration, ...], ...]:
        """Migrations grouped by (source, chunk), in plan order: each group moves as one."""
        groups: dict[tuple[str, str], list[Migration]] = {}
        for migration in self.migrations:
            groups.setdefault((migration.source, migration.chunk), []).append(migration)
        return tuple(tuple(group) for group in groups.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": str(self.mode),
            "migrations": [m.to_dict() for m in self.migrations],
            "unresolved": [u.to_dict() for u in self.unresolved],
            "hosts_after": [h.to_dict() for h in self.hosts_after],
            "cut_short": self.cut_short.to_dict() if self.cut_short else None,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Rebuild a plan written by ``to_dict``; ValidationError naming the field if it is not one."""
        try:
            return cls(
                mode=Mode.parse(str(data.get("mode", "relieve"))),
                migrations=tuple(
                    Migration(
                        domain=str(m["domain"]),
                        source=str(m["source"]),
                        destination=str(m["destination"]),
                        chunk=str(m["chunk"]),
                        reason=str(m["reason"]),
                    )
                    for m in data["migrations"]
                ),
                unresolved=tuple(
                    Unresolved(
                        host=str(u["host"]),
                        resource=str(u["resource"]),
                        reason=str(u["reason"]),
                        cause=Cause(u.get("cause", Cause.OTHER)),
                    )
                    for u in data.get("unresolved", ())
                ),
                hosts_after=tuple(
                    HostAfter(
                        name=str(h["name"]),
                        cpu_ratio=float(h["cpu_ratio"]),
                        memory_ratio=float(h["memory_ratio"]),
                    )
                    for h in data.get("hosts_after", ())
                ),
                cut_short=_cut_short(data.get("cut_short")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError("plan", [f"not a plan: {exc!r}"]) from exc

    def render(self, all_hosts: bool = False) -> str:
        """A table an operator can read: the moves chunk by chunk, what is unresolved, the hosts touched."""
        lines = [
            f"plan ({self.mode}): {len(self.migrations)} migration(s) in {len(self.chunks())} chunk(s)"
        ]
        if self.migrations:
            rows = [("CHUNK", "DOMAIN", "FROM", "TO", "REASON")]
            rows += [
                (m.chunk, m.domain, m.source, m.destination, m.reason) for m in self.migrations
            ]
            lines += _table(rows)
        if self.cut_short:
            lines.append("")
            lines.append(f"cut short: {self.cut_short.reason}")
        if self.unresolved:
            lines.append("")
            lines.append("unresolved:")
            lines += _table(
                [("HOST", "RESOURCE", "REASON")]
                + [(u.host, u.resource, u.reason) for u in self.unresolved]
            )
        touched = {m.source for m in self.migrations} | {m.destination for m in self.migrations}
        touched |= {u.host for u in self.unresolved}
        shown = [h for h in self.hosts_after if all_hosts or h.name in touched]
        if shown:
            lines.append("")
            lines.append("hosts after the plan:" if all_hosts else "hosts touched, after the plan:")
            lines += _table(
                [("HOST", "CPU", "MEMORY")]
                + [(h.name, f"{h.cpu_ratio:.1%}", f"{h.memory_ratio:.1%}") for h in shown]
            )
        return "\n".join(lines)


def _cut_short(data: Any) -> CutShort | None:
    if data is None:
        return None
    # CutShort checks the stage.
    stage = cast(CutStage, str(data["stage"]))
    return CutShort(budget=float(data["budget_seconds"]), stage=stage, reason=str(data["reason"]))


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
