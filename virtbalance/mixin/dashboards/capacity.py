"""The cluster capacity dashboard: load against capacity, headroom, chunk fit and the overload timeline."""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard

from virtbalance import contract as c
from virtbalance.durations import format_duration
from virtbalance.mixin.config import Config
from virtbalance.mixin.dashboards import queries as q
from virtbalance.mixin.dashboards.board import Row
from virtbalance.mixin.dashboards.board import build as board
from virtbalance.mixin.dashboards.panels import (
    Column,
    Panel,
    Query,
    Threshold,
    bargauge,
    policy_lines,
    stat,
    state_timeline,
    table,
    timeseries,
    value_mapping,
)
from virtbalance.mixin.dashboards.variables import query_variable
from virtbalance.policy import Policy

UID = "virtbalance-capacity"
HOSTS = 'host=~"$host"'
# The chunk queries join every domain to its chunk at each step: cap the steps (docs/benchmarks.md).
CHUNK_POINTS = 200
UP_MAPPINGS = (value_mapping(0, "down", "red"), value_mapping(1, "up", "green"))
OVERLOAD_MAPPINGS = (
    value_mapping(0, "ok", "green"),
    value_mapping(1, "pending", "yellow"),
    value_mapping(2, "overloaded", "red"),
)


def host_variable() -> Builder[dashboard.VariableModel]:
    """Hosts to show; several at once, all by default."""
    return query_variable("host", "Host", "libvirt_node_cpus", multi=True, all_value=".+")


def _load_row(policy: Policy) -> Row:
    cpu_line = policy_lines(policy.cpu_target, policy.cpu_high)
    memory_line = policy_lines(policy.memory_target, policy.memory_high)
    return Row(
        "Load against capacity",
        [
            timeseries(
                "CPU signal per host (the one the policy alerts on)",
                f"host:libvirt_cpu:ratio, the CPU signal the policy chose ({policy.cpu_signal}). Dashed: "
                f"placement target {policy.cpu_target:.0%} and overload threshold {policy.cpu_high:.0%}.",
                [Query(f"host:libvirt_cpu:ratio{{{HOSTS}}}", "{{host}}")],
                "percentunit",
                thresholds=cpu_line,
            ),
            timeseries(
                "Memory used per host",
                f"host:libvirt_memory_used:ratio. Dashed: placement target {policy.memory_target:.0%} "
                f"and overload threshold {policy.memory_high:.0%}.",
                [Query(f"host:libvirt_memory_used:ratio{{{HOSTS}}}", "{{host}}")],
                "percentunit",
                thresholds=memory_line,
            ),
            timeseries(
                "CPU demand vs node CPU",
                "Demand: CPU the host's domains use, over its CPUs (host:libvirt_cpu_demand:ratio). "
                "Node: busy fraction of the node's CPU time, all processes included "
                "(host:libvirt_node_cpu_utilisation:ratio). The policy's signal is the larger.",
                [
                    Query(f"host:libvirt_cpu_demand:ratio{{{HOSTS}}}", "{{host}} demand"),
                    Query(f"host:libvirt_node_cpu_utilisation:ratio{{{HOSTS}}}", "{{host}} node"),
                ],
                "percentunit",
                thresholds=cpu_line,
            ),
            timeseries(
                "CPU in cores: used, immovable, capacity",
                "Cores the domains use; immovable: cores busy outside the domains (hypervisor, QEMU "
                "overhead), load no migration removes; capacity: libvirt_node_cpus (declared when "
                "overridden).",
                [
                    Query(
                        "sum by (host) (rate(libvirt_domain_info_cpu_time_seconds_total"
                        f"{{{HOSTS}}}[{q.RATE}]))",
                        "{{host}} used",
                    ),
                    Query(f"host:libvirt_cpu_immovable:cores{{{HOSTS}}}", "{{host}} immovable"),
                    Query(f"max by (host) (libvirt_node_cpus{{{HOSTS}}})", "{{host}} capacity"),
                ],
                "suffix: cores",
            ),
            timeseries(
                "Memory: total, available, free",
                "The host's memory capacity (declared when overridden), what is still available and "
                "what is free.",
                [
                    Query(
                        f"max by (host) (libvirt_node_memory_total_bytes{{{HOSTS}}})",
                        "{{host}} total",
                    ),
                    Query(
                        f"max by (host) (libvirt_node_memory_available_bytes{{{HOSTS}}})",
                        "{{host}} available",
                    ),
                    Query(
                        f"max by (host) (libvirt_node_memory_free_bytes{{{HOSTS}}})",
                        "{{host}} free",
                    ),
                ],
                "bytes",
            ),
            timeseries(
                "Domains and vCPU overcommit per host",
                "Running domains per host, and their vCPUs per host CPU (overcommit).",
                [
                    Query(f"max by (host) (libvirt_domains_number{{{HOSTS}}})", "{{host}} domains"),
                    Query(
                        f"sum by (host) (libvirt_domain_info_virtual_cpus{{{HOSTS}}}) "
                        f"/ max by (host) (libvirt_node_cpus{{{HOSTS}}})",
                        "{{host}} vCPUs per CPU",
                    ),
                ],
                "short",
            ),
        ],
    )


