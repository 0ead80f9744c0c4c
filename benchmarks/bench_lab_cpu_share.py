"""Benchmark the lab's CPU group: a lab host's CPU signal at the e2e calm dials, its guests in the
group vs back in the machine's root group (one autogroup each), alternating in one run."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import CALM, HOST, set_loads
from virtbalance.contract import RECORD_CPU
from virtbalance.lab import Lab, cpu_share
from virtbalance.lab.api import is_up
from virtbalance.lab.demo.clients import Prometheus
from virtbalance.lab.dial import level_for, percent_for
from virtbalance.lab.naming import lab_id_from_env
from virtbalance.lab.rules import write_lab_files
from virtbalance.policy import Policy

MODES = ("group", "machine")


def qemu_pids(lab: Lab) -> list[int]:
    """The lab's QEMU processes (all in its CPU group when the bench starts)."""
    pids = []
    for pid in cpu_share.members(lab.names):
        try:
            if Path(f"/proc/{pid}/comm").read_text().startswith("qemu"):
                pids.append(pid)
        except FileNotFoundError:
            continue
    return pids


def measure(prometheus: Prometheus, seconds: float) -> list[float]:
    """The host's CPU signal once a second for ``seconds``."""
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(prometheus.by_host(RECORD_CPU)[HOST])
        time.sleep(1.0)
    return values


def bench(lab: Lab, rounds: int, sample_seconds: float) -> dict[str, Any]:
    # the lab profile's rules and policy, as the demo and `lab up --with-monitoring` write them
    rule_file, policy_file = write_lab_files(Path(lab.state_dir) / "rules")
    policy = Policy.load(policy_file)
    group = cpu_share.group_dir(lab.names)
    if group is None or not cpu_share.exists(lab.names):
        raise SystemExit("the lab has no CPU group (lab.cpu_share): nothing to compare")
    set_loads(lab, CALM)
    prometheus = Prometheus(lab.start_prometheus([rule_file]))
    pids = qemu_pids(lab)
    seen: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
    loads = [os.getloadavg()[0]]
    try:
        for _ in range(rounds):
            for mode in MODES:
                for pid in pids:
                    cpu_share.move(pid, group if mode == "group" else group.parent)
                time.sleep(policy.rate_window)  # a whole rate window in this mode
                seen[mode].append(measure(prometheus, sample_seconds))
                loads.append(os.getloadavg()[0])
    finally:
        for pid in pids:
            cpu_share.move(pid, group)
        lab.stop_monitoring()
    worker1 = next(d.load for d in lab.scenario.domains if d.name == "worker1")
    dials = sum(percent_for(level_for(p)) for p in [*CALM.values(), worker1]) / 100
    return {
        "host": HOST,
        "dials_in_cores": round(dials, 3),
        "cpu_high": policy.cpu_high,
        "load_average_1m": {"min": min(loads), "max": max(loads)},
        **{
            mode: {
                "median_per_phase": [round(statistics.median(v), 3) for v in phases],
                "max": round(max(max(v) for v in phases), 3),
            }
            for mode, phases in seen.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab-id", type=int, default=lab_id_from_env())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    args = parser.parse_args()
    mine = not is_up(args.lab_id)
    lab = Lab.up("default", lab_id=args.lab_id) if mine else Lab.attach(args.lab_id)
    try:
        print(json.dumps(bench(lab, args.rounds, args.sample_seconds), indent=2))
    finally:
        if mine:
            lab.down()
        else:
            lab.reset()


if __name__ == "__main__":
    main()
