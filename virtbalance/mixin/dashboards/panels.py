"""The panel kinds the dashboards use, each a grafana-foundation-sdk builder set up our way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import bargauge as sdk_bargauge
from grafana_foundation_sdk.builders import common as sdk_common
from grafana_foundation_sdk.builders import dashboard as sdk_dashboard
from grafana_foundation_sdk.builders import prometheus as sdk_prometheus
from grafana_foundation_sdk.builders import stat as sdk_stat
from grafana_foundation_sdk.builders import statetimeline as sdk_statetimeline
from grafana_foundation_sdk.builders import table as sdk_table
from grafana_foundation_sdk.builders import text as sdk_text
from grafana_foundation_sdk.builders import timeseries as sdk_timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common, dashboard
from grafana_foundation_sdk.models import prometheus as prometheus_model
from grafana_foundation_sdk.models import text as text_model

# Every panel, target, variable and annotation names the datasource through this variable, never by
# uid, so the dashboards work with any Prometheus datasource.
DATASOURCE_VARIABLE = "datasource"
DATASOURCE = dashboard.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")


@dataclass(frozen=True)
class Query:
    """One PromQL target. ``instant`` queries feed tables and stats with the latest value only."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Threshold:
    """A coloured step drawn from ``value`` upwards (a dashed line on time series)."""

    value: float
    color: str = "red"


def policy_lines(target: float, high: float) -> tuple[Threshold, Threshold]:
    """A policy ratio's two lines: its placement target (orange) and its overload threshold (red)."""
    return Threshold(target, "orange"), Threshold(high, "red")


@dataclass(frozen=True)
class Panel:
    """A panel builder and its size; ids and positions are assigned when the dashboard is laid out."""

    builder: Builder[dashboard.Panel]
    width: int = 12
    height: int = 8


@dataclass(frozen=True)
class Column:
    """A table value column: the query producing it, its header and unit."""

    query: Query
    header: str
    unit: str


def _ref_id(index: int) -> str:
    return chr(ord("A") + index)


def _target(query: Query, index: int, table: bool = False) -> sdk_prometheus.Dataquery:
    target = (
        sdk_prometheus.Dataquery()
        .datasource(DATASOURCE)
        .editor_mode(prometheus_model.QueryEditorMode.CODE)
        .expr(query.expr)
        # Grafana's own placeholder for "name the series after its labels".
        .legend_format(query.legend or "__auto")
        .ref_id(_ref_id(index))
    )
    target = target.instant() if query.instant else target.range()
    if table:
        target = target.format(prometheus_model.PromQueryFormat.TABLE)
    return target


def _thresholds(steps: Sequence[Threshold], base: str = "green") -> sdk_dashboard.ThresholdsConfig:
    return (
        sdk_dashboard.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps(
            [dashboard.Threshold(color=base, value=None)]
            + [dashboard.Threshold(color=step.color, value=step.value) for step in steps]
        )
    )


def _reduce_last() -> sdk_common.ReduceDataOptions:
    return sdk_common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


class _DataPanel(Protocol):
    """The setters every SDK data panel builder has (they share no base class that declares them)."""

    def datasource(self, datasource: dashboard.DataSourceRef, /) -> Self: ...
    def title(self, title: str, /) -> Self: ...
    def description(self, description: str, /) -> Self: ...
    def targets(self, targets: list[Builder[Dataquery]], /) -> Self: ...
    def unit(self, unit: str, /) -> Self: ...
    def color_scheme(self, color: Builder[dashboard.FieldColor], /) -> Self: ...
    def thresholds(self, thresholds: Builder[dashboard.ThresholdsConfig], /) -> Self: ...
    def min(self, min_val: float, /) -> Self: ...
    def max(self, max_val: float, /) -> Self: ...


P = TypeVar("P", bound=_DataPanel)


def _data_panel(
    panel: P,
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    color: dashboard.FieldColorModeId | None = None,
    thresholds: Sequence[Threshold] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    table: bool = False,
) -> P:
    """``panel`` with what all our data panels share; ``color`` None: by thresholds if there are any."""
    if color is None:
        color = (
            dashboard.FieldColorModeId.THRESHOLDS
            if thresholds
            else dashboard.FieldColorModeId.PALETTE_CLASSIC
        )
    panel = (
        panel.datasource(DATASOURCE)
        .title(title)
        .description(description)
        .targets([_target(query, index, table) for index, query in enumerate(queries)])
        .unit(unit)
        .color_scheme(sdk_dashboard.FieldColor().mode(color))
        .thresholds(_thresholds(thresholds))
    )
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    return panel


