"""CPU demand by domain from Prometheus: now (the snapshot's) and over the recent windows (the forecast's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_api_client import PrometheusConnect

from virtbalance import contract as c
from virtbalance.durations import format_duration

CpuQuery = Callable[[float], dict[str, float]]


@dataclass(frozen=True)
class DemandHistory:
    """Each domain's demand, in cores, at the steps of a span: one row per domain on one time axis.

    ``rows[domain][i]`` is the demand at ``end - (len(row) - 1 - i) * step``, None where Prometheus has
    no point (the domain was not scraped then). Lists, not a dict per point: at 20,000 domains building
    those dicts cost more than reading the forecast from them.
    """

    end: float
    step: float
    rows: dict[str, list[float | None]]


# (rate window, span, step) -> each domain's demand at every step of the span, the last at its end
HistoryQuery = Callable[[float, float, float], DemandHistory]


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


def client(url: str, timeout: float) -> PrometheusConnect:
    """A client whose every request gives up after ``timeout`` seconds without an answer.

    The server-side timeout (sent with each query) bounds Prometheus' evaluation; this one bounds a
    server that accepted the connection and never answers, so a query run in a thread ends by itself.
    """
    return PrometheusConnect(url=url, disable_ssl=False, timeout=timeout)


def prometheus_cpu(url: str, timeout: float, job_filter: str = "") -> CpuQuery:
    """A function window -> {domain: cores demanded}: CPU time run plus vCPU time spent waiting."""
    prometheus = client(url, timeout)
    params = {"timeout": format_duration(timeout)}

    def series(expr: str, at: str | None) -> tuple[dict[str, float], str | None]:
        """{domain: value} of an instant query, and the instant Prometheus evaluated it at."""
        result = prometheus.custom_query(
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
    the timeouts of the snapshot's queries. Prometheus answers a range query on the grid ``start + k *
    step``: a series with every point is its row as it comes, one with gaps has each point put at its
    step's place.
    """
    prometheus = client(url, timeout)
    params = {"timeout": format_duration(timeout)}

    def query(window: float, span: float, step: float) -> DemandHistory:
        end = float(round(clock()))
        start = end - span
        count = round(span / step) + 1
        result = prometheus.custom_query_range(
            query=demand_expr(window),
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.fromtimestamp(end, UTC),
            step=format_duration(step),
            params=params,
        )
        rows: dict[str, list[float | None]] = {}
        for item in result:
            name = item.get("metric", {}).get(c.LABEL_DOMAIN)
            values = item.get("values", ())
            if not name or not values:
                continue
            if len(values) == count:
                row: list[float | None] = [float(v) for _t, v in values]
            else:
                row = [None] * count
                for t, v in values:
                    row[round((float(t) - start) / step)] = float(v)
            rows[str(name)] = row
        return DemandHistory(end, step, rows)

    return query
