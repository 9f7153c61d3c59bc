"""Plain numpy/scipy version of the fields' sub-step, for tests and the benchmark only.

The same scheme as :mod:`.lod`, written for reading: the implicit reaction, then the
x and y backward-Euler sweeps, each solving the tridiagonal system of every line at once
with :func:`scipy.linalg.solve_banded` (the matrices are built here from ``r = h D /
dx^2``, independently of the kernels' Thomas factors).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_banded

__all__ = ["line_matrix", "reference_step"]


def line_matrix(n: int, r: float, boundary: str) -> np.ndarray:
    """Banded form (3, n) of ``I - r d2`` on a line of n voxels (for ``solve_banded``).

    "noflux": the ghost voxel beyond each edge equals the edge voxel, so the edge row is
    ``(1 + r) u_0 - r u_1``. "dirichlet": the ghost voxel is a fixed value, which moves to
    the right-hand side, so the edge row keeps ``1 + 2r`` on the diagonal.
    """
    ab = np.empty((3, n))
    ab[0] = -r  # super-diagonal (ab[0, 0] unused)
    ab[1] = 1.0 + 2.0 * r
    ab[2] = -r  # sub-diagonal (ab[2, -1] unused)
    if boundary == "noflux":
        ab[1, 0] = ab[1, -1] = 1.0 + r
    return ab


def _sweep(rhs: np.ndarray, r: float, boundary: str, boundary_value: float) -> np.ndarray:
    """Solve ``(I - r d2/dx0^2) out = rhs`` along axis 0 for every column of ``rhs``."""
    rhs = rhs.copy()
    if boundary == "dirichlet":
        rhs[0] += r * boundary_value
        rhs[-1] += r * boundary_value
    return solve_banded((1, 1), line_matrix(rhs.shape[0], r, boundary), rhs)


def reference_step(
    u: np.ndarray,
    *,
    h: float,
    diffusion: float,
    dx: float,
    decay: float = 0.0,
    boundary: str = "noflux",
    boundary_value: float = 0.0,
    release: np.ndarray | None = None,
    uptake: np.ndarray | None = None,
    supply_rate: np.ndarray | None = None,
    supply_target: np.ndarray | None = None,
) -> np.ndarray:
    """One sub-step of length h (min) of field u (nx, ny); returns the new field.

    diffusion in um^2/min, dx in um, decay in 1/min; the optional arrays (nx, ny) are
    release (conc/min), uptake and supply_rate (1/min) and supply_target (conc).
    """
    zero = np.zeros_like(u)
    s = zero if release is None else release
    k = zero if uptake is None else uptake
    p = zero if supply_rate is None else supply_rate
    target = zero if supply_target is None else supply_target
    u = (u + h * (s + p * target)) / (1.0 + h * (decay + k + p))
    r = h * diffusion / dx**2
    u = _sweep(u, r, boundary, boundary_value)  # lines along x
    return np.ascontiguousarray(_sweep(u.T, r, boundary, boundary_value).T)  # lines along y
