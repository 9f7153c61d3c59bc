"""Physical units -> grid units, in one place.

Parameters are physical (um, min, h, day); the model works in voxels and model steps.
Every conversion the model makes goes through :class:`Scales`.
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Scales", "MIN_PER_HOUR", "MIN_PER_DAY"]

MIN_PER_HOUR = 60.0  #: min/h: time parameters in hours or days are turned into minutes
MIN_PER_DAY = 1440.0  #: min/day


@dataclass(frozen=True)
class Scales:
    """Conversions for a grid of ``voxel_um`` voxels stepped every ``dt_min`` minutes."""

    voxel_um: float
    dt_min: float

    @property
    def voxel_area_mm2(self) -> float:
        return (self.voxel_um * 1e-3) ** 2

    def prob(self, rate_per_min):
        """Probability that an event of the given rate (1/min) happens within one step."""
        p = np.multiply(rate_per_min, -self.dt_min, dtype=float)  # -rate * dt, exactly
        if p.ndim == 0:
            return -np.expm1(p)
        return np.negative(np.expm1(p, out=p), out=p)  # in place: no temporaries

    def voxels_per_step(self, speed_um_per_min):
        """Distance covered in one step, in voxels."""
        return np.asarray(speed_um_per_min, dtype=float) * self.dt_min / self.voxel_um

    def steps(self, minutes: float) -> int:
        """Whole number of steps in a duration (rounded to nearest)."""
        return int(round(minutes / self.dt_min))

    def minutes(self, steps) -> float:
        return steps * self.dt_min

    def voxels(self, length_um: float) -> float:
        return length_um / self.voxel_um

    def per_voxel(self, count_per_mm2: float) -> float:
        """Expected count per voxel from a density per mm^2."""
        return count_per_mm2 * self.voxel_area_mm2
