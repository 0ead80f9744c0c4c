"""CPU demand by domain from Prometheus: now (the snapshot's) and over the recent windows (the forecast's)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_api_client import PrometheusConnect

from virtbalance import contract as c
from virtbalance.durations import format_duration

CpuQuery = Callable[[float], dict[str, float]]

# domain -> {evaluation timestamp: cores demanded}
DemandSeries = dict[str, dict[float, float]]

# (rate window, span, step) -> (each domain's demand at every step of the span, the span's last instant)
HistoryQuery = Callable[[float, float, float], tuple[DemandSeries, float]]


def demand_exprs(window: float, job_filter: str = "") -> tuple[str, str]:
    """(CPU time run, vCPU time spent waiting), each as cores by domain over ``window``.

    Summed by domain: a domain that moved inside the window has series under two host labels. Their
    sum is the demand the ``host:libvirt_cpu_demand:ratio`` rule alerts on: usage alone flattens at the
    host's capacity when it is saturated, the wait shows how much more the VMs want.
    """
    span = format_duration(window)
    used = f"sum by ({c.LABEL_DOMAIN}) (rate({c.DOMAIN_CPU_SECONDS}{job_filter}[{span}]))"
    waited = f"sum by ({c.LABEL_DOMAIN}) (rate({c.DOMAIN_VCPU_DELAY}{job_filter}[{span}]))"
    return used, waited


def prometheus_cpu(url: str, timeout: float, job_filter: str = "") -> CpuQuery:
    """A function window -> {domain: cores demanded}: CPU time run plus vCPU time spent waiting."""
    client = PrometheusConnect(url=url, disable_ssl=False)
    params = {"timeout": format_duration(timeout)}

    def series(expr: str, at: str | None) -> tuple[dict[str, float], str | None]:
        """{domain: value} of an instant query, and the instant Prometheus evaluated it at."""
        result = client.custom_query(
            query=expr, params=params if at is None else {**params, "time": at}
        )
        out: dict[str, float] = {}
        evaluated = at
        for item in result:
            evaluated = str(item["value"][0])
            name = item.get("metric", {}).get(c.LABEL_DOMAIN)
            if name:
                out[str(name)] = float(item["value"][1])
        return out, evaluated

    def query(window: float) -> dict[str, float]:
        used, waited = demand_exprs(window, job_filter)
        # Two queries at one instant, added here: the single expression `used + (waited or 0 * used)`
        # gives the same numbers but has Prometheus evaluate `used` twice and match the vectors, about
        # three times the work of `used` alone at 20,000 domains.
        run, at = series(used, None)
        if not run:
            return {}
        wait, _ = series(waited, at)
        return {name: cores + wait.get(name, 0.0) for name, cores in run.items()}

    return query


def prometheus_history(
    url: str, timeout: float, clock: Callable[[], float], job_filter: str = ""
) -> HistoryQuery:
    """A function (rate window, span, step) -> each domain's demand at every ``step`` of the last ``span``.

    The demand of ``prometheus_cpu``, as two range queries ending at the same instant (so their steps
    line up and add), with the same server-side timeout.
    """
    client = PrometheusConnect(url=url, disable_ssl=False)
    params = {"timeout": format_duration(timeout)}

    def matrix(expr: str, start: float, end: float, step: float) -> DemandSeries:
        result = client.custom_query_range(
            query=expr,
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=format_duration(step),
            params=params,
        )
        out: DemandSeries = {}
        for item in result:
            name = item.get("metric", {}).get(c.LABEL_DOMAIN)
            if name:
                out[str(name)] = {float(t): float(v) for t, v in item.get("values", ())}
        return out

    def query(window: float, span: float, step: float) -> tuple[DemandSeries, float]:
        # Whole seconds: the client rounds the range's ends, and both queries must share them.
        end = float(round(clock()))
        start = end - span
        used, waited = demand_exprs(window, job_filter)
        run = matrix(used, start, end, step)
        if not run:
            return {}, end
        wait = matrix(waited, start, end, step)
        return {
            name: {t: cores + wait.get(name, {}).get(t, 0.0) for t, cores in points.items()}
            for name, points in run.items()
        }, end

    return query
