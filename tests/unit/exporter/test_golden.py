"""The whole exposition of the recorded host, pinned in a golden file that promtool accepts."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter_fixtures import fake_collector, registry_of
from tests.fixtures.exporter.fake_libvirt import (
    FIXTURES,
    FakeConnection,
    recorded_host,
)
from virtbalance.exporter.collector import LibvirtCollector
from virtbalance.exporter.exposition import gauge, render
from virtbalance.exporter.main import build_app

GOLDEN = FIXTURES / "golden.prom"


def collector() -> LibvirtCollector:
    conn = FakeConnection(recorded_host())
    return fake_collector(lambda: conn)  # its frozen clock makes the text deterministic


def served(accept_encoding: str | None = None) -> bytes:
    """What the HTTP endpoint serves (checked against its Content-Length)."""
    status: list[str] = []
    headers: dict[str, str] = {}
    environ = {"PATH_INFO": "/metrics"}
    if accept_encoding is not None:
        environ["HTTP_ACCEPT_ENCODING"] = accept_encoding

    def start_response(line: str, pairs: list[tuple[str, str]]) -> None:
        status.append(line)
        headers.update(pairs)

    body = b"".join(build_app(collector(), "/metrics")(environ, start_response))
    assert status == ["200 OK"]
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Vary"] == "Accept-Encoding"
    if headers.get("Content-Encoding") == "gzip":
        return b"gzip:" + gzip.decompress(body)
    assert "Content-Encoding" not in headers
    return body


@pytest.mark.parametrize(
    ("header", "gzipped"),
    [
        ("gzip", True),
        ("deflate, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip;q=nonsense", False),
        ("deflate, br", False),
        ("", False),
    ],
)
def test_gzip_when_the_client_accepts_it(header: str, gzipped: bool):
    plain = served()
    assert served(header) == (b"gzip:" + plain if gzipped else plain)


def parsed(
    text: bytes,
) -> dict[str, tuple[str, str, set[tuple[str, tuple[tuple[str, str], ...], float]]]]:
    return {
        family.name: (
            family.type,
            family.documentation,
            {(s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples},
        )
        for family in text_string_to_metric_families(text.decode())
    }


def test_served_text_is_what_prometheus_client_renders():
    reference = generate_latest(registry_of(collector()))
    assert served() == reference  # byte for byte
    assert len(parsed(reference)) > 30


def test_label_values_and_help_are_escaped():
    family = gauge("x_info", "line\\one\nline two", ("a", "b"))
    family.add(('say "hi"', "back\\slash\nnew line"), 1)
    family.add(("", "é"), 2.5e10)
    text = render([family])
    assert text.decode() == (
        "# HELP x_info line\\\\one\\nline two\n"
        "# TYPE x_info gauge\n"
        'x_info{a="say \\"hi\\"",b="back\\\\slash\\nnew line"} 1.0\n'
        'x_info{a="",b="é"} 2.5e+10\n'
    )
    [(sample_a, sample_b)] = [
        tuple(s.labels.values())
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
        if s.value == 1
    ]
    assert (sample_a, sample_b) == ('say "hi"', "back\\slash\nnew line")


def test_exposition_matches_golden_file():
    text = served()
    if os.environ.get("VIRTBALANCE_UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(text)
    assert text.decode() == GOLDEN.read_text()


def test_golden_file_passes_promtool_check_metrics():
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package (scripts/bootstrap)"
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=GOLDEN.read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.decode().strip() == ""


@pytest.mark.parametrize(
    "bad",
    ["libvirt_up 1\nlibvirt_up 1\n", '# TYPE x_total counter\nx_total{a="b"} not-a-number\n'],
)
def test_promtool_check_rejects_broken_exposition(bad: str):
    # Proves the check above can fail.
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=bad.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
