"""Benchmark the actioner: webhook answer time (new vs duplicate notifications, served by waitress) and,
on a lab, a chunk's split window with its members migrated concurrently vs one after another."""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import waitress.server
from checkout import REPO

from tests.actioner_fixtures import RecordingQueue
from virtbalance.actioner.app import create_app
from virtbalance.actioner.config import parse_config
from virtbalance.actioner.executor import Executor, StepState
from virtbalance.actioner.journal import Journal
from virtbalance.actioner.libvirt_hosts import HostPool
from virtbalance.actioner.metrics import Metrics
from virtbalance.actioner.services import Services
from virtbalance.lab import Lab
from virtbalance.plan import Migration
from virtbalance.snapshot import Snapshot

PAYLOAD = REPO / "tests" / "fixtures" / "alertmanager" / "firing_hv1.json"


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(1000 * statistics.median(ordered), 2),
        "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2),
        "max_ms": round(1000 * ordered[-1], 2),
    }


def bench_webhook(requests_count: int) -> dict[str, Any]:
    """POST recorded notifications over HTTP to the real app (real journal on disk, queue only counted)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "token").write_text("bench")
        config = parse_config(
            {
                "hosts": {"hv1": "qemu+tcp://192.0.2.1/system"},
                "journal": {"path": str(base / "journal.sqlite")},
                "webhook": {"token_file": str(base / "token")},
            },
            base=base,
        )
        journal = Journal(config.journal_path)
        queue = RecordingQueue()
        services = Services(config, journal, Metrics(), queue, "bench")
        server = waitress.server.create_server(
            create_app(config, services=services), host="127.0.0.1", port=0, threads=4
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.effective_port}/api/v1/alerts"
        session = requests.Session()
        headers = {"Authorization": "Bearer bench"}
        template = json.loads(PAYLOAD.read_text())
        new: list[float] = []
        duplicate: list[float] = []
        for index in range(requests_count):
            body = copy.deepcopy(template)
            body["alerts"][0]["startsAt"] = f"2026-01-01T00:00:{index:05d}Z"
            for bucket, payload in (
                (new, body),
                (duplicate, body),
            ):  # side by side: new, then its repeat
                began = time.perf_counter()
                response = session.post(url, json=payload, headers=headers, timeout=10)
                bucket.append(time.perf_counter() - began)
                response.raise_for_status()
        server.close()
        thread.join(5)
        journal.close()
    assert len(queue.submitted) == requests_count, "each new overload queues exactly one plan"
    return {
        "requests": requests_count,
        "new": _percentiles(new),
        "duplicate": _percentiles(duplicate),
    }


def bench_split(lab_id: int, rounds: int) -> dict[str, Any]:
    """Move the lab's three-member chunk hv1 -> hv2 and back, concurrent vs sequential, alternating."""
    lab = Lab.attach(lab_id)
    chunk = ("app1", "db1", "web1")
    results: dict[str, list[float]] = {"concurrent": [], "sequential": []}
    walls: dict[str, list[float]] = {"concurrent": [], "sequential": []}
    with tempfile.TemporaryDirectory() as tmp:
        hosts = {
            h.name: {"uri": h.libvirt_uri, "migration_uri": h.migration_uri, "cpus": 16}
            for h in lab.hosts
        }
        for _ in range(rounds):
            for label, concurrency in (("concurrent", 3), ("sequential", 1)):
                config = parse_config(
                    {
                        "hosts": hosts,
                        "journal": {"path": f"{tmp}/{label}.sqlite"},
                        # no cooldown between the benchmark's own back-and-forth moves
                        "policy": {"vm_cooldown": 0, "host_settle": 0, "anti_flap": 0},
                        "execution": {
                            "max_concurrent": concurrency,
                            "max_concurrent_per_host": concurrency,
                        },
                    }
                )
                journal = Journal(config.journal_path)
                pool = HostPool(config)
                metrics = Metrics()
                executor = Executor(config=config, pool=pool, journal=journal, metrics=metrics)
                for source, destination in (("hv1", "hv2"), ("hv2", "hv1")):
                    plan_id = journal.create_plan("bench", f"drain:{source}", [source])
                    group = [
                        Migration(d, source, destination, "lan11+lan12", "bench") for d in chunk
                    ]
                    ids = [
                        journal.add_migration(
                            plan_id=plan_id,
                            step=0,
                            domain=m.domain,
                            chunk=m.chunk,
                            source=source,
                            destination=destination,
                        )
                        for m in group
                    ]
                    snapshot = _empty_snapshot()
                    began = time.monotonic()
                    outcome = executor.run_step(plan_id, ids, group, snapshot, [])
                    walls[label].append(time.monotonic() - began)
                    if outcome.state is not StepState.DONE or outcome.split_seconds is None:
                        raise SystemExit(f"chunk move failed: {outcome}")
                    results[label].append(outcome.split_seconds)
                pool.close()
                journal.close()
    return {
        label: {
            "moves": len(values),
            "median_s": round(statistics.median(values), 2),
            "max_s": round(max(values), 2),
            "chunk_move_median_s": round(statistics.median(walls[label]), 2),
        }
        for label, values in results.items()
    }


def _empty_snapshot() -> Snapshot:
    return Snapshot(time=time.time(), hosts=(), domains=())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--requests", type=int, default=300, help="new notifications (each also repeated)"
    )
    parser.add_argument(
        "--lab-id", type=int, help="a running default-scenario lab for the split window"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="split-window rounds (each: there and back)"
    )
    args = parser.parse_args()
    report: dict[str, Any] = {"webhook": bench_webhook(args.requests)}
    if args.lab_id is not None:
        report["split_window"] = bench_split(args.lab_id, args.rounds)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