def timeseries(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    thresholds: Sequence[Threshold] = (),
    minimum: float | None = 0,
    maximum: float | None = None,
    stack: bool = False,
    bars: bool = False,
    width: int = 12,
    height: int = 8,
    max_points: int | None = None,
) -> Panel:
    """A time series panel; thresholds are drawn as dashed lines, series keep the palette colours.

    ``max_points`` caps the steps of an expensive query (Grafana widens the step to fit).
    """
    panel = (
        _data_panel(
            sdk_timeseries.Panel(),
            title,
            description,
            queries,
            unit,
            # Series keep their palette colours; the thresholds are only drawn as lines.
            color=dashboard.FieldColorModeId.PALETTE_CLASSIC,
            thresholds=thresholds,
            minimum=minimum,
            maximum=maximum,
        )
        .draw_style(common.GraphDrawStyle.BARS if bars else common.GraphDrawStyle.LINE)
        .fill_opacity(60 if bars else (25 if stack else 10))
        .line_width(1)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .stacking(
            sdk_common.StackingConfig()
            .group("A")
            .mode(common.StackingMode.NORMAL if stack else common.StackingMode.NONE)
        )
        .thresholds_style(
            sdk_common.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
                if thresholds
                else common.GraphThresholdsStyleMode.OFF
            )
        )
        .legend(
            sdk_common.VizLegendOptions()
            .calcs(["lastNotNull", "max"])
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
        )
        .tooltip(
            sdk_common.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if max_points is not None:
        panel = panel.max_data_points(max_points)
    return Panel(panel, width, height)


def stat(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    thresholds: Sequence[Threshold] = (),
    decimals: int | None = None,
    width: int = 6,
    height: int = 4,
    mappings: Sequence[dashboard.ValueMap] = (),
) -> Panel:
    """A single-value panel showing the latest value of each series.

    Its queries run as instant queries: one evaluation instead of one per step of the time range.
    """
    instant = [Query(query.expr, query.legend, instant=True) for query in queries]
    panel = (
        _data_panel(sdk_stat.Panel(), title, description, instant, unit, thresholds=thresholds)
        .mappings(list(mappings))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .reduce_options(_reduce_last())
        .text_mode(common.BigValueTextMode.AUTO)
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return Panel(panel, width, height)


def bargauge(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    thresholds: Sequence[Threshold] = (),
    minimum: float | None = 0,
    maximum: float | None = None,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """Horizontal bars, one per series, at their latest value."""
    panel = (
        _data_panel(
            sdk_bargauge.Panel(),
            title,
            description,
            queries,
            unit,
            thresholds=thresholds,
            minimum=minimum,
            maximum=maximum,
        )
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(_reduce_last())
        .show_unfilled(True)
    )
    return Panel(panel, width, height)


def state_timeline(
    title: str,
    description: str,
    queries: Sequence[Query],
    mappings: Sequence[dashboard.ValueMap],
    *,
    unit: str = "none",
    width: int = 24,
    height: int = 6,
) -> Panel:
    """Coloured bands over time; ``mappings`` turn the numeric states into names and colours."""
    panel = (
        _data_panel(
            sdk_statetimeline.Panel(),
            title,
            description,
            queries,
            unit,
            # The bands take the mappings' colours, which the thresholds colour mode applies.
            color=dashboard.FieldColorModeId.THRESHOLDS,
        )
        .mappings(list(mappings))
        .fill_opacity(80)
        .line_width(0)
        .align_value(common.TimelineValueAlignment.LEFT)
        .legend(
            sdk_common.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .merge_values(True)
        .row_height(0.9)
        .show_value(common.VisibilityMode.NEVER)
        .tooltip(
            sdk_common.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.SINGLE)
            .sort(common.SortOrder.NONE)
        )
    )
    return Panel(panel, width, height)


def table(
    title: str,
    description: str,
    columns: Sequence[Column],
    *,
    labels: Sequence[str],
    sort_by: str | None = None,
    width: int = 24,
    height: int = 8,
) -> Panel:
    """A table of instant queries merged on their labels: one row per label set, one column per query.

    Only the ``labels`` named are kept as columns, in that order, followed by the value columns.
    """
    queries = [Query(column.query.expr, column.query.legend, instant=True) for column in columns]
    # A single query's value column is called "Value", several are "Value #A", "Value #B", ...
    if len(columns) == 1:
        value_names = {"Value": columns[0].header}
    else:
        value_names = {
            f"Value #{_ref_id(index)}": column.header for index, column in enumerate(columns)
        }
    kept = [*labels, *value_names]
    panel = (
        _data_panel(sdk_table.Panel(), title, description, queries, columns[0].unit, table=True)
        .overrides(
            [
                sdk_dashboard.DashboardFieldConfigSourceOverrides()
                .matcher(dashboard.MatcherConfig(id_val="byName", options=column.header))
                .properties([dashboard.DynamicConfigValue(id_val="unit", value=column.unit)])
                for column in columns
            ]
        )
        .transformations(
            [
                dashboard.DataTransformerConfig(id_val="merge", options={}),
                dashboard.DataTransformerConfig(
                    id_val="filterFieldsByName", options={"include": {"names": kept}}
                ),
                dashboard.DataTransformerConfig(
                    id_val="organize",
                    options={
                        "excludeByName": {},
                        "indexByName": {name: index for index, name in enumerate(kept)},
                        "renameByName": value_names,
                    },
                ),
            ]
        )
        .cell_height(common.TableCellHeight.SM)
        # Hidden, so no fields to name (the SDK types them as a list; Grafana once saved "").
        .footer(sdk_common.TableFooterOptions().show(False).reducer(["sum"]).count_rows(False))
        .show_header(True)
        .sort_by(
            [sdk_common.TableSortByFieldState().display_name(sort_by).desc(True)] if sort_by else []
        )
    )
    return Panel(panel, width, height)


def text(title: str, markdown: str, *, width: int = 24, height: int = 8) -> Panel:
    """A markdown panel; Grafana substitutes template variables such as ``${host}`` inside it."""
    panel = (
        sdk_text.Panel()
        .title(title)
        .content(markdown)
        .mode(text_model.TextMode.MARKDOWN)
        .code(
            sdk_text.CodeOptions()
            .language(text_model.CodeLanguage.PLAINTEXT)
            .show_line_numbers(False)
        )
    )
    return Panel(panel, width, height)


def value_mapping(value: int, text: str, color: str) -> dashboard.ValueMap:
    """One value-to-text mapping with a colour, for stat and state-timeline panels."""
    return dashboard.ValueMap(
        options={str(value): dashboard.ValueMappingResult(color=color, index=value, text=text)}
    )
