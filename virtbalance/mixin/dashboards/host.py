"""The host detail dashboard: one hypervisor's load, its domains and chunks, and its migrations."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from virtbalance import contract as c
from virtbalance.mixin.config import Config
from virtbalance.mixin.dashboards import queries as q
from virtbalance.mixin.dashboards.board import Row
from virtbalance.mixin.dashboards.board import build as board
from virtbalance.mixin.dashboards.capacity import OVERLOAD_MAPPINGS, UP_MAPPINGS
from virtbalance.mixin.dashboards.panels import (
    Column,
    Query,
    policy_lines,
    stat,
    table,
    timeseries,
)
from virtbalance.mixin.dashboards.rebalancing import (
    freeze_help,
    migration_annotation,
    overload_annotation,
)
from virtbalance.mixin.dashboards.variables import query_variable
from virtbalance.policy import Policy

UID = "virtbalance-host"
HOST = 'host="$host"'
MOVES = ('source="$host"', 'destination="$host"')


def _summary_row() -> Row:
    return Row(
        "Host $host",
        [
            stat(
                "libvirt",
                "Whether the exporter reached libvirtd on its last scrape.",
                [Query(f"max(libvirt_up{{{HOST}}})", "libvirt")],
                "none",
                width=4,
                mappings=UP_MAPPINGS,
            ),
            stat(
                "Overload",
                f"{c.ALERT_OVERLOAD} for this host: pending, then overloaded once it held long enough.",
                [Query(q.overload_state(HOST), "{{host}}")],
                "none",
                width=4,
                mappings=OVERLOAD_MAPPINGS,
            ),
            stat(
                "CPUs",
                "Logical CPUs, or the declared capacity when overridden.",
                [Query(f"max(libvirt_node_cpus{{{HOST}}})", "CPUs")],
                "short",
                width=4,
            ),
            stat(
                "Memory",
                "Memory capacity, or the declared capacity when overridden.",
                [Query(f"max(libvirt_node_memory_total_bytes{{{HOST}}})", "memory")],
                "bytes",
                width=4,
            ),
            stat(
                "Domains",
                "Domains running on the host.",
                [Query(f"max(libvirt_domains_number{{{HOST}}})", "domains")],
                "short",
                width=4,
            ),
            stat(
                "Chunks",
                "Chunks on the host: sets of domains that only move together.",
                [Query(f"count(count by (chunk) (libvirt_domain_chunk_info{{{HOST}}}))", "chunks")],
                "short",
                width=4,
            ),
        ],
    )


def _cpu_row(policy: Policy) -> Row:
    cpu_line = policy_lines(policy.cpu_target, policy.cpu_high)
    return Row(
        "CPU",
        [
            timeseries(
                "CPU signal, demand and node utilisation",
                f"Dashed: placement target {policy.cpu_target:.0%} and overload threshold "
                f"{policy.cpu_high:.0%}; the alert uses the signal ({policy.cpu_signal}).",
                [
                    Query(f"host:libvirt_cpu:ratio{{{HOST}}}", "signal"),
                    Query(f"host:libvirt_cpu_demand:ratio{{{HOST}}}", "demand"),
                    Query(f"host:libvirt_node_cpu_utilisation:ratio{{{HOST}}}", "node"),
                ],
                "percentunit",
                thresholds=cpu_line,
                width=8,
            ),
            timeseries(
                "Node CPU by mode",
                "The host's CPU time by mode, in cores.",
                [
                    Query(
                        f"sum by (mode) (rate(libvirt_node_cpu_seconds_total{{{HOST}}}[{q.RATE}]))",
                        "{{mode}}",
                    )
                ],
                "suffix: cores",
                stack=True,
                width=8,
            ),
            timeseries(
                "CPU by domain",
                "Each domain's CPU use in cores, stacked; the line is the host's capacity.",
                [
                    Query(
                        "sum by (domain) (rate(libvirt_domain_info_cpu_time_seconds_total"
                        f"{{{HOST}}}[{q.RATE}]))",
                        "{{domain}}",
                    ),
                ],
                "suffix: cores",
                stack=True,
                width=8,
            ),
            timeseries(
                "vCPU steal by domain",
                "Share of its vCPUs' time each domain waited for a host CPU: the cost of the overload "
                "to the guests.",
                [
                    Query(
                        f"sum by (domain) (rate({c.DOMAIN_VCPU_DELAY}"
                        f"{{{HOST}}}[{q.RATE}])) / sum by (domain) "
                        f"(libvirt_domain_info_virtual_cpus{{{HOST}}})",
                        "{{domain}}",
                    )
                ],
                "percentunit",
                width=24,
            ),
        ],
    )


def _memory_io_row(policy: Policy) -> Row:
    rate = q.RATE
    return Row(
        "Memory and I/O",
        [
            timeseries(
                "Memory used",
                f"Dashed: placement target {policy.memory_target:.0%} and overload threshold "
                f"{policy.memory_high:.0%}.",
                [Query(f"host:libvirt_memory_used:ratio{{{HOST}}}", "used")],
                "percentunit",
                thresholds=policy_lines(policy.memory_target, policy.memory_high),
                width=8,
            ),
            timeseries(
                "Memory by domain (RSS)",
                "Each domain's resident memory on the host, stacked.",
                [
                    Query(
                        f"sum by (domain) (libvirt_domain_memory_rss_bytes{{{HOST}}})", "{{domain}}"
                    )
                ],
                "bytes",
                stack=True,
                width=16,
            ),
            timeseries(
                "Block I/O by domain",
                "Bytes read (positive) and written (negative) per second.",
                [
                    Query(
                        f"sum by (domain) (rate(libvirt_domain_block_stats_read_bytes_total{{{HOST}}}[{rate}]))",
                        "{{domain}} read",
                    ),
                    Query(
                        f"-sum by (domain) (rate(libvirt_domain_block_stats_write_bytes_total{{{HOST}}}[{rate}]))",
                        "{{domain}} write",
                    ),
                ],
                "Bps",
                minimum=None,
            ),
            timeseries(
                "Network I/O by domain",
                "Bytes received (positive) and sent (negative) per second.",
                [
                    Query(
                        "sum by (domain) (rate(libvirt_domain_interface_stats_receive_bytes_total"
                        f"{{{HOST}}}[{rate}]))",
                        "{{domain}} in",
                    ),
                    Query(
                        "-sum by (domain) (rate(libvirt_domain_interface_stats_transmit_bytes_total"
                        f"{{{HOST}}}[{rate}]))",
                        "{{domain}} out",
                    ),
                ],
                "Bps",
                minimum=None,
            ),
        ],
    )


def _domains_row() -> Row:
    chunk = f"max by (host, uuid, chunk) (libvirt_domain_chunk_info{{{HOST}}})"

    def by_domain(per_domain: str) -> str:
        return f"sum by (domain, chunk) ({per_domain} * on (host, uuid) group_left (chunk) {chunk})"

    return Row(
        "Domains, chunks and migrations",
        [
            table(
                "Domains and their chunks",
                "Domains of one chunk move together, to one host, or not at all.",
                [
                    Column(
                        Query(
                            by_domain(
                                f"rate(libvirt_domain_info_cpu_time_seconds_total{{{HOST}}}[{q.RATE}])"
                            )
                        ),
                        "CPU",
                        "suffix: cores",
                    ),
                    Column(
                        Query(by_domain(f"libvirt_domain_info_virtual_cpus{{{HOST}}}")),
                        "vCPUs",
                        "short",
                    ),
                    Column(
                        Query(by_domain(f"libvirt_domain_info_maximum_memory_bytes{{{HOST}}}")),
                        "Memory",
                        "bytes",
                    ),
                ],
                labels=("chunk", "domain"),
                sort_by="CPU",
                width=12,
                height=10,
            ),
            table(
                "Migrations from and to this host",
                "The actioner's recent migrations with this host as source or destination.",
                [
                    Column(Query(q.migration_first_seen(*MOVES)), "Finished", "dateTimeAsIso"),
                    Column(Query(q.recent_migrations(*MOVES)), "Duration", "s"),
                ],
                labels=q.MIGRATION_LABELS,
                sort_by="Finished",
                width=12,
                height=10,
            ),
            freeze_help(
                (
                    ("moves off ${host}", "source=${host}"),
                    ("moves onto ${host}", "destination=${host}"),
                )
            ),
        ],
    )


def _exporter_row() -> Row:
    return Row(
        "Exporter",
        [
            timeseries(
                "Exporter scrape time by stage",
                "Time the exporter's last scrape spent per stage (libvirt calls, topology, ...): a slow "
                "libvirtd shows here first.",
                [
                    Query(
                        f"max by (stage) (libvirt_exporter_scrape_duration_seconds{{{HOST}}})",
                        "{{stage}}",
                    )
                ],
                "s",
                stack=True,
            ),
            timeseries(
                "Exporter errors by stage",
                "Failures while scraping libvirt; the series it could not read are missing meanwhile.",
                [
                    Query(
                        "sum by (stage) (increase(libvirt_exporter_scrape_errors_total"
                        f"{{{HOST}}}[{q.RATE}]))",
                        "{{stage}}",
                    )
                ],
                "short",
                bars=True,
            ),
        ],
    )


def build(config: Config) -> dashboard.Dashboard:
    """The host detail dashboard for ``policy``'s thresholds."""
    policy = config.policy
    return board(
        config,
        uid=UID,
        title="virtbalance / Host detail",
        description="One hypervisor: load against the policy, each domain's CPU, steal, memory and I/O, "
        "its chunks, and the migrations from and to it.",
        rows=[
            _summary_row(),
            _cpu_row(policy),
            _memory_io_row(policy),
            _domains_row(),
            _exporter_row(),
        ],
        variables=[query_variable("host", "Host", "libvirt_node_cpus", multi=False)],
        annotations=[migration_annotation(*MOVES), overload_annotation(HOST)],
    )
