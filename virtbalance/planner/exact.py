"""Exact reference for ``relieve`` on small instances, with OR-Tools CP-SAT (the ``test`` extra): a yardstick only.

It reads the same working model as the planner (chunks, barriers, hard constraints), so the two differ only
in how they search. Numbers are scaled to integers: CPU in thousandths of a core, memory in MiB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from virtbalance.planner.model import EPS, Unit, build_model
from virtbalance.planner.relieve import need_of
from virtbalance.policy import Policy
from virtbalance.snapshot import Snapshot

MIB = 2**20


@dataclass(frozen=True)
class ExactResult:
    """``feasible``: every overloaded host can reach the targets; ``optimal``: proven within the time limit."""

    feasible: bool
    optimal: bool
    memory_bytes: int
    migrations: int
    moves: tuple[tuple[str, str, str], ...]  # (source, chunk id, destination)


def _milli(cores: float) -> int:
    return round(cores * 1000)


def solve_relieve(snapshot: Snapshot, policy: Policy, time_limit: float = 20.0) -> ExactResult:
    """Least migrated memory (then fewest migrations) bringing every overloaded host to the targets."""
    from ortools.sat.python import cp_model  # noqa: PLC0415 - optional: only tests and benchmarks need it

    model = build_model(snapshot, policy, frozenset(), None)
    hosts = model.hosts
    needs = {
        name: need for name, host in hosts.items() if (need := need_of(model, host)) is not None
    }
    infeasible = ExactResult(False, True, 0, 0, ())
    if any(hosts[name].settle for name in needs):
        return infeasible
    receivers = [
        h
        for name, h in sorted(hosts.items())
        if name not in needs and not h.maintenance and not h.settle
    ]
    units: list[Unit] = [u for name in sorted(needs) for u in model.units[name] if not u.blocked]

    cp = cp_model.CpModel()
    x: dict[tuple[int, str], cp_model.IntVar] = {}
    for i, unit in enumerate(units):
        for host in receivers:
            if unit.barred_reason(host.name) is None and not (
                unit.anti_affinity & {k for k, n in host.anti_affinity.items() if n > 0}
            ):
                x[i, host.name] = cp.new_bool_var(f"x{i}_{host.name}")
    moved = []
    for i, _ in enumerate(units):
        options = [v for (j, _), v in x.items() if j == i]
        var = cp.new_bool_var(f"m{i}")
        cp.add(sum(options) == var) if options else cp.add(var == 0)
        moved.append(var)

    for name, need in needs.items():
        mine = [i for i, u in enumerate(units) if u.host == name]
        host = hosts[name]
        if need.cpu > EPS:
            floor = math.floor(policy.cpu_target * host.cpus * 1000 + 1e-6)
            cp.add(
                sum(_milli(units[i].cpu) * moved[i] for i in mine) >= _milli(host.cpu_used) - floor
            )
        if need.memory > 0:
            cp.add(
                sum(units[i].memory // MIB * moved[i] for i in mine) >= math.ceil(need.memory / MIB)
            )
        cp.add(sum(units[i].size * moved[i] for i in mine) <= policy.max_per_host - host.moves)

    for host in receivers:
        incoming = [(i, v) for (i, name), v in x.items() if name == host.name]
        if not incoming:
            continue
        cpu_room = math.floor((policy.cpu_target * host.cpus - host.cpu_used) * 1000 + 1e-6)
        memory_room = math.floor(
            (policy.memory_target * host.memory - host.memory_used) / MIB + 1e-9
        )
        if cpu_room < 0 or memory_room < 0:
            # Already above a target: it may receive nothing at all, not even an idle domain.
            for _, v in incoming:
                cp.add(v == 0)
            continue
        cp.add(sum(_milli(units[i].cpu) * v for i, v in incoming) <= cpu_room)
        cp.add(sum(units[i].memory // MIB * v for i, v in incoming) <= memory_room)
        cp.add(sum(units[i].size * v for i, v in incoming) <= policy.max_per_host - host.moves)
        keys = sorted({k for i, _ in incoming for k in units[i].anti_affinity})
        for key in keys:
            cp.add(sum(v for i, v in incoming if key in units[i].anti_affinity) <= 1)
    cp.add(sum(u.size * m for u, m in zip(units, moved, strict=True)) <= model.max_migrations)

    weight = model.max_migrations + 1
    cp.minimize(
        sum((u.memory // MIB) * weight * m + u.size * m for u, m in zip(units, moved, strict=True))
    )
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = solver.solve(cp)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return ExactResult(False, status == cp_model.INFEASIBLE, 0, 0, ())
    moves = tuple(
        (units[i].host, units[i].id, name) for (i, name), v in sorted(x.items()) if solver.value(v)
    )
    chosen = [u for u, m in zip(units, moved, strict=True) if solver.value(m)]
    return ExactResult(
        feasible=True,
        optimal=status == cp_model.OPTIMAL,
        memory_bytes=sum(u.memory for u in chosen),
        migrations=sum(u.size for u in chosen),
        moves=moves,
    )
