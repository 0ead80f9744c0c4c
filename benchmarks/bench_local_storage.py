"""Benchmark moves with local storage: the actioner drains the local-storage lab's writing chunk.

Per round: both writers fresh on ls1, a drain through the actioner with ``copy_storage: all``; then
the seconds of each member's move (journal), the chunk's split window (the actioner's metric), the
disk bytes libvirt reported, and whether the destination's images hold every acknowledged write.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from virtbalance.actioner.app import create_app
from virtbalance.actioner.config import load_config
from virtbalance.actioner.runtime import build_services
from virtbalance.lab import Lab, diskwriter
from virtbalance.lab.dial import read_log
from virtbalance.lab.naming import LabNames, lab_id_from_env
from virtbalance.lab.scenario import SCENARIO_DIR
from virtbalance.lab.teardown import leftovers

TOKEN = "bench-token"
_SPLIT_SUM = re.compile(r"^virtbalance_chunk_split_seconds_sum (\S+)$", re.MULTILINE)


def scenario_with_disks(size: str, directory: Path) -> Path:
    data = yaml.safe_load((SCENARIO_DIR / "local-storage.yaml").read_text())
    for domain in data["domains"]:
        domain["disk_size"] = size
    path = directory / "local-storage.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def actioner_config(lab: Lab, directory: Path) -> Path:
    (directory / "token").write_text(TOKEN)
    data = {
        "hosts": {
            h.name: {"uri": h.libvirt_uri, "migration_uri": h.migration_uri, "cpus": 16}
            for h in lab.hosts
        },
        "journal": {"path": str(directory / "journal.sqlite")},
        "webhook": {"token_file": str(directory / "token"), "listen": "127.0.0.1:9"},
        "prometheus": {"fallback_sample_interval": "1s"},
        "execution": {"copy_storage": "all", "migration_timeout": "120s"},
    }
    path = directory / "actioner.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def one_round(lab: Lab, directory: Path) -> dict[str, object]:
    lab.repair()
    lab.reset()
    names = [d.name for d in lab.scenario.domains]
    for name in names:
        lab.disk_image(name, "ls2").unlink(missing_ok=True)
    time.sleep(3)  # the writers are well into writing
    config = load_config(actioner_config(lab, directory))
    services = build_services(config, start=False)
    client = create_app(config, services=services).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    plan_id = client.post("/api/v1/drain/ls1", headers=auth).get_json()["queued_plan"]
    services.worker.drain_queue(timeout=600)
    metrics = client.get("/metrics", headers=auth).get_data(as_text=True)
    plan = services.journal.plan(plan_id)
    rows = [r for r in services.journal.migrations(plan_id) if r.kind == "move"]
    services.close()
    lost = 0
    for name in names:
        lab.connection("ls2").lookupByName(name).destroy()
        acked = diskwriter.acknowledged(read_log(lab.serial_log(name)))
        ring = diskwriter.read_ring(lab.disk_image(name, "ls2"))
        lost += len(diskwriter.missing_writes(acked, ring))
    split = _SPLIT_SUM.search(metrics)
    return {
        "plan": plan.state,
        "move_seconds": [round((r.finished or 0) - (r.started or 0), 2) for r in rows],
        "disk_total_bytes": [r.disk_total for r in rows],
        "split_seconds": round(float(split.group(1)), 3) if split else None,
        "acknowledged_writes_lost": lost,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab-id", type=int, default=lab_id_from_env(9))
    parser.add_argument("--disk-size", default="64MiB")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if leftovers(LabNames(args.lab_id)):
        print(f"lab {args.lab_id} is in use; pick a free --lab-id", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab.up(scenario_with_disks(args.disk_size, Path(tmp)), lab_id=args.lab_id)
        try:
            rounds = []
            for index in range(args.rounds):
                directory = Path(tmp) / f"round{index}"
                directory.mkdir()
                rounds.append(one_round(lab, directory))
        finally:
            lab.down()
    moves = [s for r in rounds for s in r["move_seconds"]]  # type: ignore[attr-defined]
    splits = [r["split_seconds"] for r in rounds if r["split_seconds"] is not None]
    print(
        json.dumps(
            {
                "disk_size": args.disk_size,
                "rounds": rounds,
                "move_seconds_median": statistics.median(moves),
                "split_seconds_median": statistics.median(splits) if splits else None,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
