"""The VM detail dashboard: one domain across the hosts it ran on, its chunk, usage and migrations."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from virtbalance import contract as c
from virtbalance.mixin.config import Config
from virtbalance.mixin.dashboards import queries as q
from virtbalance.mixin.dashboards.board import Row
from virtbalance.mixin.dashboards.board import build as board
from virtbalance.mixin.dashboards.panels import (
    Column,
    Query,
    state_timeline,
    table,
    timeseries,
    value_mapping,
)
from virtbalance.mixin.dashboards.rebalancing import freeze_help, migration_annotation
from virtbalance.mixin.dashboards.variables import query_variable

UID = "virtbalance-vm"
# No host filter: the domain keeps its name when it moves, so its history spans hosts.
DOMAIN = 'domain="$domain"'
RUNNING_HERE = (value_mapping(1, "running here", "green"),)
MIGRATING = (value_mapping(0, "idle", "transparent"), value_mapping(1, "migrating", "orange"))


def _placement_row() -> Row:
    mates = f"libvirt_domain_chunk_info and on (host, chunk) libvirt_domain_chunk_info{{{DOMAIN}}}"
    chunk_join = "max by (host, uuid, chunk) (libvirt_domain_chunk_info)"

    def for_mates(per_domain: str) -> str:
        return (
            f"sum by (host, chunk, domain) (({per_domain} * on (host, uuid) group_left (chunk) {chunk_join}) "
            f"and on (host, chunk) libvirt_domain_chunk_info{{{DOMAIN}}})"
        )

    return Row(
        "Placement: $domain",
        [
            state_timeline(
                "Host over time",
                "Which host ran the domain when; a change of band is a migration.",
                [
                    Query(
                        f"max by (host) (libvirt_domain_info_virtual_cpus{{{DOMAIN}}}) * 0 + 1",
                        "{{host}}",
                    )
                ],
                RUNNING_HERE,
                height=5,
            ),
            table(
                "Chunk members",
                "The domains this one moves with: its chunk on its current host.",
                [
                    Column(
                        Query(f"count by (host, chunk, domain) ({mates})"),
                        "Members",
                        "none",
                    ),
                    Column(
                        Query(
                            for_mates(f"rate(libvirt_domain_info_cpu_time_seconds_total[{q.RATE}])")
                        ),
                        "CPU",
                        "suffix: cores",
                    ),
                    Column(
                        Query(for_mates("libvirt_domain_info_maximum_memory_bytes")),
                        "Memory",
                        "bytes",
                    ),
                ],
                labels=("host", "chunk", "domain"),
                sort_by="CPU",
                width=12,
            ),
            table(
                "Interfaces",
                "Network interfaces; private ones (host-local networks) chain the domain into its chunk.",
                [
                    Column(
                        Query(
                            "count by (interface, bridge, network, private) "
                            f"(libvirt_domain_interface_info{{{DOMAIN}}})"
                        ),
                        "Hosts",
                        "none",
                    )
                ],
                labels=("interface", "bridge", "network", "private"),
                width=12,
            ),
        ],
    )


def _usage_row() -> Row:
    rate = q.RATE
    return Row(
        "Usage",
        [
            timeseries(
                "CPU",
                "CPU used in cores, and the vCPUs the domain has.",
                [
                    Query(
                        f"sum by (host) (rate(libvirt_domain_info_cpu_time_seconds_total{{{DOMAIN}}}[{rate}]))",
                        "used on {{host}}",
                    ),
                    Query(
                        f"max by (host) (libvirt_domain_info_virtual_cpus{{{DOMAIN}}})",
                        "vCPUs on {{host}}",
                    ),
                ],
                "suffix: cores",
                width=8,
            ),
            timeseries(
                "vCPU steal",
                "Share of time each vCPU waited for a host CPU: what the guest loses to its neighbours.",
                [
                    Query(
                        f"sum by (host, vcpu) (rate({c.DOMAIN_VCPU_DELAY}{{{DOMAIN}}}[{rate}]))",
                        "vCPU {{vcpu}} on {{host}}",
                    )
                ],
                "percentunit",
                width=8,
            ),
            timeseries(
                "Memory",
                "Maximum (what a destination must hold), current, resident and balloon.",
                [
                    Query(
                        f"max by (host) (libvirt_domain_info_maximum_memory_bytes{{{DOMAIN}}})",
                        "maximum",
                    ),
                    Query(
                        f"max by (host) (libvirt_domain_info_memory_usage_bytes{{{DOMAIN}}})",
                        "current",
                    ),
                    Query(
                        f"max by (host) (libvirt_domain_memory_rss_bytes{{{DOMAIN}}})", "resident"
                    ),
                    Query(
                        f"max by (host) (libvirt_domain_memory_balloon_current_bytes{{{DOMAIN}}})",
                        "balloon",
                    ),
                ],
                "bytes",
                width=8,
            ),
            timeseries(
                "Block I/O",
                "Bytes read (positive) and written (negative) per second.",
                [
                    Query(
                        f"sum by (host, target_device) (rate(libvirt_domain_block_stats_read_bytes_total{{{DOMAIN}}}[{rate}]))",
                        "{{target_device}} read on {{host}}",
                    ),
                    Query(
                        f"-sum by (host, target_device) (rate(libvirt_domain_block_stats_write_bytes_total{{{DOMAIN}}}[{rate}]))",
                        "{{target_device}} written on {{host}}",
                    ),
                ],
                "Bps",
                minimum=None,
            ),
            timeseries(
                "Network I/O",
                "Bytes received (positive) and sent (negative) per second.",
                [
                    Query(
                        "sum by (host, target_device) (rate(libvirt_domain_interface_stats_receive_bytes_total"
                        f"{{{DOMAIN}}}[{rate}]))",
                        "{{target_device}} in on {{host}}",
                    ),
                    Query(
                        "-sum by (host, target_device) (rate(libvirt_domain_interface_stats_transmit_bytes_total"
                        f"{{{DOMAIN}}}[{rate}]))",
                        "{{target_device}} out on {{host}}",
                    ),
                ],
                "Bps",
                minimum=None,
            ),
        ],
    )


def _migration_row() -> Row:
    return Row(
        "Migrations",
        [
            state_timeline(
                "Migration in progress",
                "While a migration job runs for the domain (on the source host).",
                [
                    Query(
                        f"max by (host) (libvirt_domain_migration_in_progress{{{DOMAIN}}})",
                        "{{host}}",
                    )
                ],
                MIGRATING,
                width=12,
                height=5,
            ),
            timeseries(
                "Memory dirty rate",
                "How fast the guest writes its memory, when libvirt measures it: a fast writer takes "
                "longer to migrate live.",
                [
                    Query(
                        f"max by (host) (libvirt_domain_dirty_rate_bytes_per_second{{{DOMAIN}}})",
                        "{{host}}",
                    )
                ],
                "Bps",
                height=5,
            ),
            table(
                "Migration history",
                "The actioner's recent migrations of this domain. Finished: when Prometheus first saw it.",
                [
                    Column(Query(q.migration_first_seen(DOMAIN)), "Finished", "dateTimeAsIso"),
                    Column(Query(q.recent_migrations(DOMAIN)), "Duration", "s"),
                ],
                labels=q.MIGRATION_LABELS,
                sort_by="Finished",
            ),
            freeze_help((("${domain}", "domain=${domain}"), ("its whole chunk", "chunk=ID"))),
        ],
    )


def build(config: Config) -> dashboard.Dashboard:
    """The VM detail dashboard (no policy threshold in it: a VM has no thresholds of its own)."""
    return board(
        config,
        uid=UID,
        title="virtbalance / VM detail",
        description="One domain wherever it ran: host over time, chunk, CPU, steal, memory, I/O, migrations.",
        rows=[_placement_row(), _usage_row(), _migration_row()],
        variables=[
            query_variable(
                "domain",
                "Domain",
                "libvirt_domain_info_virtual_cpus",
                multi=False,
            )
        ],
        annotations=[migration_annotation(DOMAIN)],
    )
