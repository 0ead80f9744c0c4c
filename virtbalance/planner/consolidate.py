"""Mode ``consolidate``: empty as many hosts as possible for power-off, keeping every host within the targets."""

from __future__ import annotations

from virtbalance.planner.model import pct
from virtbalance.planner.outcome import Outcome


def consolidate(outcome: Outcome) -> None:
    """Smallest hosts first, then least loaded; a host is emptied only if all its chunks fit elsewhere
    (packed tight). Smallest first because keeping the large hosts leaves the fewest hosts running for
    the same load (on identical hosts, the order is by load alone)."""
    model = outcome.model
    policy = model.policy
    placer = outcome.placer
    # Hosts already empty stay off: packing onto them would power them back on.
    for host in model.hosts.values():
        if not model.units[host.name]:
            placer.exclude(host.name, "is empty (stays off)")
    candidates = sorted(
        (h for h in model.hosts.values() if model.units[h.name] and not h.maintenance),
        key=lambda h: (h.cpus, sum(u.memory for u in model.units[h.name]), h.cpu_used, h.name),
    )
    receivers: set[str] = set()
    for host in candidates:
        if outcome.deadline.expired("moves"):
            break
        units = model.units[host.name]
        size = sum(u.size for u in units)
        blocked = [f"{u.describe()}: {u.blocked}" for u in units if u.blocked]
        reason = None
        if host.name in receivers:
            continue
        if host.settle:
            reason = host.settle
        elif blocked:
            reason = "; ".join(blocked[:3])
        elif (
            model.cap_reason(host, size)
            if len(units) == 1
            else size > min(policy.max_per_host - host.moves, model.budget_left())
        ):
            reason = (
                f"{size} domain(s) to move, more than the per-plan limits allow "
                f"(max_per_host {policy.max_per_host}, max_migrations {model.max_migrations})"
            )
        else:
            placer.exclude(host.name, "is being emptied")
            placed = placer.place_all(units, pack=True)
            if placed is None:
                reason = "its chunks do not all fit on the other running hosts within the targets"
                placer.readmit(host.name)
            else:
                why = f"consolidate: empty {host.name} for power-off ({len(units)} chunk(s))"
                for unit, destination in placed:
                    outcome.move(unit, destination, why)
                    receivers.add(destination)
                continue
        # Only hosts that are worth powering off (below cpu_low) are reported as not emptied.
        if host.cpu_ratio < policy.cpu_low:
            outcome.unresolved_host(
                host.name,
                "consolidate",
                f"cpu {pct(host.cpu_ratio)} below cpu_low {pct(policy.cpu_low)} but not emptied: {reason}",
            )
