"""Relieve as a CP-SAT model (OR-Tools, optional): the planner's refinement step and the benchmarks' exact reference.

It reads the same working model as the greedy planner (chunks, barriers, hard constraints), so the two
differ only in how they search. Numbers are scaled to integers, CPU in thousandths of a core and memory
in MiB, rounded so that a solution is always valid in the exact figures: what leaves a source counts
rounded down, what arrives at a destination rounded up. The per-plan caps are modelled without the
planner's allowance for a chunk larger than a cap moving alone (stricter, so still valid).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from virtbalance.planner.model import EPS, HostLoad, Model, Unit, build_model
from virtbalance.planner.relieve import Need, need_of
from virtbalance.policy import Policy
from virtbalance.snapshot import Snapshot

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

MIB = 2**20
# The model's size in (chunk, destination) pairs above which the planner does not try CP-SAT: building
# it would eat the budget (about a few hundred hosts with a few tens of overloaded ones).
MAX_PAIRS = 60_000
# Sub-solvers CP-SAT interleaves on one thread in the planner (measured on tight clusters: finds full
# relief more often than one plain worker in the same second).
INTERLEAVED = 8


@cache
def installed() -> bool:
    """Whether OR-Tools is installed (it is optional: the greedy planner needs nothing else), without
    importing it: the import takes a second or more, and only plans that reach CP-SAT pay it."""
    return importlib.util.find_spec("ortools") is not None


@cache
def available() -> bool:
    """Whether OR-Tools imports; imports it once per process (0.6-0.7 s of CPU, seconds of wall time on
    a loaded machine). Plans wait for it through ``ready``, within their budget."""
    if not installed():
        return False
    try:
        from ortools.sat.python import cp_model  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


@cache
def _importer() -> threading.Thread:
    thread = threading.Thread(target=available, name="ortools-import", daemon=True)
    thread.start()
    return thread


def warm_up() -> threading.Thread | None:
    """Start importing OR-Tools in a background thread, once per process (a long-running caller: its
    first plan does not pay the import); None when it is not installed."""
    return _importer() if installed() else None


def ready(timeout: float | None) -> bool:
    """Whether OR-Tools is imported, waiting at most ``timeout`` seconds (None: as long as it takes)
    for the import, which runs in the background: a plan whose budget runs out first goes on without
    CP-SAT (the import cannot be interrupted, so it is not run in the plan's own thread)."""
    thread = warm_up()
    if thread is None:
        return False
    thread.join(timeout)
    return not thread.is_alive() and available()


@dataclass(frozen=True)
class ExactResult:
    """``feasible``: every overloaded host can reach the targets; ``optimal``: proven within the time limit."""

    feasible: bool
    optimal: bool
    memory_bytes: int
    migrations: int
    moves: tuple[tuple[str, str, str], ...]  # (source, chunk id, destination)


@dataclass(frozen=True)
class Sets:
    """What CP-SAT chose: per source resolved, its chunks with their destinations."""

    moves: Mapping[str, tuple[tuple[Unit, str], ...]]
    optimal: bool  # proven; False when it stopped at its time limit


def _down(value: float) -> int:
    return math.floor(value + 1e-6)


def _up(value: float) -> int:
    return math.ceil(value - 1e-6)


class _Problem:
    """The CP-SAT model of relieving ``needs`` onto ``receivers`` (``require_all``: every one of them)."""

    def __init__(
        self,
        model: Model,
        needs: Mapping[str, Need],
        receivers: Sequence[HostLoad],
        require_all: bool,
    ) -> None:
        from ortools.sat.python import cp_model  # noqa: PLC0415 - optional dependency

        policy = model.policy
        hosts = model.hosts
        self.units: list[Unit] = [u for name in needs for u in model.units[name] if not u.blocked]
        cp = self.cp = cp_model.CpModel()
        rooms = {
            h.name: (
                _down((policy.cpu_target * h.cpus - h.cpu_used) * 1000),
                _down((policy.memory_target * h.memory - h.memory_used) / MIB),
            )
            for h in receivers
        }
        cpu_in = [_up(u.cpu * 1000) for u in self.units]
        memory_in = [_up(u.memory / MIB) for u in self.units]
        self.x: dict[tuple[int, str], cp_model.IntVar] = {}
        for i, unit in enumerate(self.units):
            for host in receivers:
                cpu_room, memory_room = rooms[host.name]
                present = {k for k, n in host.anti_affinity.items() if n > 0}
                if (
                    cpu_in[i] <= cpu_room
                    and memory_in[i] <= memory_room
                    and unit.barred_reason(host.name) is None
                    and not unit.anti_affinity & present
                ):
                    self.x[i, host.name] = cp.new_bool_var(f"x{i}_{host.name}")
        by_unit: dict[int, list[cp_model.IntVar]] = {}
        by_host: dict[str, list[tuple[int, cp_model.IntVar]]] = {}
        for (i, name), var in self.x.items():
            by_unit.setdefault(i, []).append(var)
            by_host.setdefault(name, []).append((i, var))
        self.moved: list[cp_model.IntVar] = []
        for i in range(len(self.units)):
            var = cp.new_bool_var(f"m{i}")
            options = by_unit.get(i, [])
            cp.add(sum(options) == var) if options else cp.add(var == 0)
            self.moved.append(var)

        self.resolved: dict[str, cp_model.IntVar] = {}
        for name, need in needs.items():
            host = hosts[name]
            mine = [i for i, u in enumerate(self.units) if u.host == name]
            ok = self.resolved[name] = cp.new_bool_var(f"r{name}")
            if require_all:
                cp.add(ok == 1)
            for i in mine:
                # Only hosts relieved in full move here; partial relief is the greedy planner's.
                cp.add_implication(self.moved[i], ok)
            if need.cpu > EPS:
                cp.add(
                    sum(_down(self.units[i].cpu * 1000) * self.moved[i] for i in mine)
                    >= _up(need.cpu * 1000)
                ).only_enforce_if(ok)
            if need.memory > 0:
                cp.add(
                    sum(self.units[i].memory // MIB * self.moved[i] for i in mine)
                    >= _up(need.memory / MIB)
                ).only_enforce_if(ok)
            cp.add(
                sum(self.units[i].size * self.moved[i] for i in mine)
                <= policy.max_per_host - host.moves
            )
        for name, incoming in by_host.items():
            cpu_room, memory_room = rooms[name]
            cp.add(sum(cpu_in[i] * v for i, v in incoming) <= cpu_room)
            cp.add(sum(memory_in[i] * v for i, v in incoming) <= memory_room)
            cp.add(
                sum(self.units[i].size * v for i, v in incoming)
                <= policy.max_per_host - hosts[name].moves
            )
            for key in sorted({k for i, _ in incoming for k in self.units[i].anti_affinity}):
                cp.add(sum(v for i, v in incoming if key in self.units[i].anti_affinity) <= 1)
        sizes = [u.size for u in self.units]
        cp.add(sum(s * m for s, m in zip(sizes, self.moved, strict=True)) <= model.budget_left())

        # Lexicographic: hosts left unresolved, then memory, then migrations.
        per_mib = sum(sizes) + 1
        per_host = (sum(u.memory // MIB for u in self.units) + 1) * per_mib
        cp.minimize(
            sum(per_host * (1 - r) for r in self.resolved.values())
            + sum(
                ((u.memory // MIB) * per_mib + u.size) * m
                for u, m in zip(self.units, self.moved, strict=True)
            )
        )

    def hint(self, moves: Sequence[tuple[Unit, str]]) -> None:
        """Start from a known plan (the greedy one): CP-SAT then only has to do better."""
        index = {u.key: i for i, u in enumerate(self.units)}
        chosen = {(index[u.key], d) for u, d in moves if u.key in index}
        sources = {u.host for u, _ in moves}
        for key, var in self.x.items():
            self.cp.add_hint(var, key in chosen)
        moved = {i for i, _ in chosen}
        for i, var in enumerate(self.moved):
            self.cp.add_hint(var, i in moved)
        for name, var in self.resolved.items():
            self.cp.add_hint(var, name in sources)

    def solve(self, seconds: float, deterministic: bool, workers: int = 0) -> tuple[Any, Any]:
        """Solve within ``seconds`` (``deterministic``: CP-SAT's own work units instead of the wall clock,
        so the same input gives the same answer). ``workers`` 0, the planner's: CP-SAT's portfolio
        (LNS, feasibility jump, ...) interleaved on one thread, deterministically, so the host's other
        work keeps its CPUs; more: that many threads (the benchmarks' reference)."""
        from ortools.sat.python import cp_model  # noqa: PLC0415

        solver = cp_model.CpSolver()
        if deterministic:
            solver.parameters.max_deterministic_time = seconds
        else:
            solver.parameters.max_time_in_seconds = seconds
        if workers:
            solver.parameters.num_workers = workers
        else:
            solver.parameters.num_workers = INTERLEAVED
            solver.parameters.interleave_search = True
        solver.parameters.random_seed = 0
        return solver, solver.solve(self.cp)


def pairs(model: Model, needs: Mapping[str, Need], receivers: Sequence[object]) -> int:
    """How big the model would be, in (chunk, destination) pairs before filtering."""
    return sum(1 for n in needs for u in model.units[n] if not u.blocked) * len(receivers)


def solve_sets(
    model: Model,
    needs: Mapping[str, Need],
    receivers: Sequence[HostLoad],
    hint: Sequence[tuple[Unit, str]],
    seconds: Callable[[], tuple[float, bool]],
) -> Sets | None:
    """The full-relief sets that resolve the most hosts with the least memory, then fewest migrations,
    from the model's current state; None if CP-SAT found nothing in time. ``seconds``, asked once the
    model is built: how long CP-SAT may take, and whether in its deterministic work units."""
    from ortools.sat.python import cp_model  # noqa: PLC0415

    problem = _Problem(model, needs, receivers, require_all=False)
    problem.hint(hint)
    limit, deterministic = seconds()
    solver, status = problem.solve(limit, deterministic)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    moves: dict[str, list[tuple[Unit, str]]] = {}
    for (i, name), var in sorted(problem.x.items()):
        if solver.value(var):
            unit = problem.units[i]
            moves.setdefault(unit.host, []).append((unit, name))
    return Sets(
        moves={host: tuple(placed) for host, placed in moves.items()},
        optimal=status == cp_model.OPTIMAL,
    )


def solve_relieve(
    snapshot: Snapshot, policy: Policy, time_limit: float = 20.0, workers: int = 0
) -> ExactResult:
    """The reference: least migrated memory (then fewest migrations) bringing every overloaded host to
    the targets, or infeasible."""
    from ortools.sat.python import cp_model  # noqa: PLC0415

    model = build_model(snapshot, policy, frozenset(), None)
    hosts = model.hosts
    needs = {
        name: need for name, host in hosts.items() if (need := need_of(model, host)) is not None
    }
    if any(hosts[name].settle for name in needs):
        return ExactResult(False, True, 0, 0, ())
    receivers = [
        h
        for name, h in sorted(hosts.items())
        if name not in needs and not h.maintenance and not h.settle
    ]
    problem = _Problem(model, needs, receivers, require_all=True)
    solver, status = problem.solve(time_limit, deterministic=False, workers=workers)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return ExactResult(False, status == cp_model.INFEASIBLE, 0, 0, ())
    moves = tuple(
        (problem.units[i].host, problem.units[i].id, name)
        for (i, name), v in sorted(problem.x.items())
        if solver.value(v)
    )
    chosen = [u for u, m in zip(problem.units, problem.moved, strict=True) if solver.value(m)]
    return ExactResult(
        feasible=True,
        optimal=status == cp_model.OPTIMAL,
        memory_bytes=sum(u.memory for u in chosen),
        migrations=sum(u.size for u in chosen),
        moves=moves,
    )
