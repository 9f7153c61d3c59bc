"""Field solver: advances named 2D fields by one model step with LOD sub-steps.

Each field obeys, on voxels of dx um, in minutes,

    du/dt = D lap(u) - decay u - uptake(x) u + release(x) + supply_rate(x) (target(x) - u)

One model step ``dt_min`` is ``n_sub = ceil(dt_min / max_substep_min)`` equal sub-steps
of ``h = dt_min / n_sub``; each is the implicit pointwise reaction, then a backward-Euler
sweep along x, then one along y (:mod:`.lod`). Every part is unconditionally stable
and keeps ``u >= 0``; a step never produces values outside the range of the initial field,
boundary value and supply target (maximum principle) when there is no release.

Accuracy: the split scheme's steady state is not the true one
-------------------------------------------------------------
The fixed point of "reaction, then x sweep, then y sweep" solves

    lambda u - (1 + h lambda) D lap(u) + (1 + h lambda) h D^2 dxx dyy u = release + supply

(``lambda`` = decay + uptake + supply rate, locally; supply = supply rate * target):
diffusion is effectively ``D (1 + h lambda)``, and the LOD cross term grows with
``h D / dx^2`` where the field is sharp. With tumor uptake of oxygen (10/min) the first
term dominates. Measured with
``benchmarks/bench_diffusion.py --split-error`` (and held by ``tests/test_fields.py``): a
point source on a 301 x 301 no-flux grid, dx = 20 um, the scheme's converged fixed point;
worst relative error over r = 3..15 voxels from the source.

Oxygen, D = 1e5 um^2/min, against the exact ``q/(2 pi D) K0(r sqrt(lambda/D))``:

    h (min)   normal tissue, lambda = 0.1/min   tumor, lambda = 0.1 + 10/min
    6         60%                               97%
    3         47%                               94%
    1         27%                               84%
    0.3       11%                               144%
    0.1       5.4%                              122%
    0.03      4.3%                              48%
    0.01      3.5%                              16%
    0.003     2.1%                              5.5%
    0.001     1.2%                              2.9%
    (h -> 0: 0.6% and 1.1%, the grid's own error at r = 3 voxels)

Other fields, against the unsplit discrete steady state (the split error alone):

    h (min)   chemokine, D = 5e4, lambda = 0.01   VEGF-like, D = 2500, lambda = 0.015
    6         30%                                 10.5%
    1         12%                                 5.2%
    0.3       3.8%                                3.5%
    0.1       3.1%                                1.8%
    0.03      2.4%                                0.6%
    0.01      1.6%                                0.2%

These are worst cases (a point source, 3 voxels away); smooth sources do better. Choose
``max_substep_min`` per field from them: the error is set by ``h lambda`` and ``h D /
dx^2``, not by stability. Oxygen in tumor needs h <= 0.003 min for 5% (2000 sub-steps a
6-minute step); a quasi-steady solve is the better tool there.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import lod

__all__ = ["BOUNDARIES", "FieldSolver", "FieldSpec"]

BOUNDARIES = ("noflux", "dirichlet")


@dataclass(frozen=True)
class FieldSpec:
    """One diffusing field.

    Attributes:
        name: key used in :meth:`FieldSolver.advance`.
        diffusion_um2_per_min: D (um^2/min), >= 0.
        decay_per_min: uniform first-order decay (1/min), >= 0.
        boundary: "noflux" (zero gradient) or "dirichlet" (fixed value outside the edge).
        boundary_value: the dirichlet value (concentration), >= 0.
        max_substep_min: longest sub-step (min) allowed for accuracy; inf: one sub-step per
            model step.
    """

    name: str
    diffusion_um2_per_min: float
    decay_per_min: float
    boundary: str = "noflux"
    boundary_value: float = 0.0
    max_substep_min: float = math.inf


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _finite(x) -> bool:
    try:
        return math.isfinite(x)
    except TypeError:
        return False


class FieldSolver:
    """Advances fields of one grid (shape (nx, ny), voxels of dx_um) by dt_min per call.

    Factorisations and scratch are made here once; :meth:`advance` allocates nothing
    (beyond converting source arrays that are not C-contiguous float64). A field is
    advanced in a 64-byte aligned copy whose rows are padded to a multiple of 8 voxels
    (the kernels' layout, :func:`.lod.padded`): copying in and out costs far less than
    the split cache-line accesses of an arbitrary array. Not thread-safe: one solver's
    scratch is shared by its fields.

    Attributes:
        n_substeps: sub-steps per model step, by field name.
        substep_min: sub-step length h (min), by field name.
    """

    def __init__(self, specs: Sequence[FieldSpec], shape: tuple[int, int], dx_um: float,
                 dt_min: float):
        _check(len(shape) == 2 and all(isinstance(n, (int, np.integer)) for n in shape)
               and min(shape) >= 3, f"grid shape must be two integers >= 3, got {shape!r}")
        _check(_finite(dx_um) and dx_um > 0, f"dx_um must be positive and finite, got {dx_um!r}")
        _check(_finite(dt_min) and dt_min > 0,
               f"dt_min must be positive and finite, got {dt_min!r}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.dx_um = float(dx_um)
        self.dt_min = float(dt_min)
        self.specs: dict[str, FieldSpec] = {}
        self.n_substeps: dict[str, int] = {}
        self.substep_min: dict[str, float] = {}
        self._consts: dict[str, lod.FieldConstants] = {}
        for spec in specs:
            self._add(spec)
        nx, ny = self.shape
        nyp = lod.padded(ny)
        # the field being advanced (padded), its reaction, work space
        self._scratch = lod.Scratch(lod.aligned_zeros((nx, nyp)), lod.new_reaction(nx, nyp),
                                    lod.aligned_zeros((lod.work_size(nx, nyp),)))
        # compile (or load from numba's disk cache) the common kernels now, not mid-run
        zeros = np.zeros(self.shape)
        cx = lod.axis_factors(nx, 0.0, False)
        cy = lod.axis_factors(ny, 0.0, False, length=nyp)
        lod.lod_steps_sources(self._scratch, lod.FieldConstants(1.0, 0.0, 1, True, cx, cy),
                              lod.SourceTerms(zeros, zeros, None, None), zeros)

    def _add(self, spec: FieldSpec) -> None:
        name = spec.name
        _check(name not in self.specs, f"field {name!r} is given twice")
        d = spec.diffusion_um2_per_min
        _check(_finite(d) and d >= 0,
               f"field {name!r}: diffusion_um2_per_min must be >= 0 and finite, got {d!r}")
        lam = spec.decay_per_min
        _check(_finite(lam) and lam >= 0,
               f"field {name!r}: decay_per_min must be >= 0 and finite, got {lam!r}")
        _check(spec.boundary in BOUNDARIES,
               f"field {name!r}: boundary must be one of {BOUNDARIES}, got {spec.boundary!r}")
        ub = spec.boundary_value
        _check(_finite(ub) and ub >= 0,
               f"field {name!r}: boundary_value must be >= 0 and finite, got {ub!r}")
        hmax = spec.max_substep_min
        _check(isinstance(hmax, numbers.Real) and hmax > 0,
               f"field {name!r}: max_substep_min must be > 0, got {hmax!r}")
        n_sub = max(1, math.ceil(self.dt_min / hmax - 1e-9))
        h = self.dt_min / n_sub
        r = h * d / self.dx_um**2
        dirichlet = spec.boundary == "dirichlet"
        nx, ny = self.shape
        self.specs[name] = spec
        self.n_substeps[name] = n_sub
        self.substep_min[name] = h
        self._consts[name] = lod.FieldConstants(
            float(h), float(lam), int(n_sub), bool(d != 0),
            lod.axis_factors(nx, r, dirichlet, ub),
            lod.axis_factors(ny, r, dirichlet, ub, length=lod.padded(ny)))

    def _source(self, name: str, label: str, x) -> np.ndarray | None:
        if x is None:
            return None
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != self.shape:  # (messages are formatted only on failure: a hot path)
            raise ValueError(f"field {name!r}: {label} has shape {x.shape}, expected "
                             f"{self.shape}")
        return x

    def advance(self, name: str, u: np.ndarray, *, release: np.ndarray | None = None,
                uptake: np.ndarray | None = None, supply_rate: np.ndarray | None = None,
                supply_target: np.ndarray | None = None) -> None:
        """Advance field ``name`` (array u, modified in place) by one model step dt_min.

        Source arrays are (nx, ny) float64 or None (zero): release (concentration/min),
        uptake and supply_rate (1/min), supply_target (concentration); all >= 0, else
        ValueError.
        """
        if name not in self.specs:
            raise KeyError(f"unknown field {name!r}; known: {sorted(self.specs)}")
        if not (isinstance(u, np.ndarray) and u.dtype == np.float64 and u.shape == self.shape
                and u.flags.c_contiguous and u.flags.writeable):
            raise ValueError(f"field {name!r}: u must be a writeable C-contiguous float64 "
                             f"array of shape {self.shape}")
        release = self._source(name, "release", release)
        uptake = self._source(name, "uptake", uptake)
        supply_rate = self._source(name, "supply_rate", supply_rate)
        supply_target = self._source(name, "supply_target", supply_target)
        bad = lod.field_step(self._scratch, self._consts[name],
                             lod.SourceTerms(release, uptake, supply_rate, supply_target), u)
        if bad:
            raise self.bad_sources(name, bad)

    def kernel_args(self, name: str) -> lod.FieldConstants:
        """Field ``name``'s constants for compiled callers (:mod:`.stepper`): sub-step h
        (min), decay (1/min), sub-steps per model step, whether it diffuses, and its x and
        y Thomas factors."""
        return self._consts[name]

    def scratch(self) -> lod.Scratch:
        """This solver's scratch (padded field, reaction, work), for compiled callers."""
        return self._scratch

    @staticmethod
    def bad_sources(name: str, bad: int) -> ValueError:
        """The error for ``bad`` negative or non-finite source values of field ``name``."""
        return ValueError(f"field {name!r}: {bad} source values are negative or not finite "
                          "(the field is left unchanged)")
