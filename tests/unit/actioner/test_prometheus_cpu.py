"""The snapshot's CPU demand from Prometheus: run time plus vCPU wait, two queries at one instant."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from tests.http_fixtures import QuietHandler, serving
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
    servers = contextlib.ExitStack()

    def start(fake: FakePrometheus) -> str:
        class Handler(QuietHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                self.answer(200, json.dumps(fake.answer(params)).encode(), "application/json")

        port = servers.enter_context(serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)))
        return f"http://127.0.0.1:{port}"

    with servers:
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
