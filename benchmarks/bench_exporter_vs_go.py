"""virtbalance-exporter side by side with Debian's prometheus-libvirt-exporter on one real libvirtd.

Run as root: .venv/bin/python benchmarks/bench_exporter_vs_go.py [--domains 24] [--rounds 30]
Brings up a two-host lab (VIRTBALANCE_LAB_ID, default 1) with the domains running on the first
host, starts both exporters inside it, scrapes them interleaved (order alternating per round) and
prints the median wall time of a full HTTP scrape of each and their ratio. Then live-migrates
guests between the hosts and scrapes the source host's exporters while each migration runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab import Lab  # noqa: E402

GO_PORT = 19177


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


def scrape(target: str) -> tuple[float, int]:
    began = time.monotonic()
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=30) as response:
        body = response.read()
    return time.monotonic() - began, len(body)


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
    args = parser.parse_args()
    lab_id = int(os.environ.get("VIRTBALANCE_LAB_ID", "1"))
    go_binary = shutil.which("prometheus-libvirt-exporter")
    if go_binary is None:
        print("prometheus-libvirt-exporter is not installed (scripts/bootstrap)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bench-exporter.yaml"
        path.write_text(scenario_yaml(args.domains))
        began = time.monotonic()
        lab = Lab.up(path, lab_id=lab_id)
    print(f"lab {lab_id} up with {args.domains} guests in {time.monotonic() - began:.1f}s")
    go: subprocess.Popen[bytes] | None = None
    try:
        ours = lab.start_exporters()["bx1"]
        host = lab.hosts[0]
        go_target = f"{host.address}:{GO_PORT}"
        go = lab.exec_in_host(
            host.name,
            [go_binary, "--libvirt.uri", "qemu:///system", "--web.listen-address", go_target],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_up(go_target, go)
        for _ in range(3):  # warm both: connections open, our topology cache filled
            scrape(ours)
            scrape(go_target)
        times: dict[str, list[float]] = {"ours": [], "go": []}
        sizes: dict[str, int] = {}
        for round_index in range(args.rounds):
            order = [("ours", ours), ("go", go_target)]
            if round_index % 2:
                order.reverse()
            for name, target in order:
                seconds, size = scrape(target)
                times[name].append(seconds)
                sizes[name] = size
        ours_median = statistics.median(times["ours"])
        go_median = statistics.median(times["go"])
        print(
            f"interleaved scrapes, {args.rounds} rounds, {args.domains} running guests (qemu:///system):"
        )
        print(
            f"  virtbalance-exporter median {ours_median * 1000:.1f} ms, "
            f"min {min(times['ours']) * 1000:.1f} ms, {sizes['ours']} bytes"
        )
        print(
            f"  prometheus-libvirt-exporter median {go_median * 1000:.1f} ms, "
            f"min {min(times['go']) * 1000:.1f} ms, {sizes['go']} bytes"
        )
        print(f"  ratio ours/go (medians) {ours_median / go_median:.2f}")

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
        if go is not None:
            go.terminate()
            go.wait(timeout=10)
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
