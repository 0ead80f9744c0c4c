"""virtbalance-exporter side by side with Debian's prometheus-libvirt-exporter on one real libvirtd.

Run as root: .venv/bin/python benchmarks/bench_exporter_vs_go.py [--domains 24] [--rounds 30]
    [--baseline GIT-REF]
Brings up a two-host lab (VIRTBALANCE_LAB_ID, default 1) with the domains running on the first
host, starts both exporters inside it, scrapes them interleaved (order rotating per round) and
prints the median wall time of a full HTTP scrape of each, their ratio and our scrape stages.
With --baseline, the exporter of that commit runs too, in the same rounds (before/after in one
run). Then live-migrates guests between the hosts and scrapes the source host's exporters while
each migration runs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import checkout  # noqa: F401 (puts this tree first on sys.path)
from baseline_tree import export_tree

from tests.go_exporter import GO_EXPORTER, start_go_exporter
from virtbalance.lab import Lab

BASELINE_PORT = 19179
STAGE = re.compile(r'libvirt_exporter_scrape_duration_seconds\{stage="(\w+)"\} (\S+)')


def scenario_yaml(domains: int) -> str:
    lines = [
        "name: bench-exporter",
        "description: many guests on one host for the exporter benchmark",
        "hosts:",
        "  - {name: bx1, cpus: 2, memory: 4GiB}",
        "  - {name: bx2, cpus: 2, memory: 4GiB}",
        "domains:",
    ]
    for index in range(domains):
        # chains of four guests on a private bridge, like tiers of an application
        network = f"lan{index // 4 + 11}"
        lines.append(
            f"  - {{name: g{index:02d}, host: bx1, memory: 32MiB, private_networks: [{network}]}}"
        )
    return "\n".join(lines) + "\n"


def scrape(target: str, stages: dict[str, list[float]] | None = None) -> tuple[float, int]:
    began = time.monotonic()
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=30) as response:
        body = response.read()
    seconds = time.monotonic() - began
    if stages is not None:
        for match in STAGE.finditer(body.decode()):
            stages.setdefault(match.group(1), []).append(float(match.group(2)))
    return seconds, len(body)


def wait_up(target: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            scrape(target)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"exporter on {target} did not come up") from None
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--migrations", type=int, default=4)
    parser.add_argument("--baseline", help="also run the exporter of this git commit")
    args = parser.parse_args()
    lab_id = int(os.environ.get("VIRTBALANCE_LAB_ID", "1"))
    go_binary = shutil.which(GO_EXPORTER)
    if go_binary is None:
        print(f"{GO_EXPORTER} is not installed (scripts/bootstrap)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bench-exporter.yaml"
        path.write_text(scenario_yaml(args.domains))
        began = time.monotonic()
        lab = Lab.up(path, lab_id=lab_id)
    print(f"lab {lab_id} up with {args.domains} guests in {time.monotonic() - began:.1f}s")
    go: subprocess.Popen[bytes] | None = None
    baseline: subprocess.Popen[bytes] | None = None
    baseline_dir = tempfile.TemporaryDirectory()
    try:
        ours = lab.start_exporters()["bx1"]
        host = lab.hosts[0]
        go_target, go = start_go_exporter(lab, go_binary)
        wait_up(go_target, go)
        targets = {"ours": ours, "go": go_target}
        if args.baseline:
            export_tree(args.baseline, Path(baseline_dir.name))
            baseline_target = f"{host.address}:{BASELINE_PORT}"
            # A commit from before the exporter installed as virtbalance.exporter runs it by the bare name.
            namespaced = (Path(baseline_dir.name) / "virtbalance" / "exporter").exists()
            package = "virtbalance.exporter" if namespaced else "exporter"
            # Same flags as the lab's exporter for bx1, from the exported tree.
            argv = [
                *(
                    sys.executable,
                    "-m",
                    f"{package}.main",
                    "--libvirt.uri",
                    "qemu:///system",
                ),
                *("--web.listen-address", baseline_target, "--host.cpus", "2"),
                *("--host.memory-bytes", str(4 * 1024**3)),
            ]
            baseline = lab.exec_in_host(
                host.name,
                argv,
                cwd=baseline_dir.name,
                env={**os.environ, "PYTHONPATH": baseline_dir.name},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # as the Go exporter's (autogroup scheduling)
            )
            wait_up(baseline_target, baseline)
            targets["baseline"] = baseline_target
        for _ in range(3):  # warm all: connections open, our topology cache filled
            for target in targets.values():
                scrape(target)
        times: dict[str, list[float]] = {name: [] for name in targets}
        stages: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
        sizes: dict[str, int] = {}
        order = list(targets.items())
        for _ in range(args.rounds):
            for name, target in order:
                seconds, size = scrape(target, stages[name])
                times[name].append(seconds)
                sizes[name] = size
            order = order[1:] + order[:1]  # each exporter takes each position in turn
        print(
            f"interleaved scrapes, {args.rounds} rounds, {args.domains} running guests (qemu:///system):"
        )
        labels = {
            "ours": "virtbalance-exporter (working tree)",
            "baseline": f"virtbalance-exporter at {args.baseline}",
            "go": GO_EXPORTER,
        }
        for name in targets:
            print(
                f"  {labels[name]} median {statistics.median(times[name]) * 1000:.1f} ms, "
                f"min {min(times[name]) * 1000:.1f} ms, {sizes[name]} bytes"
            )
            if stages[name]:
                medians = ", ".join(
                    f"{stage} {statistics.median(values) * 1000:.1f}"
                    for stage, values in stages[name].items()
                )
                print(f"    stage medians (ms): {medians}")
        go_median = statistics.median(times["go"])
        for name in targets.keys() - {"go"}:
            ratio = statistics.median(times[name]) / go_median
            print(f"  ratio {name}/go (medians) {ratio:.2f}")

        during: dict[str, list[float]] = {"ours": [], "go": []}
        durations = []
        for index in range(args.migrations):
            domain = f"g{index:02d}"
            done = threading.Event()
            took: list[float] = []

            def move(
                domain: str = domain, done: threading.Event = done, took: list[float] = took
            ) -> None:
                try:
                    took.append(lab.migrate(domain, "bx2"))
                finally:
                    done.set()

            worker = threading.Thread(target=move)
            worker.start()
            time.sleep(0.3)  # let the migration job start
            while not done.is_set():
                for name, target in (("ours", ours), ("go", go_target)):
                    seconds, _ = scrape(target)
                    if not done.is_set():
                        during[name].append(seconds)
            worker.join()
            durations.extend(took)
        print(
            f"scrapes of the source host during {args.migrations} live migrations "
            f"(each {min(durations):.1f}-{max(durations):.1f}s):"
        )
        for name in ("ours", "go"):
            values = during[name]
            if values:
                print(
                    f"  {name}: {len(values)} scrapes, median {statistics.median(values) * 1000:.1f} ms, "
                    f"max {max(values) * 1000:.1f} ms"
                )
            else:
                print(f"  {name}: no scrape finished while a migration ran")
    finally:
        for process in (go, baseline):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
        baseline_dir.cleanup()
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
