"""Grafana dashboard JSON builders: panels, template variables, annotations and the grid layout."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
GRID_WIDTH = 24
DATASOURCE_VARIABLE = "datasource"
# Every panel, target, variable and annotation names the datasource through the variable, never by uid.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}

Json = dict[str, Any]


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


@dataclass(frozen=True)
class Panel:
    """A panel body and its size; ids and positions are assigned when the dashboard is laid out."""

    body: Json
    width: int = 12
    height: int = 8


@dataclass(frozen=True)
class Row:
    """A titled band of panels, filled left to right and wrapped at the grid width."""

    title: str
    panels: Sequence[Panel] = field(default_factory=tuple)


def _targets(queries: Iterable[Query], table: bool = False) -> list[Json]:
    targets = []
    for index, query in enumerate(queries):
        target: Json = {
            "datasource": dict(DATASOURCE),
            "editorMode": "code",
            "expr": query.expr,
            "instant": query.instant,
            "legendFormat": query.legend or "__auto",
            "range": not query.instant,
            "refId": chr(ord("A") + index),
        }
        if table:
            target["format"] = "table"
        targets.append(target)
    return targets


def _thresholds(steps: Sequence[Threshold], base: str = "green") -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": step.color, "value": step.value} for step in steps],
    }


def _defaults(
    unit: str,
    thresholds: Sequence[Threshold] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    decimals: int | None = None,
) -> Json:
    defaults: Json = {
        "color": {"mode": "palette-classic" if not thresholds else "thresholds"},
        "thresholds": _thresholds(thresholds),
        "unit": unit,
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if decimals is not None:
        defaults["decimals"] = decimals
    return defaults


def _base(kind: str, title: str, description: str, targets: list[Json], field_config: Json) -> Json:
    return {
        "datasource": dict(DATASOURCE),
        "description": description,
        "fieldConfig": field_config,
        "targets": targets,
        "title": title,
        "type": kind,
    }


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
    overrides: Sequence[Json] = (),
    max_points: int | None = None,
) -> Panel:
    """A time series panel; thresholds are drawn as dashed lines, series keep the palette colours.

    ``max_points`` caps the steps of an expensive query (Grafana widens the step to fit).
    """
    defaults = _defaults(unit, thresholds, minimum, maximum)
    defaults["color"] = {"mode": "palette-classic"}
    defaults["custom"] = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else (25 if stack else 10),
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
    }
    body = _base(
        "timeseries",
        title,
        description,
        _targets(queries),
        {"defaults": defaults, "overrides": list(overrides)},
    )
    if max_points is not None:
        body["maxDataPoints"] = max_points
    body["options"] = {
        "legend": {
            "calcs": ["lastNotNull", "max"],
            "displayMode": "table",
            "placement": "right",
            "showLegend": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return Panel(body, width, height)


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
    mappings: Sequence[Json] = (),
) -> Panel:
    """A single-value panel showing the latest value of each series.

    Its queries run as instant queries: one evaluation instead of one per step of the time range.
    """
    defaults = _defaults(unit, thresholds, decimals=decimals)
    defaults["mappings"] = list(mappings)
    body = _base(
        "stat",
        title,
        description,
        _targets([Query(query.expr, query.legend, instant=True) for query in queries]),
        {"defaults": defaults, "overrides": []},
    )
    body["options"] = {
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "textMode": "auto",
    }
    return Panel(body, width, height)


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
    body = _base(
        "bargauge",
        title,
        description,
        _targets(queries),
        {"defaults": _defaults(unit, thresholds, minimum, maximum), "overrides": []},
    )
    body["options"] = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
    }
    return Panel(body, width, height)


def state_timeline(
    title: str,
    description: str,
    queries: Sequence[Query],
    mappings: Sequence[Json],
    *,
    unit: str = "none",
    width: int = 24,
    height: int = 6,
) -> Panel:
    """Coloured bands over time; ``mappings`` turn the numeric states into names and colours."""
    defaults = _defaults(unit)
    defaults["color"] = {"mode": "thresholds"}
    defaults["mappings"] = list(mappings)
    defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
    body = _base(
        "state-timeline",
        title,
        description,
        _targets(queries),
        {"defaults": defaults, "overrides": []},
    )
    body["options"] = {
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "mergeValues": True,
        "rowHeight": 0.9,
        "showValue": "never",
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return Panel(body, width, height)


@dataclass(frozen=True)
class Column:
    """A table value column: the query producing it, its header and unit."""

    query: Query
    header: str
    unit: str


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
    targets = _targets(queries, table=True)
    # A single query's value column is called "Value", several are "Value #A", "Value #B", ...
    if len(columns) == 1:
        value_names = {"Value": columns[0].header}
    else:
        value_names = {
            f"Value #{target['refId']}": column.header
            for target, column in zip(targets, columns, strict=True)
        }
    kept = [*labels, *value_names]
    overrides = [
        {
            "matcher": {"id": "byName", "options": column.header},
            "properties": [{"id": "unit", "value": column.unit}],
        }
        for column in columns
    ]
    body = _base(
        "table",
        title,
        description,
        targets,
        {"defaults": _defaults(columns[0].unit), "overrides": overrides},
    )
    body["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "filterFieldsByName", "options": {"include": {"names": kept}}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {},
                "indexByName": {name: index for index, name in enumerate(kept)},
                "renameByName": value_names,
            },
        },
    ]
    body["options"] = {
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "countRows": False, "fields": ""},
        "showHeader": True,
        "sortBy": [{"desc": True, "displayName": sort_by}] if sort_by else [],
    }
    return Panel(body, width, height)


def text(title: str, markdown: str, *, width: int = 24, height: int = 8) -> Panel:
    """A markdown panel; Grafana substitutes template variables such as ``${host}`` inside it."""
    body: Json = {
        "options": {
            "code": {"language": "plaintext", "showLineNumbers": False},
            "content": markdown,
            "mode": "markdown",
        },
        "title": title,
        "type": "text",
    }
    return Panel(body, width, height)


def value_mapping(value: int, text: str, color: str) -> Json:
    """One value-to-text mapping with a colour, for stat and state-timeline panels."""
    return {
        "options": {str(value): {"color": color, "index": value, "text": text}},
        "type": "value",
    }


def datasource_variable() -> Json:
    """The ``datasource`` variable: any Prometheus datasource of the Grafana instance."""
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Prometheus",
        "multi": False,
        "name": DATASOURCE_VARIABLE,
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(
    name: str, title: str, metric: str, *, multi: bool, all_value: str | None = None
) -> Json:
    """A variable holding the values of label ``name`` on ``metric``, refreshed on time range change."""
    query = f"label_values({metric}, {name})"
    variable: Json = {
        "current": {},
        "datasource": dict(DATASOURCE),
        "definition": query,
        "hide": 0,
        "includeAll": all_value is not None,
        "label": title,
        "multi": multi,
        "name": name,
        "options": [],
        # Grafana's variable editor form (qryType 1: label values) with the classic query beside it.
        "query": {
            "label": name,
            "metric": metric,
            "qryType": 1,
            "query": query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    if all_value is not None:
        variable["allValue"] = all_value
    return variable


def annotation(
    name: str, expr: str, *, title: str, text: str, tags: Sequence[str], color: str, step: str
) -> Json:
    """A PromQL annotation: one event (or region) wherever ``expr`` returns a series."""
    return {
        "datasource": dict(DATASOURCE),
        "enable": True,
        "expr": expr,
        "hide": False,
        "iconColor": color,
        "name": name,
        "step": step,
        "tagKeys": ",".join(tags),
        "textFormat": text,
        "titleFormat": title,
        "useValueForTime": False,
    }


_BUILT_IN_ANNOTATION: Json = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def _layout(rows: Sequence[Row]) -> list[Json]:
    """Assign ids and grid positions: each row header, then its panels left to right, wrapping."""
    panels: list[Json] = []
    next_id = 1
    y = 0
    for row in rows:
        panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "id": next_id,
                "panels": [],
                "title": row.title,
                "type": "row",
            }
        )
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                y += line_height
                x, line_height = 0, 0
            panels.append(
                {
                    **panel.body,
                    "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
                    "id": next_id,
                }
            )
            next_id += 1
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    rows: Sequence[Row],
    variables: Sequence[Json] = (),
    annotations: Sequence[Json] = (),
    time_from: str = "now-6h",
) -> Json:
    """A complete dashboard with the datasource variable first and links to its siblings by tag."""
    return {
        "annotations": {"list": [dict(_BUILT_IN_ANNOTATION), *annotations]},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": True,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": ["virtbalance"],
                "targetBlank": False,
                "title": "virtbalance",
                "type": "dashboards",
            }
        ],
        "panels": _layout(rows),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["virtbalance"],
        "templating": {"list": [datasource_variable(), *variables]},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }
