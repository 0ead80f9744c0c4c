"""A whole dashboard: its rows laid out on Grafana's grid, variables, annotations and sibling links."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import dashboard as sdk_dashboard
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard

from virtbalance.mixin.config import Config
from virtbalance.mixin.dashboards.annotations import built_in
from virtbalance.mixin.dashboards.built import Built
from virtbalance.mixin.dashboards.panels import Panel
from virtbalance.mixin.dashboards.variables import datasource_variable

# Grafana 10.4's dashboard schema (the SDK's model defaults to an older one and has no setter).
SCHEMA_VERSION = 39
GRID_WIDTH = 24


@dataclass(frozen=True)
class Row:
    """A titled band of panels, filled left to right and wrapped at the grid width."""

    title: str
    panels: Sequence[Panel] = field(default_factory=tuple)


def _lay_out(board: sdk_dashboard.Dashboard, rows: Sequence[Row]) -> None:
    """Add each row header, then its panels left to right, with ids and grid positions.

    Positions are set here rather than left to the SDK: the SDK wraps only after a panel overflows the
    grid, and a panel that does not fit on the current line must start the next one instead.
    """
    next_id = 1
    y = 0
    for row in rows:
        board.with_row(
            sdk_dashboard.Row(row.title)
            .id(next_id)
            .grid_pos(dashboard.GridPos(h=1, w=GRID_WIDTH, x=0, y=y))
        )
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                y += line_height
                x, line_height = 0, 0
            model = panel.builder.build()
            model.id_val = next_id
            model.grid_pos = dashboard.GridPos(h=panel.height, w=panel.width, x=x, y=y)
            board.with_panel(Built(model))
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height


def build(
    config: Config,
    *,
    uid: str,
    title: str,
    description: str,
    rows: Sequence[Row],
    variables: Sequence[Builder[dashboard.VariableModel]] = (),
    annotations: Sequence[Builder[dashboard.AnnotationQuery]] = (),
    time_from: str = "now-6h",
) -> dashboard.Dashboard:
    """A complete dashboard with the datasource variable first and links to its siblings by tag."""
    board = (
        sdk_dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .editable()
        .fiscal_year_start_month(0)
        .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
        .link(
            sdk_dashboard.DashboardLink(config.dashboard_tag)
            .type(dashboard.DashboardLinkType.DASHBOARDS)
            .as_dropdown(True)
            .icon("external link")
            .include_vars(True)
            .keep_time(True)
            .tags([config.dashboard_tag])
            .target_blank(False)
        )
        .refresh("30s")
        .tags([config.dashboard_tag])
        .variables([datasource_variable(), *variables])
        .annotations([built_in(), *annotations])
        .time(time_from, "now")
        .timezone("browser")
        .version(1)
        .week_start("")
    )
    _lay_out(board, rows)
    model = board.build()
    model.schema_version = SCHEMA_VERSION
    return model
