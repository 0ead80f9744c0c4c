"""The snapshot's CPU demand from Prometheus: run time plus vCPU wait, two queries at one instant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.http_fixtures import serving_api
from virtbalance import contract as c
from virtbalance.actioner.prometheus_demand import prometheus_cpu

EVALUATED_AT = 1796150000.5


class FakePrometheus:
    """Answers /api/v1/query with canned vectors by the metric queried; records every query's parameters."""

    def __init__(self, used: dict[str, float], waited: dict[str, float]) -> None:
        self.vectors = {c.DOMAIN_CPU_SECONDS: used, c.DOMAIN_VCPU_DELAY: waited}
        self.queries: list[dict[str, str]] = []

    def answer(self, params: dict[str, str]) -> dict[str, object]:
        self.queries.append(params)
        (metric,) = [m for m in self.vectors if m in params["query"]]
        at = float(params.get("time", EVALUATED_AT))
        result = [
            {"metric": {c.LABEL_DOMAIN: name}, "value": [at, repr(value)]}
            for name, value in self.vectors[metric].items()
        ]
        return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.fixture
def serve() -> Iterator[object]:
    with serving_api() as start:
        yield start


def test_demand_is_run_time_plus_wait_evaluated_at_one_instant(serve):
    fake = FakePrometheus(used={"a": 0.5, "b": 1.25}, waited={"a": 0.25, "gone": 2.0})
    demand = prometheus_cpu(serve(fake), 7.0)(300.0)
    # b has no wait series (its wait counts 0); gone has no run time: not a domain of the answer.
    assert demand == {"a": 0.75, "b": 1.25}
    first, second = fake.queries
    assert c.DOMAIN_CPU_SECONDS in first["query"] and "[5m]" in first["query"]
    assert "time" not in first  # Prometheus' own now...
    assert float(second["time"]) == EVALUATED_AT  # ...and the wait read at that same instant
    assert first["timeout"] == second["timeout"] == "7s"


def test_no_run_time_series_is_no_demand_and_one_query(serve):
    fake = FakePrometheus(used={}, waited={"a": 0.25})
    assert prometheus_cpu(serve(fake), 7.0)(300.0) == {}
    assert len(fake.queries) == 1
