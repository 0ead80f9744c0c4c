"""Mode ``drain HOST``: move every movable chunk off a host before maintenance."""

from __future__ import annotations

from virtbalance.planner.model import pct
from virtbalance.planner.outcome import Outcome, ratios


def drain(outcome: Outcome, name: str) -> None:
    """Largest chunks first (they are the hardest to place), each to the least loaded host that takes it."""
    model = outcome.model
    host = model.hosts[name]
    outcome.placer.exclude(name, "is being drained")
    units = sorted(model.units[name], key=lambda u: (-u.memory, -u.cpu, u.id))
    if host.settle:
        outcome.unresolved_host(
            name,
            "drain",
            f"{host.settle}: waiting before touching it again; {len(units)} chunk(s) stay",
        )
        return
    blockers: list[str] = []
    for unit in units:
        if unit.blocked:
            blockers.append(f"{unit.describe()}: {unit.blocked}")
            continue
        limited = model.cap_reason(host, unit.size)
        if limited:
            blockers.append(f"{unit.describe()}: {limited} (plan again)")
            continue
        destination = outcome.placer.find(unit)
        if destination is None:
            blockers.append(outcome.placer.why_not(unit))
            continue
        outcome.move(unit, destination, f"drain {name} for maintenance ({ratios(host)} before)")
    if blockers:
        stay = sum(1 for b in blockers)
        outcome.unresolved_host(
            name,
            "drain",
            f"{stay} chunk(s) stay on {name} (now cpu {pct(host.cpu_ratio)}, memory "
            f"{pct(host.memory_ratio)}): "
            + "; ".join(blockers[:6])
            + (f"; and {len(blockers) - 6} more" if len(blockers) > 6 else ""),
        )
