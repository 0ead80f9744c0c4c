"""Destinations for a set of chunks together by backtracking: where the least-loaded placement fails to pack a tight cluster."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from virtbalance.planner.deadline import Deadline
from virtbalance.planner.model import Unit
from virtbalance.planner.placement import Delta, Overlay, Placer
from virtbalance.planner.rooms import Rooms

# Placements tried per call: the packings the relief search looks for take tens to a few thousand
# on tight clusters of 4-30 hosts; a set that is not found within this is taken for one that does not pack.
PACK_NODES = 1_000


@dataclass
class Allowance:
    """Placements the packer may still try, shared by the calls of one step (a bound that does not
    depend on the machine's speed, unlike the budget)."""

    left: int


# The packer looks at the deadline every this many placements.
DEADLINE_EVERY = 64


def pack(
    placer: Placer,
    units: Sequence[Unit],
    base: Overlay | None = None,
    deadline: Deadline | None = None,
    allowance: Allowance | None = None,
) -> list[tuple[Unit, str]] | None:
    """Destinations for all ``units`` together on the placer's receivers (after ``base``), within the
    hard constraints (``Placer.misfit``), or None if none was found within ``PACK_NODES`` placements
    (and what is left of ``allowance``, which the placements tried are taken from).

    Depth-first: the units largest first (the larger of their CPU and memory shares of the largest
    room), each to the host it fills best (least room left after it), backtracking when a unit fits
    nowhere or the capacity bound (``Rooms.admits``) rules out the units still to place. Deterministic:
    ties go to the host name.
    """
    hosts = placer.model.hosts
    names = [name for _, name in placer.order]
    if not units:
        return []
    if not names or (allowance is not None and allowance.left <= 0):
        return None
    overlay: Overlay = {
        name: Delta(d.cpu, d.memory, d.moves, set(d.anti_affinity))
        for name, d in (base or {}).items()
    }
    # Free room per receiver as units are tried (the figures Rooms and the best fit are taken from).
    cpu_left: dict[str, float] = {}
    memory_left: dict[str, float] = {}
    for name in names:
        delta = overlay.get(name)
        cpu_left[name] = (
            placer.cpu_room[name] - hosts[name].cpu_peak - (delta.cpu if delta else 0.0)
        )
        memory_left[name] = (
            placer.memory_room[name] - hosts[name].memory_used - (delta.memory if delta else 0)
        )
    top_cpu = max(*cpu_left.values(), 1e-9)
    top_memory = max(*memory_left.values(), 1.0)
    order = sorted(
        units, key=lambda u: (-max(u.cpu_peak / top_cpu, u.memory / top_memory), u.host, u.id)
    )
    # Each suffix of ``order`` ascending, for the capacity bound on what is still to place: built
    # from the last unit back, each a copy of the next with one insertion (sorting each anew was most
    # of the cost of a call that fails at once).
    rest_cpu: list[list[float]] = [[] for _ in range(len(order) + 1)]
    rest_memory: list[list[float]] = [[] for _ in range(len(order) + 1)]
    for k in range(len(order) - 1, -1, -1):
        rest_cpu[k] = list(rest_cpu[k + 1])
        bisect.insort(rest_cpu[k], order[k].cpu_peak)
        rest_memory[k] = list(rest_memory[k + 1])
        bisect.insort(rest_memory[k], float(order[k].memory))
    placed: list[tuple[Unit, str]] = []
    nodes = PACK_NODES if allowance is None else min(PACK_NODES, allowance.left)
    tried = 0
    stopped = False

    def place(k: int) -> bool:
        nonlocal tried, stopped
        if k == len(order):
            return True
        tried += 1
        if tried > nodes or stopped:
            return False
        if tried % DEADLINE_EVERY == 0 and deadline is not None and deadline.expired("search"):
            stopped = True
            return False
        if not Rooms.of(cpu_left.values(), memory_left.values()).admits(
            rest_cpu[k], rest_memory[k]
        ):
            return False
        unit = order[k]
        choices = []
        for name in names:
            cpu = cpu_left[name] - unit.cpu_peak
            memory = memory_left[name] - unit.memory
            # Capacity inline first (what rules most hosts out), then every other check.
            if cpu < 0 or memory < 0:
                continue
            if placer.misfit(unit, hosts[name], overlay.get(name), receiving=True) is None:
                choices.append((min(cpu / top_cpu, memory / top_memory), name))
        for _, name in sorted(choices):
            delta = overlay.setdefault(name, Delta())
            added = unit.anti_affinity - delta.anti_affinity
            delta.cpu += unit.cpu_peak
            delta.memory += unit.memory
            delta.moves += unit.size
            delta.anti_affinity |= added
            cpu_left[name] -= unit.cpu_peak
            memory_left[name] -= unit.memory
            placed.append((unit, name))
            if place(k + 1):
                return True
            placed.pop()
            cpu_left[name] += unit.cpu_peak
            memory_left[name] += unit.memory
            delta.cpu -= unit.cpu_peak
            delta.memory -= unit.memory
            delta.moves -= unit.size
            delta.anti_affinity -= added
        return False

    done = place(0)
    if allowance is not None:
        allowance.left -= min(tried, nodes)
    return placed if done else None
