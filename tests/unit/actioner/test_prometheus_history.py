"""The forecast's demand history from Prometheus: one range query, a row per domain on its time axis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.http_fixtures import QuietHandler, serving, serving_api
from virtbalance import contract as c
from virtbalance.actioner.prometheus_demand import prometheus_history

END = 1_796_150_000.0
STEP = 300.0


class FakePrometheus:
    """Answers /api/v1/query_range with a canned matrix; records every query's parameters."""

    def __init__(self, matrix: list[dict[str, object]]) -> None:
        self.matrix = matrix
        self.queries: list[dict[str, str]] = []

    def answer(self, params: dict[str, str]) -> dict[str, object]:
        self.queries.append(params)
        return {"status": "success", "data": {"resultType": "matrix", "result": self.matrix}}


def series(domain: str | None, *points: tuple[float, float]) -> dict[str, object]:
    """One series of the matrix, its values as Prometheus sends them: [unix time, "value"]."""
    metric = {} if domain is None else {c.LABEL_DOMAIN: domain}
    return {"metric": metric, "values": [[t, repr(v)] for t, v in points]}


@pytest.fixture
def serve() -> Iterator[object]:
    with serving_api() as start:
        yield start


def test_each_domain_is_a_row_on_the_spans_steps_with_none_where_it_has_no_point(serve):
    grid = [END - STEP * (3 - i) for i in range(4)]  # the span's four steps, the last at END
    fake = FakePrometheus(
        [
            series("full", *zip(grid, (1.0, 2.0, 3.0, 4.0), strict=True)),
            # Not scraped at the second step, and only since the first: its points at their steps.
            series("gap", (grid[0], 0.5), (grid[2], 0.25), (grid[3], 0.75)),
            series("late", (grid[3], 2.5)),
            series(None, (grid[3], 9.0)),  # no domain label: not a domain's demand
            series("empty"),
        ]
    )
    history = prometheus_history(serve(fake), 7.0, lambda: END + 0.4)(60.0, 3 * STEP, STEP)
    assert (history.end, history.step) == (END, STEP)  # the clock rounded to whole seconds
    assert history.rows == {
        "full": [1.0, 2.0, 3.0, 4.0],
        "gap": [0.5, None, 0.25, 0.75],
        "late": [None, None, None, 2.5],
    }
    (query,) = fake.queries
    assert float(query["start"]) == END - 3 * STEP and float(query["end"]) == END
    assert query["step"] == "5m" and query["timeout"] == "7s"
    assert "[1m]" in query["query"]


def test_a_prometheus_that_never_answers_fails_the_query_after_the_clients_retries():
    # Accepts the connection and reads the request, never answers: only the client's timeout ends
    # each attempt; the client's retries (three, backing off a second, then two) bound the query.
    release = threading.Event()
    asked: list[str] = []

    class Silent(QuietHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            release.wait(30)

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Silent)) as port:
        query = prometheus_history(f"http://127.0.0.1:{port}", 0.2, lambda: END)
        began = time.monotonic()
        try:
            with pytest.raises(Exception, match="timed out"):
                query(60.0, 3 * STEP, STEP)
        finally:
            release.set()
    assert len(asked) == 4
    assert time.monotonic() - began < 15