def _headroom_row(policy: Policy) -> Row:
    return Row(
        "Headroom before overload",
        [
            bargauge(
                "CPU headroom (cores before the overload threshold)",
                f"(cpu_high {policy.cpu_high:.0%} - CPU signal) x capacity. Negative: overloaded by that much.",
                [
                    Query(
                        f"({policy.cpu_high:g} - max by (host) (host:libvirt_cpu:ratio{{{HOSTS}}})) "
                        f"* max by (host) (libvirt_node_cpus{{{HOSTS}}})",
                        "{{host}}",
                    )
                ],
                "suffix: cores",
                thresholds=(Threshold(0.5, "green"),),
                minimum=None,
            ),
            bargauge(
                "Memory headroom (bytes before the overload threshold)",
                f"(memory_high {policy.memory_high:.0%} - memory used) x capacity. Negative: over by that much.",
                [
                    Query(
                        f"({policy.memory_high:g} - max by (host) (host:libvirt_memory_used:ratio{{{HOSTS}}})) "
                        f"* max by (host) (libvirt_node_memory_total_bytes{{{HOSTS}}})",
                        "{{host}}",
                    )
                ],
                "bytes",
                thresholds=(Threshold(1024**3, "green"),),
                minimum=None,
            ),
        ],
    )


def _largest_chunk_and_slot(
    resource: str, description: str, chunks: str, slots: str, unit: str
) -> Panel:
    """The largest chunk's ``resource`` against the largest free slot of it, over time."""
    return timeseries(
        f"Largest chunk vs largest free slot: {resource}",
        description,
        [Query(f"max({chunks})", "largest chunk"), Query(f"max({slots})", "largest free slot")],
        unit,
        width=9,
        max_points=CHUNK_POINTS,
    )


def _chunk_row(policy: Policy) -> Row:
    cpu_slot = q.free_cpu_slot_cores(policy)
    memory_slot = q.free_memory_slot_bytes(policy)
    slot_note = (
        f"A free slot is what a host can take before it passes the placement targets "
        f"(CPU {policy.cpu_target:.0%}, memory {policy.memory_target:.0%}). Cluster-wide: ignores the "
        "host filter."
    )
    return Row(
        "Can the largest chunk still move?",
        [
            _largest_chunk_and_slot(
                "memory",
                "A chunk (domains chained by private networks or a group) moves whole, so the largest "
                f"one must fit in one host's free slot. {slot_note}",
                q.chunk_memory_bytes(),
                memory_slot,
                "bytes",
            ),
            _largest_chunk_and_slot(
                "CPU",
                f"CPU the busiest chunk uses against the largest free CPU slot. {slot_note}",
                q.chunk_cpu_cores(),
                cpu_slot,
                "suffix: cores",
            ),
            stat(
                "Chunks no other host can take",
                "Chunks larger, in CPU or memory, than the best free slot on any other host: an "
                "overload there could not be relieved by moving them. Estimated from the metrics; the "
                "actioner's own count is on the rebalancing dashboard.",
                [Query(q.chunks_fitting_nowhere(policy), "chunks")],
                "short",
                thresholds=(Threshold(1, "red"),),
                decimals=0,
                width=6,
                height=8,
            ),
            table(
                "Chunks and the best free slot on another host",
                f"Every chunk's size and the largest free slot on any other host. {slot_note}",
                [
                    Column(Query(q.chunk_cpu_cores()), "CPU", "suffix: cores"),
                    Column(Query(q.chunk_memory_bytes()), "Memory", "bytes"),
                    Column(
                        Query(q.per_chunk(q.best_slot_elsewhere(cpu_slot))),
                        "Best CPU slot elsewhere",
                        "suffix: cores",
                    ),
                    Column(
                        Query(q.per_chunk(q.best_slot_elsewhere(memory_slot))),
                        "Best memory slot elsewhere",
                        "bytes",
                    ),
                ],
                labels=("host", "chunk"),
                sort_by="Memory",
                height=10,
            ),
        ],
    )


def _overload_row(policy: Policy) -> Row:
    return Row(
        "Overload timeline",
        [
            state_timeline(
                f"{c.ALERT_OVERLOAD} per host",
                f"Pending while the CPU signal (above {policy.cpu_high:.0%}) or memory (above "
                f"{policy.memory_high:.0%}) is over its threshold; overloaded once that held for "
                f"{format_duration(policy.overload_for)}. Only then does the actioner act.",
                [Query(q.overload_state(HOSTS), "{{host}}")],
                OVERLOAD_MAPPINGS,
            ),
            state_timeline(
                "libvirt reachable per host",
                "Whether each host's exporter reached libvirtd. A host that is down or missing is blind: "
                "no overload alert can fire for it and the actioner cannot move VMs to or from it.",
                [Query(f"max by (host) (libvirt_up{{{HOSTS}}})", "{{host}}")],
                UP_MAPPINGS,
                height=4,
            ),
        ],
    )


def build(config: Config) -> dashboard.Dashboard:
    """The capacity dashboard for ``policy``'s thresholds."""
    policy = config.policy
    return board(
        config,
        uid=UID,
        title="virtbalance / Cluster capacity",
        description="Per-host load against capacity, headroom, whether the largest chunk can still move, "
        "and when hosts were overloaded.",
        rows=[_overload_row(policy), _load_row(policy), _headroom_row(policy), _chunk_row(policy)],
        variables=[host_variable()],
    )
