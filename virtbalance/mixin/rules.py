"""The recording rules: per-host CPU and memory series the alerts, dashboards and actioner read."""

from __future__ import annotations

from virtbalance.contract import (
    DOMAIN_CPU_SECONDS,
    DOMAIN_VCPU_DELAY,
    NODE_CPUS,
    RECORD_CPU,
    RECORD_CPU_DEMAND,
    RECORD_IMMOVABLE,
    RECORD_MEMORY,
    RECORD_NODE_CPU,
)
from virtbalance.durations import format_duration
from virtbalance.mixin.config import Config
from virtbalance.mixin.promql import SIGNAL_TEXT, cpu_signal_expr
from virtbalance.mixin.rule import Rule

# Time a guest spends waiting on IO is idle CPU: it is free for another VM.
IDLE_MODES = "idle|iowait"


def recording_rules(config: Config) -> tuple[Rule, ...]:
    """The per-host series the alerts and dashboards read; every aggregation keeps ``host``."""
    policy = config.policy
    window = format_duration(policy.rate_window)
    domain_cores = f"sum by (host) (rate({DOMAIN_CPU_SECONDS}[{window}]))"
    domain_waiting = f"sum by (host) (rate({DOMAIN_VCPU_DELAY}[{window}]))"
    # Capacity is a gauge per host: max, not sum, so a host scraped twice does not double its CPUs.
    cpus = f"max by (host) ({NODE_CPUS})"
    # Demand is what the VMs run plus what their vCPUs wait for a host CPU (VMware's "ready" time):
    # on a saturated host usage alone flattens at capacity and hides how much more the VMs want.
    # Hosts whose exporter reports no vCPU delay count their usage alone.
    domain_demand = (
        f"(\n    {domain_cores}\n    +\n    ({domain_waiting} or on (host) 0 * {domain_cores})\n  )"
    )
    demand = Rule(
        record=RECORD_CPU_DEMAND,
        comment=(
            "CPU the host's VMs demand (run plus wait for a host CPU), as a fraction of the host's CPUs\n"
            "(declared capacity where overridden).\n"
            "rate() handles counter resets (a VM restarting); a VM migrated away leaves within one rate window.\n"
            "A host with no running VM has a demand of 0 rather than no series at all."
        ),
        expr=(f"(\n  {domain_demand}\n  or on (host)\n  0 * {cpus}\n)\n/ on (host)\n{cpus}"),
    )
    node = Rule(
        record=RECORD_NODE_CPU,
        comment=(
            "Busy fraction of the node's CPU time, all processes included (not only VMs).\n"
            "Idle and iowait count as free. Absent for hosts whose exporter has no node CPU time."
        ),
        expr=(
            "1 - (\n"
            f'  sum by (host) (rate(libvirt_node_cpu_seconds_total{{mode=~"{IDLE_MODES}"}}[{window}]))\n'
            "  / on (host)\n"
            f"  sum by (host) (rate(libvirt_node_cpu_seconds_total[{window}]))\n"
            ")"
        ),
    )
    signal_expr = cpu_signal_expr(policy, RECORD_CPU_DEMAND, RECORD_NODE_CPU)
    signal = Rule(
        record=RECORD_CPU,
        comment=(
            f"The CPU signal the policy chose (cpu_signal: {policy.cpu_signal}): "
            f"{SIGNAL_TEXT[policy.cpu_signal]}.\nThe dashboards and the actioner's views read this one; the CPU alerts compute the same inline."
        ),
        expr=signal_expr,
    )
    memory = Rule(
        record=RECORD_MEMORY,
        comment=(
            "Fraction of the host's memory not available to new allocations.\n"
            "Clamped at 0: a declared capacity below the machine's real memory must not go negative."
        ),
        expr=(
            "clamp_min(\n"
            "  1 - (\n"
            "    max by (host) (libvirt_node_memory_available_bytes)\n"
            "    / on (host)\n"
            "    max by (host) (libvirt_node_memory_total_bytes)\n"
            "  ),\n"
            "  0\n"
            ")"
        ),
    )
    immovable = Rule(
        record=RECORD_IMMOVABLE,
        comment=(
            "CPU cores busy outside the VMs (hypervisor, QEMU overhead, other daemons): load no migration removes.\n"
            "Guest time is part of the node's user time, so the VMs' own CPU is subtracted from the busy time."
        ),
        expr=(
            "clamp_min(\n"
            f'  sum by (host) (rate(libvirt_node_cpu_seconds_total{{mode!~"{IDLE_MODES}"}}[{window}]))\n'
            "  - on (host)\n"
            "  (\n"
            f"    {domain_cores}\n"
            "    or on (host)\n"
            f"    0 * {cpus}\n"
            "  ),\n"
            "  0\n"
            ")"
        ),
    )
    return (demand, node, signal, memory, immovable)
