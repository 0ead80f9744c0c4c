"""Power-aware best fit (CloudSim's PABFD host choice), vectorised over the hosts with numpy.

For one VM: among the hosts allowed, with a core fast enough for it (a VM runs on one core) and room
for its demand, and (unless the host is idle) staying at or below ``threshold`` once it is added,
the host whose power rises least; ties go to the first host. CloudSim prices an idle host at its
table's 0% figure here, so waking one costs only the rise above idle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from virtbalance.simulator.power import POINTS, PowerModel

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


class PowerTable:
    """Hosts' capacities and power models as arrays, to price a VM on every host at once."""

    def __init__(
        self, capacity: Sequence[float], core: Sequence[float], models: Sequence[PowerModel]
    ) -> None:
        self.capacity: Floats = np.asarray(capacity, dtype=np.float64)
        self.core: Floats = np.asarray(core, dtype=np.float64)
        self.watts: Floats = np.asarray([m.watts for m in models], dtype=np.float64)
        self.rows = np.arange(len(models))

    def power(self, used: Floats) -> Floats:
        """Watts of every host at ``used`` (same units as the capacity), interpolated, capped at 100%."""
        u = np.clip(used / self.capacity, 0.0, 1.0) * (POINTS - 1)
        low = np.minimum(u.astype(np.int64), POINTS - 2)
        base: Floats = self.watts[self.rows, low]
        result: Floats = base + (self.watts[self.rows, low + 1] - base) * (u - low)
        return result

    def best(
        self,
        demand: float,
        used: Floats,
        allowed: Bools,
        threshold: float,
        base: Floats | None = None,
    ) -> int | None:
        """The index of the host PABFD picks for a VM of ``demand``, or None.

        The rise is priced from ``base`` (watts) when given: CloudSim prices every VM of one decision
        from the power each host measured before it (``PowerHost.getPower``), not from what the VMs
        placed before it in the same decision add; without ``base``, from the power at ``used``."""
        after = used + demand
        fits = (
            allowed
            & (self.core >= demand)
            & (after <= self.capacity)
            & ((used == 0.0) | (after <= threshold * self.capacity))
        )
        if not fits.any():
            return None
        before = self.power(used) if base is None else base
        rise = np.where(fits, self.power(after) - before, np.inf)
        return int(np.argmin(rise))
