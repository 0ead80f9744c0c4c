"""Template variables: the Prometheus datasource, and label values to filter a dashboard by."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard

from virtbalance.mixin.dashboards.built import Built
from virtbalance.mixin.dashboards.panels import DATASOURCE, DATASOURCE_VARIABLE

# The SDK's variable model gives every variable the interval variable's fields; ours are none.
_NOT_AN_INTERVAL: dict[str, None] = {"auto": None, "auto_min": None, "auto_count": None}


class LabelValuesVariable(dashboard.VariableModel):
    """The values of label ``name`` on ``metric``, refreshed when the time range changes.

    Carries its ``definition`` too, the query text Grafana's variable list shows: grafana-foundation-sdk's
    variable model has no such field, so it is added here rather than lost.
    """

    def __init__(
        self, name: str, title: str, metric: str, *, multi: bool, all_value: str | None
    ) -> None:
        query = f"label_values({metric}, {name})"
        super().__init__(
            type_val=dashboard.VariableType.QUERY,
            name=name,
            label=title,
            datasource=DATASOURCE,
            hide=dashboard.VariableHide.DONT_HIDE,
            multi=multi,
            include_all=all_value is not None,
            all_value=all_value,
            options=[],
            # Grafana's variable editor form (qryType 1: label values) with the classic query beside it.
            query={
                "label": name,
                "metric": metric,
                "qryType": 1,
                "query": query,
                "refId": "PrometheusVariableQueryEditor-VariableQuery",
            },
            refresh=dashboard.VariableRefresh.ON_TIME_RANGE_CHANGED,
            regex="",
            sort=dashboard.VariableSort.ALPHABETICAL_ASC,
            **_NOT_AN_INTERVAL,
        )
        self.definition = query

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "definition": self.definition}


def datasource_variable() -> Builder[dashboard.VariableModel]:
    """The ``datasource`` variable: any Prometheus datasource of the Grafana instance.

    Made as a model: the SDK's datasource-variable builder cannot set when it refreshes.
    """
    return Built(
        dashboard.VariableModel(
            type_val=dashboard.VariableType.DATASOURCE,
            name=DATASOURCE_VARIABLE,
            label="Prometheus",
            hide=dashboard.VariableHide.DONT_HIDE,
            query="prometheus",
            multi=False,
            include_all=False,
            options=[],
            refresh=dashboard.VariableRefresh.ON_DASHBOARD_LOAD,
            regex="",
            **_NOT_AN_INTERVAL,
        )
    )


def query_variable(
    name: str, title: str, metric: str, *, multi: bool, all_value: str | None = None
) -> Builder[dashboard.VariableModel]:
    """A variable holding the values of label ``name`` on ``metric`` (``all_value``: offer "All")."""
    return Built(LabelValuesVariable(name, title, metric, multi=multi, all_value=all_value))
