"""The actioner as a lab run's child process: its log, and the wait until it answers /healthz."""

from __future__ import annotations

import http.server
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http_fixtures import serving
from virtbalance.lab.actioner_process import ensure_stopped, start_actioner, wait_healthy

REPO = Path(__file__).resolve().parents[3]


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads no request log


@pytest.fixture
def healthy_url() -> Iterator[str]:
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)) as port:
        yield f"http://127.0.0.1:{port}"


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_wait_ends_once_healthz_answers(healthy_url):
    process = _child("import time; time.sleep(60)")
    try:
        wait_healthy(healthy_url, process, 10.0)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait(10)


def test_an_actioner_that_exits_ends_the_wait_with_its_exit_code(healthy_url):
    process = _child("raise SystemExit(3)")
    process.wait(10)
    with pytest.raises(RuntimeError, match="the actioner exited with 3 before it was healthy"):
        wait_healthy(healthy_url, process, 10.0)


def test_no_answer_within_the_timeout_ends_the_wait():
    process = _child("import time; time.sleep(60)")
    try:
        with pytest.raises(RuntimeError, match="the actioner did not become healthy"):
            wait_healthy("http://127.0.0.1:9", process, 0.5)
    finally:
        process.kill()
        process.wait(10)


def test_the_actioner_appends_its_output_to_the_log(tmp_path):
    log = tmp_path / "actioner.log"
    log.write_bytes(b"earlier run\n")
    process = start_actioner(tmp_path / "missing.yaml", log, REPO)
    assert process.wait(120) == 2  # EXIT_CONFIG: the config file cannot be read
    text = log.read_text()
    assert text.startswith("earlier run\n")
    assert "virtbalance-actioner:" in text and "missing.yaml" in text


def test_a_running_actioner_is_killed_and_reaped_one_that_ended_is_left_alone():
    running = _child("import time; time.sleep(60)")
    ensure_stopped(running)
    assert running.returncode is not None and running.returncode < 0  # killed by a signal
    ended = _child("raise SystemExit(0)")
    ended.wait(10)
    ensure_stopped(ended)
    assert ended.returncode == 0
