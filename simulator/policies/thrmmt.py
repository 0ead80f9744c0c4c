"""THR-MMT: CloudSim's static-threshold consolidation (Beloglazov and Buyya 2012), as CloudSim 3.0.3's code runs it.

Every step: hosts above ``threshold`` CPU are overloaded; from each, the VMs with the least memory
(minimum migration time) leave one by one until it is at or below the threshold. Those VMs, hungriest
first, go where PABFD (power-aware best fit, simulator.pabfd) puts them, never onto an overloaded host
nor onto a core smaller than their demand (where the cluster has cores); as in CloudSim's code, every
move of a decision is priced from the power the hosts measured before it.
Then the least-utilised host (as measured before the step) that neither is overloaded nor was off
nor just received a VM is emptied if all its VMs find a PABFD host among those running before the
step (else it keeps them), and so on for every host. Unlike CloudSim, a host that received in the
overload step is not emptied in the same step (CloudSim means to exclude it, but builds the list
from an empty map, and may then plan and count a VM twice).
It moves VMs one by one: it knows no chunks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from virtbalance.errors import ValidationError
from virtbalance.policy import Policy
from virtbalance.simulator.pabfd import Floats, PowerTable
from virtbalance.simulator.policies.base import ParamsPlugin
from virtbalance.simulator.state import ClusterView, Move


@dataclass(frozen=True)
class ThrMmtParams:
    threshold: float = 0.8


class ThrMmtPolicy(ParamsPlugin[ThrMmtParams]):
    """Static threshold, minimum migration time, PABFD placement, consolidation of underloaded hosts."""

    name: ClassVar[str] = "thr-mmt"
    chunk_aware: ClassVar[bool] = False
    params_type = ThrMmtParams

    def __init__(self, params: ThrMmtParams) -> None:
        super().__init__(params)
        self.table: PowerTable | None = None

    @classmethod
    def build(cls, params: Mapping[str, Any] | None, policy: Policy) -> ThrMmtPolicy:
        parsed = cls.parse(params)
        if not 0.0 < parsed.threshold <= 1.0:
            raise ValidationError(
                "policies.thr-mmt", [f"threshold: must be within (0, 1], got {parsed.threshold}"]
            )
        return cls(parsed)

    def _power_table(self, view: ClusterView) -> PowerTable:
        if self.table is None:
            missing = [h for h in view.host_names if h not in view.host_power]
            if missing:
                raise ValidationError(
                    "policies.thr-mmt",
                    [f"needs a power model on every host; none on {', '.join(missing[:3])}"],
                )
            cpus = [view.host_cpus[h] for h in view.host_names]
            # Without cores (simulator.cluster), a VM may use a whole host.
            cores = [view.host_core.get(h, view.host_cpus[h]) for h in view.host_names]
            self.table = PowerTable(cpus, cores, [view.host_power[h] for h in view.host_names])
        return self.table

    def _pricing_base(self, table: PowerTable, initial: Floats) -> Floats | None:
        """The watts each move's power rise is priced from (``PowerTable.best``'s ``base``).

        CloudSim prices every move of a decision from the power the hosts measured before it."""
        return table.power(initial)

    def decide(self, view: ClusterView) -> Sequence[Move]:
        table = self._power_table(view)
        hosts = view.host_names
        threshold = self.params.threshold
        cpu = view.cpu
        on_host = [list(view.domains_by_host[h]) for h in hosts]
        used = np.array([sum(cpu[d] for d in names) for names in on_host], dtype=np.float64)
        capacity = table.capacity
        # What each host measures before this decision: CloudSim picks and closes hosts for
        # consolidation on it, and prices every move from its power.
        initial = used.copy()
        measured = self._pricing_base(table, initial)
        # CloudSim's static threshold is on the MIPS the VMs ask for (PowerVmAllocationPolicy...StaticThreshold).
        over = used > threshold * capacity
        leaving: list[tuple[str, int]] = []
        for index in np.flatnonzero(over):
            # Minimum migration time: the least memory first (stable: list order breaks ties).
            for name in sorted(on_host[index], key=lambda d: view.memory[d]):
                leaving.append((name, int(index)))
                used[index] -= cpu[name]
                if used[index] <= threshold * capacity[index]:
                    break
        moves: list[Move] = []
        received = np.zeros(len(hosts), dtype=np.bool_)
        for name, source in sorted(leaving, key=lambda item: -cpu[item[0]]):
            target = table.best(cpu[name], used, ~over, threshold, measured)
            if target is None:
                used[source] += cpu[name]
                continue
            used[target] += cpu[name]
            received[target] = True
            moves.append(Move(name, hosts[target], "thr-mmt: overloaded"))
        moves += self._consolidate(
            view,
            table=table,
            on_host=on_host,
            used=used,
            initial=initial,
            measured=measured,
            over=over,
            received=received,
        )
        return moves

    def _consolidate(
        self,
        view: ClusterView,
        *,
        table: PowerTable,
        on_host: list[list[str]],
        used: np.ndarray[Any, np.dtype[np.float64]],
        initial: np.ndarray[Any, np.dtype[np.float64]],
        measured: Floats | None,
        over: np.ndarray[Any, np.dtype[np.bool_]],
        received: np.ndarray[Any, np.dtype[np.bool_]],
    ) -> list[Move]:
        """Empty underloaded hosts, least utilised first, each only if all its VMs find a host.

        As in CloudSim, the order and the hosts that are off (closed: they neither send nor receive)
        are those measured before the decision: a host the overload step just woke stays closed."""
        cpu = view.cpu
        threshold = self.params.threshold
        off = initial <= 0.0
        # Hosts that may not be emptied, and hosts that may not receive.
        skip = over | off | received
        closed = over | off
        ratio = initial / table.capacity
        moves: list[Move] = []
        while True:
            open_hosts = np.flatnonzero(~skip)
            if open_hosts.size == 0:
                break
            index = int(open_hosts[np.argmin(ratio[open_hosts])])
            skip[index] = True
            closed[index] = True
            names = sorted(on_host[index], key=lambda d: -cpu[d])
            trial = used.copy()
            targets = []
            for name in names:
                target = table.best(cpu[name], trial, ~closed, threshold, measured)
                if target is None:
                    break
                trial[target] += cpu[name]
                targets.append(target)
            if len(targets) < len(names) or not names:
                continue
            trial[index] = 0.0
            used[:] = trial
            for name, target in zip(names, targets, strict=True):
                skip[target] = True
                moves.append(Move(name, view.host_names[target], "thr-mmt: underloaded"))
        return moves
