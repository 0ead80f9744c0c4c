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


def demand_expr(window: float) -> str:
    """The demand of ``demand_exprs`` (run plus waited) as one expression: cores by domain over ``window``.

    Both counters in one selector, summed: one evaluation, where ``used + (waited or 0 * used)`` would
    evaluate ``used`` twice and match the vectors. For a range query, whose answer is the cost: one
    matrix of points by domain instead of two to add up point by point.
    """
    names = "|".join((c.DOMAIN_CPU_SECONDS, c.DOMAIN_VCPU_DELAY))
    return f'sum by ({c.LABEL_DOMAIN}) (rate({{__name__=~"{names}"}}[{format_duration(window)}]))'


def prometheus_history(url: str, timeout: float, clock: Callable[[], float]) -> HistoryQuery:
    """A function (rate window, span, step) -> each domain's demand at every ``step`` of the last ``span``.

    One range query, ending at ``clock()`` in whole seconds (the client rounds the range's ends), with
    the server-side timeout of the snapshot's queries.
    """
    client = PrometheusConnect(url=url, disable_ssl=False)
    params = {"timeout": format_duration(timeout)}

    def query(window: float, span: float, step: float) -> tuple[DemandSeries, float]:
        end = float(round(clock()))
        result = client.custom_query_range(
            query=demand_expr(window),
            start_time=datetime.fromtimestamp(end - span, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=format_duration(step),
            params=params,
        )
        out: DemandSeries = {}
        for item in result:
            name = item.get("metric", {}).get(c.LABEL_DOMAIN)
            if name:
                out[str(name)] = {float(t): float(v) for t, v in item.get("values", ())}
        return out, end

    return query
