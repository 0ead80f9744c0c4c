"""PromQL annotations: the SDK's annotation model plus the Prometheus fields it does not carry."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as sdk_dashboard
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard

from virtbalance.mixin.dashboards.built import Built
from virtbalance.mixin.dashboards.panels import DATASOURCE


class PrometheusAnnotation(dashboard.AnnotationQuery):
    """An annotation read from a PromQL query.

    grafana-foundation-sdk models only the fields common to every datasource; Grafana's Prometheus
    datasource also reads the title and text templates, the tag labels and the step, so they are
    added here rather than lost.
    """

    def __init__(
        self,
        name: str,
        expr: str,
        *,
        title: str,
        text: str,
        tags: Sequence[str],
        color: str,
        step: str,
    ) -> None:
        super().__init__(name=name, datasource=DATASOURCE, icon_color=color, expr=expr)
        self.title_format = title
        self.text_format = text
        self.tag_keys = ",".join(tags)
        self.step = step
        # No builtIn key: only Grafana's own annotation is built in.
        self.built_in = None

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            {
                "step": self.step,
                "tagKeys": self.tag_keys,
                "textFormat": self.text_format,
                "titleFormat": self.title_format,
                # Each event at its step's time, not at the series' value read as a time.
                "useValueForTime": False,
            }
        )
        return payload


def annotation(
    name: str, expr: str, *, title: str, text: str, tags: Sequence[str], color: str, step: str
) -> Builder[dashboard.AnnotationQuery]:
    """A PromQL annotation: one event (or region) wherever ``expr`` returns a series."""
    return Built(
        PrometheusAnnotation(name, expr, title=title, text=text, tags=tags, color=color, step=step)
    )


def built_in() -> Builder[dashboard.AnnotationQuery]:
    """Grafana's own annotations and alerts, hidden from the toggles as Grafana makes it."""
    return (
        sdk_dashboard.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(dashboard.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )
