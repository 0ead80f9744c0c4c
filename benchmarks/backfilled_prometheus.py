"""A throw-away Prometheus on 127.0.0.1 serving samples imported with ``promtool``, for the benchmarks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def backfilled_prometheus(work: Path, samples: Iterable[str], ready_within: float) -> Iterator[str]:
    """Import OpenMetrics ``samples`` into ``work``, serve them until the block ends; yields the URL."""
    text = work / "cluster.om"
    with text.open("w") as out:
        out.writelines(samples)
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(text), str(work / "data")],
        check=True,
        capture_output=True,
    )
    (work / "prometheus.yml").write_text("global: {}\n")
    address = f"127.0.0.1:{free_port()}"
    server = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address={address}",
            "--storage.tsdb.retention.time=30d",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{address}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                if requests.get(f"{url}/-/ready", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Prometheus did not become ready")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(30)
