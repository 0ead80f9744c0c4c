"""PromQL shared by several dashboards: chunk sizes, free slots and the best slot on another host."""

from __future__ import annotations

from virtbalance import contract as c
from virtbalance.policy import Policy

RATE = "$__rate_interval"


def _by_chunk(per_domain: str) -> str:
    """Sum a per-domain series into chunks: join on (host, uuid) with ``libvirt_domain_chunk_info``.

    uuid rather than domain name so a name reused on two hosts cannot mix; ``max by`` guards the join
    against a second scrape of the same host (two exporters, a relabelled job).
    """
    return (
        f"sum by (host, chunk) ({per_domain} * on (host, uuid) group_left (chunk) "
        "max by (host, uuid, chunk) (libvirt_domain_chunk_info))"
    )


def chunk_cpu_cores() -> str:
    """CPU a chunk uses, in cores, per (host, chunk)."""
    return _by_chunk(f"rate(libvirt_domain_info_cpu_time_seconds_total[{RATE}])")


def chunk_memory_bytes() -> str:
    """Memory a chunk needs on a destination (its domains' maximum memory), per (host, chunk)."""
    return _by_chunk("libvirt_domain_info_maximum_memory_bytes")


def free_cpu_slot_cores(policy: Policy) -> str:
    """Cores a host can take before it passes the placement target (``cpu_target``), per host."""
    return (
        f"clamp_min(({policy.cpu_target:g} - max by (host) (host:libvirt_cpu:ratio)) "
        "* max by (host) (libvirt_node_cpus), 0)"
    )


def free_memory_slot_bytes(policy: Policy) -> str:
    """Bytes a host can take before it passes the placement target (``memory_target``), per host."""
    return (
        f"clamp_min(({policy.memory_target:g} - max by (host) (host:libvirt_memory_used:ratio)) "
        "* max by (host) (libvirt_node_memory_total_bytes), 0)"
    )


def best_slot_elsewhere(slot: str) -> str:
    """For each host, the largest ``slot`` on any OTHER host: where a chunk of this host could go.

    Every host but the one with the largest slot gets the largest; that one gets the second largest.
    With a tie both get the same value, which is right; a lone host gets nothing, which is right too.
    """
    top = f"topk(1, {slot})"
    return (
        f"(({slot}) * 0 + on () group_left () max({slot})) unless on (host) {top} "
        f"or ({top} * 0 + on () group_left () max(({slot}) unless on (host) {top}))"
    )


def chunks_fitting_nowhere(policy: Policy) -> str:
    """How many chunks no other host could take (by CPU or by memory) under the placement targets."""
    cpu_elsewhere = best_slot_elsewhere(free_cpu_slot_cores(policy))
    memory_elsewhere = best_slot_elsewhere(free_memory_slot_bytes(policy))
    return (
        f"count(({chunk_memory_bytes()} > on (host) group_left () ({memory_elsewhere})) "
        f"or ({chunk_cpu_cores()} > on (host) group_left () ({cpu_elsewhere}))) or vector(0)"
    )


def per_chunk(host_series: str) -> str:
    """Spread a per-host series onto every chunk of that host, for a table keyed by (host, chunk)."""
    return f"max by (host, chunk) ({chunk_memory_bytes()} * 0 + on (host) group_left () ({host_series}))"


def overload_state(host_matcher: str) -> str:
    """Per host: 2 if the overload alert fired within the step, else 1 if pending, else 0.

    ``max_over_time`` over the step keeps a short firing (relieved within seconds) from falling
    between two steps; the CPU signal times zero keeps every host on the timeline.
    """
    alert = f'ALERTS{{alertname="{c.ALERT_OVERLOAD}", {host_matcher}'
    return (
        f'max by (host) (max_over_time({alert}, alertstate="firing"}}[$__interval])) * 2 '
        f'or max by (host) (max_over_time({alert}, alertstate="pending"}}[$__interval])) '
        f"or max by (host) (host:libvirt_cpu:ratio{{{host_matcher}}}) * 0"
    )


MIGRATION_LABELS = ("domain", "chunk", "source", "destination", "result")


def _recent(selectors: tuple[str, ...]) -> str:
    return " or ".join(f"{c.MIGRATION_RECENT_DURATION}{{{matcher}}}" for matcher in selectors)


def recent_migrations(*selectors: str) -> str:
    """Duration of each of the actioner's last 50 migrations matching any of ``selectors``."""
    return f"max by ({', '.join(MIGRATION_LABELS)}) ({_recent(selectors or ('',))})"


def migration_first_seen(*selectors: str) -> str:
    """When each recent migration was first scraped, in ms since the epoch (Grafana's time unit).

    A migration's series appears when the migration ends, so its first sample dates it (to a scrape).
    The subquery steps at Prometheus's evaluation interval, fine enough to see a migration just done.
    """
    return (
        f"min by ({', '.join(MIGRATION_LABELS)}) "
        f"(min_over_time(timestamp({_recent(selectors or ('',))})[$__range:])) * 1000"
    )
