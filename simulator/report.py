"""Results of a comparison as a table an operator reads and as JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from virtbalance.simulator.engine import Metrics, Result

COLUMNS = (
    ("POLICY", lambda m: m.policy),
    ("OVERLOAD%", lambda m: f"{m.overloaded_host_time_pct:.2f}"),
    ("WORST", lambda m: f"{m.worst_cpu_ratio:.2f}"),
    ("MIGRATIONS", lambda m: str(m.migrations)),
    ("PER-VM-DAY", lambda m: f"{m.migrations_per_vm_per_day:.4f}"),
    ("GIB", lambda m: f"{m.migrated_gib:.1f}"),
    ("FLAPS", lambda m: str(m.flaps)),
    ("SPLITS", lambda m: str(m.chunk_splits)),
    ("REFUSED", lambda m: str(m.rejected_moves)),
    ("MIG-H", lambda m: f"{m.migration_seconds / 3600.0:.2f}"),
    ("SECONDS", lambda m: f"{m.replay_seconds:.1f}"),
)
# Shown when the cluster has a power model: energy and CloudSim's SLA metrics.
ENERGY_COLUMNS = (
    ("KWH", lambda m: f"{m.energy_kwh:.2f}"),
    ("SLATAH%", lambda m: f"{100.0 * m.sla.slatah:.2f}"),
    ("PDM%", lambda m: f"{100.0 * m.sla.pdm:.3f}"),
    ("SLAV%", lambda m: f"{100.0 * m.sla.slav:.5f}"),
)


def reduction_pct(baseline: float, value: float) -> float:
    """How much of the baseline's overload a policy removed, in percent (0 when there was none)."""
    return 100.0 * (baseline - value) / baseline if baseline > 0 else 0.0


# A policy whose overload cut comes within this many points of virtbalance's is compared on migrations.
RIVAL_POINTS = 10.0


@dataclass(frozen=True)
class Rival:
    """A policy beside virtbalance: its metrics, its cut of the overload, whether it comes close."""

    name: str
    metrics: Metrics
    cut: float  # percent of the ``none`` policy's overloaded host-time removed
    close: bool  # within RIVAL_POINTS of virtbalance's cut


def rivals(results: Sequence[Result]) -> tuple[Metrics, float, list[Rival]]:
    """virtbalance's metrics and cut of the ``none`` policy's overload, and every other policy's."""
    by_name = {r.metrics.policy: r.metrics for r in results}
    base = by_name["none"].overloaded_host_time_pct
    ours = by_name["virtbalance"]
    cut = reduction_pct(base, ours.overloaded_host_time_pct)
    others = []
    for name, metrics in by_name.items():
        if name in ("none", "virtbalance"):
            continue
        other = reduction_pct(base, metrics.overloaded_host_time_pct)
        others.append(Rival(name, metrics, other, other >= cut - RIVAL_POINTS))
    return ours, cut, others


def table(results: Sequence[Result], cpu_high: float) -> str:
    """One row per policy; overload is the share of host-steps above ``cpu_high``."""
    columns: tuple[tuple[str, Callable[[Metrics], str]], ...] = COLUMNS
    if results and all(r.metrics.energy_kwh is not None for r in results):
        columns = COLUMNS[:-1] + ENERGY_COLUMNS + COLUMNS[-1:]
    rows = [tuple(title for title, _ in columns)]
    rows += [tuple(cell(r.metrics) for _, cell in columns) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    first = results[0].metrics if results else None
    if first is not None:
        lines.append(
            f"{first.vms} VMs on {first.hosts} hosts, {first.days:.1f} days in {first.steps} steps; "
            f"overload = host CPU above {cpu_high:.0%}"
        )
        base = next((r.metrics for r in results if r.metrics.policy == "none"), None)
        if base is not None:
            for result in results:
                if result.metrics.policy != "none":
                    cut = reduction_pct(
                        base.overloaded_host_time_pct, result.metrics.overloaded_host_time_pct
                    )
                    lines.append(
                        f"{result.metrics.policy}: overload cut by {cut:.1f}% against none"
                    )
    return "\n".join(lines)


def diagnosis_table(results: Sequence[Result]) -> str:
    """Per policy that can say: host-time and stretches per cause of unrelieved overload."""
    blocks = []
    for result in results:
        diagnosis = result.diagnosis
        if diagnosis is None:
            continue
        totals = diagnosis.totals()
        overloaded = sum(n for n, _ in totals.values())
        hour = 3600.0 / diagnosis.step_seconds
        rows = [("CAUSE", "HOST-HOURS", "SHARE", "STRETCHES")]
        rows += [
            (str(c), f"{n / hour:.1f}", f"{100.0 * n / overloaded:.1f}%", str(k))
            for c, (n, k) in totals.items()
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"why {result.metrics.policy} did not relieve an overload at once:"]
        lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
        doc = diagnosis.to_dict()
        longest = doc["longest_unrelieved"]
        lines.append(
            f"{doc['stretches']} overload stretches: {doc['relieved']} relieved by a move, "
            f"{doc['unrelieved']} not"
            + (
                f" (longest: {longest['host']}, {longest['hours']:.1f} h, mostly {longest['main_cause']})"
                if longest
                else ""
            )
        )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_document(results: Sequence[Result], setup: dict[str, Any]) -> dict[str, Any]:
    base = next((r.metrics for r in results if r.metrics.policy == "none"), None)
    policies = []
    for result in results:
        entry = {**result.metrics.to_dict(), "parameters": result.parameters}
        if result.diagnosis is not None:
            entry["diagnosis"] = result.diagnosis.to_dict()
        if base is not None:
            entry["overload_reduction_pct"] = round(
                reduction_pct(
                    base.overloaded_host_time_pct, result.metrics.overloaded_host_time_pct
                ),
                3,
            )
        policies.append(entry)
    return {"setup": setup, "policies": policies}


def to_json(results: Sequence[Result], setup: dict[str, Any]) -> str:
    return json.dumps(to_document(results, setup), indent=2, sort_keys=False)
