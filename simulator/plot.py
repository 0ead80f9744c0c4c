"""PNG plots of host CPU over time, one panel per policy side by side (matplotlib, Agg, loaded lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulator.engine import Result
from virtbalance.errors import ValidationError

# Panels side by side, wrapped into rows so that six policies stay readable.
PANELS_PER_ROW = 3


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
    columns = min(PANELS_PER_ROW, len(drawable))
    rows = -(-len(drawable) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(5.0 * columns, 3.6 * rows), sharey=True, squeeze=False
    )
    panels = [axis for row in axes for axis in row]
    for axis in panels[len(drawable) :]:
        axis.set_visible(False)
    for axis, result in zip(panels, drawable, strict=False):
        for host, series in result.host_series.items():
            days = [i * step / 86400.0 for i in range(len(series))]
            axis.plot(days, series, linewidth=0.4, label=host)
        axis.axhline(cpu_high, color="black", linestyle="--", linewidth=0.8)
        m = result.metrics
        axis.set_title(
            f"{m.policy}\noverload {m.overloaded_host_time_pct:.2f}%, {m.migrations} migrations",
            fontsize=9,
        )
        axis.set_xlabel("days")
    for row in axes:
        row[0].set_ylabel("host CPU demand / capacity")
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target
