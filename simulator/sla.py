"""CloudSim's SLA metrics (Beloglazov and Buyya 2012): SLATAH, PDM and SLAV, from totals the replay adds up.

SLATAH: the share of the time hosts are active (running at least one domain) during which they run less
CPU than their domains ask (CloudSim: allocated below requested): demand above the host's capacity, or
a domain's demand above its cores where the cluster caps domains at their cores (simulator.cluster). PDM: the CPU
that migrations take from the migrating domains (CloudSim gives a domain 90% of its demand while it
migrates) over all the CPU the domains asked for. SLAV = SLATAH x PDM. CloudSim pools both over the
whole cluster (the sums, not a mean of per-host or per-domain ratios), and so does this module.
"""

from __future__ import annotations

from dataclasses import dataclass

# The share of a migrating domain's CPU lost while it migrates (CloudSim's fixed 10%).
MIGRATION_DEGRADATION = 0.1
# CPU a host may run short of its domains' demand and still count as serving it (rounding only).
SATURATION_TOLERANCE = 1e-9


@dataclass
class SlaTotals:
    """Host-seconds active and saturated; CPU-seconds asked for and lost to migrations."""

    active_seconds: float = 0.0
    saturated_seconds: float = 0.0
    requested: float = 0.0
    degraded: float = 0.0
    # Active, not saturated, but receiving a migration: CloudSim's code counts these too (below).
    arriving_seconds: float = 0.0

    def add_host(
        self,
        seconds: float,
        requested: float,
        allocated: float,
        active: bool,
        arriving: float = 0.0,
    ) -> None:
        """A host's interval of ``seconds``: counted when active, saturated when it runs less than its
        domains ask (their demand above its capacity, or a domain's above its cores); ``arriving``:
        the seconds of it during which a domain migrated to it."""
        if active:
            self.active_seconds += seconds
            if allocated < requested - SATURATION_TOLERANCE:
                self.saturated_seconds += seconds
            else:
                self.arriving_seconds += min(arriving, seconds)

    def add_migration(self, cpu: float, seconds: float) -> None:
        """A domain using ``cpu`` migrated for ``seconds`` of the interval."""
        self.degraded += MIGRATION_DEGRADATION * cpu * seconds

    @property
    def slatah(self) -> float:
        return self.saturated_seconds / self.active_seconds if self.active_seconds else 0.0

    @property
    def slatah_cloudsim(self) -> float:
        """SLATAH as CloudSim 3.0.3's code counts it: a migration's destination is also short of CPU
        while the VM arrives (it gives the arriving VM 10% of its MIPS but records all it asks)."""
        if not self.active_seconds:
            return 0.0
        return (self.saturated_seconds + self.arriving_seconds) / self.active_seconds

    @property
    def pdm(self) -> float:
        return self.degraded / self.requested if self.requested else 0.0

    @property
    def slav(self) -> float:
        return self.slatah * self.pdm
