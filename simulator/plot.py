"""PNG plots of host CPU over time, one panel per policy side by side (matplotlib, Agg, loaded lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from virtbalance.causes import CAUSES
from virtbalance.errors import ValidationError
from virtbalance.simulator.engine import Result

# Panels side by side, wrapped into rows so that six policies stay readable.
PANELS_PER_ROW = 3
# One colour per cause (matplotlib's tab20 qualitative palette, as hex so no colormap is needed).
CAUSE_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
)


def plot_hosts(results: Sequence[Result], path: str | Path, step: float, cpu_high: float) -> Path:
    """Write one PNG: a panel per policy (three per row), each host's CPU ratio over days, ``cpu_high`` dashed."""
    try:
        import matplotlib  # noqa: PLC0415 - lazy: plotting is optional (the sim extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing the Agg backend
    except ImportError as exc:
        raise ValidationError(
            "plot", ["matplotlib is not installed: pip install 'virtbalance[sim]'"]
        ) from exc
    drawable = [r for r in results if r.host_series]
    if not drawable:
        raise ValidationError("plot", ["no host series were recorded"])
    explained = [r for r in drawable if r.diagnosis is not None]
    columns = min(PANELS_PER_ROW, len(drawable))
    rows = -(-len(drawable) // columns)
    extra = -(-len(explained) // columns) if explained else 0
    figure, axes = plt.subplots(
        rows + extra, columns, figsize=(5.0 * columns, 3.6 * (rows + extra)), squeeze=False
    )
    panels = [axis for row in axes[:rows] for axis in row]
    why_panels = [axis for row in axes[rows:] for axis in row]
    for axis in panels[len(drawable) :] + why_panels[len(explained) :]:
        axis.set_visible(False)
    for axis, result in zip(why_panels, explained, strict=False):
        _diagnosis_panel(axis, result, step)
    for axis in panels[1 : len(drawable)]:
        axis.sharey(panels[0])
    for axis, result in zip(panels, drawable, strict=False):
        for host, series in result.host_series.items():
            days = [i * step / 86400.0 for i in range(len(series))]
            axis.plot(days, series, linewidth=0.4, label=host)
        axis.axhline(cpu_high, color="black", linestyle="--", linewidth=0.8)
        m = result.metrics
        energy = "" if m.energy_kwh is None else f", {m.energy_kwh:.1f} kWh"
        axis.set_title(
            f"{m.policy}\noverload {m.overloaded_host_time_pct:.2f}%, {m.migrations} migrations"
            f"{energy}",
            fontsize=9,
        )
        axis.set_xlabel("days")
    for row in axes[:rows]:
        row[0].set_ylabel("host CPU demand / capacity")
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target


def _diagnosis_panel(axis: Any, result: Result, step: float) -> None:
    """One row per host: each overloaded step coloured by its cause; stretches a move ended outlined
    in green (relieved), the others in red (unrelieved)."""
    from matplotlib.patches import Patch  # noqa: PLC0415 - lazy, like the rest of matplotlib

    diagnosis = result.diagnosis
    assert diagnosis is not None
    colours = {cause: CAUSE_COLOURS[i % len(CAUSE_COLOURS)] for i, cause in enumerate(CAUSES)}
    day = 86400.0 / step
    hours = 3600.0 / step
    totals = diagnosis.totals()
    for row, host in enumerate(diagnosis.hosts):
        for stretch in (s for s in diagnosis.stretches() if s.host == host):
            first = stretch.first
            while first <= stretch.last:
                cause = diagnosis.cause_at(host, first)
                end = first
                while end + 1 <= stretch.last and diagnosis.cause_at(host, end + 1) == cause:
                    end += 1
                assert cause is not None
                axis.broken_barh(
                    [(first / day, (end - first + 1) / day)],
                    (row - 0.35, 0.7),
                    color=colours[cause],
                )
                first = end + 1
            axis.broken_barh(
                [(stretch.first / day, stretch.steps / day)],
                (row - 0.45, 0.9),
                facecolor="none",
                edgecolor="green" if stretch.relieved else "red",
                linewidth=0.6,
            )
    axis.set_yticks(range(len(diagnosis.hosts)), diagnosis.hosts, fontsize=6)
    axis.set_xlabel("days")
    handles = [
        Patch(color=colours[c], label=f"{c} {n / hours:.1f} h ({k})")
        for c, (n, k) in totals.items()
    ]
    handles += [
        Patch(facecolor="none", edgecolor="green", label="relieved stretch"),
        Patch(facecolor="none", edgecolor="red", label="unrelieved stretch"),
    ]
    axis.legend(handles=handles, fontsize=5, loc="upper right", ncol=2)
    axis.set_title(f"{result.metrics.policy}: why overload was not relieved at once", fontsize=9)
