"""Benchmark the lab: `lab up` wall time, the lab's memory (RSS and PSS), live-migration and teardown times."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from virtbalance.lab import Lab
from virtbalance.lab.naming import LabNames, lab_id_from_env
from virtbalance.lab.teardown import leftovers, namespace_pids


def memory_kib(pids: list[int]) -> dict[str, int]:
    """Summed RSS (counts shared pages once per process) and PSS (shares them out) of ``pids``."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return {"rss_kib": rss, "pss_kib": pss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab-id", type=int, default=lab_id_from_env(9))
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--runs", type=int, default=3, help="up/down cycles")
    args = parser.parse_args()
    names = LabNames(args.lab_id)
    if leftovers(names):
        print(f"lab {args.lab_id} is in use; pick a free --lab-id", file=sys.stderr)
        return 1
    ups, downs, migrations, memories = [], [], [], []
    for _ in range(args.runs):
        began = time.monotonic()
        lab = Lab.up(args.scenario, lab_id=args.lab_id)
        ups.append(time.monotonic() - began)
        time.sleep(5)  # let the guests settle after boot before measuring memory
        pids = [pid for ns in leftovers(names).namespaces for pid in namespace_pids(ns)]
        memories.append(memory_kib(pids) | {"processes": len(pids)})
        domain = lab.scenario.domains[0]
        other = next(h.name for h in lab.hosts if h.name != domain.host)
        migrations.append(lab.migrate(domain.name, other))
        migrations.append(lab.migrate(domain.name, domain.host))
        began = time.monotonic()
        lab.down()
        downs.append(time.monotonic() - began)
    result = {
        "scenario": args.scenario,
        "guests": len(lab.scenario.domains),
        "hosts": len(lab.hosts),
        "runs": args.runs,
        "up_seconds_median": round(statistics.median(ups), 2),
        "up_seconds_max": round(max(ups), 2),
        "down_seconds_median": round(statistics.median(downs), 2),
        "migration_seconds_median": round(statistics.median(migrations), 2),
        "migration_seconds_max": round(max(migrations), 2),
        "rss_mib_median": round(statistics.median(m["rss_kib"] for m in memories) / 1024),
        "pss_mib_median": round(statistics.median(m["pss_kib"] for m in memories) / 1024),
        "processes": memories[0]["processes"],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
