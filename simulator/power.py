"""Host power models: watts at 0, 10, ..., 100% CPU, linearly interpolated; an emptied host draws nothing."""

from __future__ import annotations

from dataclasses import dataclass

# Joules in a kilowatt-hour.
JOULES_PER_KWH = 3.6e6
POINTS = 11


@dataclass(frozen=True)
class PowerModel:
    """A host type's draw at 0%, 10%, ..., 100% CPU (SPECpower-style tables)."""

    name: str
    watts: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.watts) != POINTS:
            raise ValueError(f"{self.name}: needs {POINTS} points (0..100%), got {len(self.watts)}")
        if any(b < a for a, b in zip(self.watts, self.watts[1:], strict=False)):
            raise ValueError(f"{self.name}: watts must not fall as CPU rises")

    def power(self, utilisation: float) -> float:
        """Watts at ``utilisation`` (a ratio; above 1 draws full power: a host cannot run faster)."""
        u = min(max(utilisation, 0.0), 1.0) * (POINTS - 1)
        low = min(int(u), POINTS - 2)
        return self.watts[low] + (self.watts[low + 1] - self.watts[low]) * (u - low)

    def host_power(self, utilisation: float, empty: bool) -> float:
        """Watts of a host: nothing when it runs no domain (it can be switched off)."""
        return 0.0 if empty else self.power(utilisation)


# HP ProLiant ML110 G4 (Xeon 3040) and G5 (Xeon 3075), the SPECpower figures CloudSim's PlanetLab
# experiments use.
ML110_G4 = PowerModel(
    "ml110-g4", (86.0, 89.4, 92.6, 96.0, 99.5, 102.0, 106.0, 108.0, 112.0, 114.0, 117.0)
)
ML110_G5 = PowerModel(
    "ml110-g5", (93.7, 97.0, 101.0, 105.0, 110.0, 116.0, 121.0, 125.0, 129.0, 133.0, 135.0)
)
POWER_MODELS: dict[str, PowerModel] = {m.name: m for m in (ML110_G4, ML110_G5)}


def kwh(watts: float, seconds: float) -> float:
    """Energy of ``watts`` drawn for ``seconds``, in kWh."""
    return watts * seconds / JOULES_PER_KWH
