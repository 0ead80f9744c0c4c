"""What each way of asking libvirtd for domain stats costs, on one real libvirtd with many guests.

Run as root: .venv/bin/python benchmarks/bench_libvirt_stats_calls.py [--domains 20] [--rounds 20]
Brings up a two-host lab (VIRTBALANCE_LAB_ID, default 1) with the guests on the first host and
times, interleaved (order rotating per round), the libvirt calls an exporter could make for one
scrape: each bulk stats group alone and together (over 4 concurrent shards, as the exporter
does), the exporter's choice (state, vCPU, interface and block groups plus virDomainGetInfo per
domain, with and without virDomainGetJobStats per domain) and the per-domain calls Debian's Go
exporter makes (virDomainGetInfo, the XML, virDomainBlockStats). Prints median and minimum.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import checkout  # noqa: F401 (puts this tree first on sys.path)
import libvirt
from bench_exporter_vs_go import scenario_yaml

from virtbalance.exporter.source import BALLOON_GROUP, STATS_FLAGS, STATS_GROUPS
from virtbalance.lab import Lab
from virtbalance.libvirt_client import quiet_libvirt

SHARDS = 4
GROUPS = {
    "state": libvirt.VIR_DOMAIN_STATS_STATE,
    "cpu": libvirt.VIR_DOMAIN_STATS_CPU_TOTAL,
    "balloon": libvirt.VIR_DOMAIN_STATS_BALLOON,
    "vcpu": libvirt.VIR_DOMAIN_STATS_VCPU,
    "interface": libvirt.VIR_DOMAIN_STATS_INTERFACE,
    "block": libvirt.VIR_DOMAIN_STATS_BLOCK,
}


def sharded(
    conn: Any, domains: list[Any], groups: int, per_domain: Callable[[Any], object] | None = None
) -> None:
    def run(index: int) -> None:
        for dom, _ in conn.domainListGetStats(domains[index::SHARDS], groups, STATS_FLAGS):
            if per_domain is not None:
                per_domain(dom)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(SHARDS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def go_like(domains: list[Any]) -> None:
    for dom in domains:
        dom.info()
        dom.XMLDesc(0)
        dom.blockStats("vda")  # a lab guest's one disk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    lab_id = int(os.environ.get("VIRTBALANCE_LAB_ID", "1"))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bench-exporter.yaml"
        path.write_text(scenario_yaml(args.domains))
        lab = Lab.up(path, lab_id=lab_id)
    try:
        quiet_libvirt()
        conn = libvirt.open(f"qemu+tcp://{lab.hosts[0].address}/system")
        domains = [dom for dom in conn.listAllDomains(0) if dom.ID() >= 0]
        every = sum(GROUPS.values())
        variants: dict[str, Callable[[], None]] = {
            f"group {name} alone": (lambda g=group: sharded(conn, domains, g))
            for name, group in GROUPS.items()
        }
        variants["all six groups (the exporter before issue 19)"] = lambda: sharded(
            conn, domains, every
        )
        variants["all six groups + jobStats per domain"] = lambda: sharded(
            conn, domains, every, lambda d: d.jobStats(0)
        )
        variants["exporter: 4 groups + info per domain"] = lambda: sharded(
            conn, domains, STATS_GROUPS, lambda d: d.info()
        )
        variants["exporter: 4 groups + info + jobStats"] = lambda: sharded(
            conn, domains, STATS_GROUPS, lambda d: (d.info(), d.jobStats(0))
        )
        variants["exporter + balloon group for all"] = lambda: sharded(
            conn, domains, STATS_GROUPS | BALLOON_GROUP, lambda d: (d.info(), d.jobStats(0))
        )
        variants["Go exporter's calls (info, XML, blockStats), sequential"] = lambda: go_like(
            domains
        )
        times: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants.items())
        for _ in range(args.rounds):
            for name, call in order:
                began = time.monotonic()
                call()
                times[name].append(time.monotonic() - began)
            order = order[1:] + order[:1]
        print(f"{len(domains)} running guests, {args.rounds} interleaved rounds, {SHARDS} shards:")
        for name, values in times.items():
            print(
                f"  {name}: median {statistics.median(values) * 1000:.1f} ms, "
                f"min {min(values) * 1000:.1f} ms"
            )
        conn.close()
    finally:
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
