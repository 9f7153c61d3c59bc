"""Quasi-steady and fully implicit field solves by geometric multigrid (numba).

Solves, on an (nx, ny) grid of ``dx`` um voxels with the five-point Laplacian,

    -D lap(u) + c(x) u = f(x)          D in um^2/min, c in 1/min, f in [u]/min,

with either a Dirichlet boundary (u = ``boundary_value`` on a ghost layer one voxel
outside the domain) or a no-flux one (zero gradient). ``c`` collects decay, uptake and
vessel supply rates, ``f`` release plus supply times target. With ``dt_min = h`` the same
solver takes one unsplit backward-Euler step: c -> c + 1/h, f -> f + u_old/h.

Coarsening is cell-centred: a coarse cell merges 2 x 2 fine cells, and along an axis with
an odd number of cells the last coarse cell merges 3, so any nx, ny >= 3 works without
padding and coarse cells stay within a 2:3 aspect ratio. Coarse levels are finite-volume
rediscretisations on these (slightly non-uniform, tensor-product) grids with the
area-weighted average of ``c``; the Dirichlet boundary stays at the finest ghost-cell
centres on every level. Residuals are restricted by area-weighted averaging; corrections
are prolonged by bilinear interpolation between cell centres (towards zero at a Dirichlet
boundary, flat at a no-flux one). Coarsening stops when an axis has fewer than 4 cells;
that grid is solved exactly by a banded Cholesky factorisation (a grid thinner than 4
cells is solved that way at full size, in one cycle).

A V(1, 1) cycle by default: red-black Gauss-Seidel (sequential, so results are
bit-identical from run to run), whose finest residual after the pre-smoothing is both
the convergence check and the coarse right-hand side. The exact discrete solution is
>= 0 when f >= 0 and the boundary value >= 0 (an M-matrix); the iterates can undershoot
by about the tolerance where u is ~0 (e.g. -3e-12 mmHg in an anoxic core), so in that
case the result is clipped at 0, which never moves it away from the exact solution.
"""

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numba import njit

__all__ = ["SteadySolver", "SolveInfo", "ConvergenceError", "reference_solve"]

# per-axis tables: float rows, then int rows (numbered on, as in the tuple from _axis);
# each level holds n + 1 entries
_AM, _AP, _S, _W, _RW, _PW0, _PW1 = range(7)
_AGG, _P0, _P1 = range(7, 10)
# status codes returned by the compiled driver
_OK, _BAD_C, _SINGULAR, _NAN = 0, 1, 2, 3
_JIT = dict(cache=True, error_model="numpy")  # numpy error model: no zero-division checks


class ConvergenceError(RuntimeError):
    """The multigrid iteration did not reach its tolerance within ``max_cycles``."""


@dataclass(frozen=True)
class SolveInfo:
    """Outcome of one solve.

    ``cycles`` counts V-cycles (coarse-grid corrections); the tolerance is checked before
    the first and after each cycle's pre-smoothing, so a solve may end on a pre-smoothing.
    ``residual`` and ``initial_residual`` are ||b - A u||_2 / ||b||_2, b being ``f``
    (plus ``u_old/h``) plus the Dirichlet boundary terms, at the end and at the start.
    """

    cycles: int
    residual: float
    initial_residual: float


# ----------------------------------------------------------------------------- kernels
# Every level is stored in "per area" form: row (i, j) of A u reads
#   d[i, j] u[i, j] - amx[i] u[i-1, j] - apx[i] u[i+1, j] - amy[j] u[i, j-1] - apy[j] u[i, j+1]
# with d = c + amx + apx + amy + apy; out-of-grid neighbours take the ghost value ``ub``
# (their coefficient is 0 at a no-flux boundary).
@njit(**_JIT)
def _sweep(u, f, dinv, amx, apx, amy, apy, ky, ghost, ub, tmp):
    """One red-black Gauss-Seidel sweep in place; red runs one row ahead of black.

    ``dinv`` = 1 / d. Each row's update is computed for the whole row into ``tmp`` (this
    vectorises), then only the cells of the row's colour are written back. ``ky`` > 0
    says amy = apy = ky away from the y ends (a uniform grid), which saves two loads.
    """
    nx, ny = u.shape
    for it in range(nx + 1):
        for color in range(2):
            i = it - color
            if i < 0 or i >= nx:
                continue
            un = u[i - 1] if i > 0 else ghost
            us = u[i + 1] if i < nx - 1 else ghost
            ui, fi, di = u[i], f[i], dinv[i]
            a, b = amx[i], apx[i]
            tmp[0] = (fi[0] + a * un[0] + b * us[0] + amy[0] * ub + apy[0] * ui[1]) * di[0]
            if ky > 0.0:
                for j in range(1, ny - 1):
                    tmp[j] = (fi[j] + a * un[j] + b * us[j] + ky * (ui[j - 1] + ui[j + 1])) * di[j]
            else:
                for j in range(1, ny - 1):
                    tmp[j] = (fi[j] + a * un[j] + b * us[j] + amy[j] * ui[j - 1]
                              + apy[j] * ui[j + 1]) * di[j]
            j = ny - 1
            tmp[j] = (fi[j] + a * un[j] + b * us[j] + amy[j] * ui[j - 1] + apy[j] * ub) * di[j]
            for j in range((i + color) & 1, ny, 2):
                ui[j] = tmp[j]


@njit(**_JIT)
def _residual(u, f, d, amx, apx, amy, apy, ghost, ub, aggx, rwx, rwy, rc, row):
    """Residual f - A u, area-averaged into the coarse array ``rc``; returns sum(r^2).

    The averaging along y is :func:`_restrict_row`.
    """
    nx, ny = u.shape
    rc[:] = 0.0
    s0 = s1 = s2 = s3 = 0.0
    m4 = ny - ny % 4
    for i in range(nx):
        un = u[i - 1] if i > 0 else ghost
        us = u[i + 1] if i < nx - 1 else ghost
        ui, fi, di = u[i], f[i], d[i]
        a, b = amx[i], apx[i]
        row[0] = fi[0] + a * un[0] + b * us[0] + amy[0] * ub + apy[0] * ui[1] - di[0] * ui[0]
        for j in range(1, ny - 1):
            row[j] = (fi[j] + a * un[j] + b * us[j] + amy[j] * ui[j - 1] + apy[j] * ui[j + 1]
                      - di[j] * ui[j])
        j = ny - 1
        row[j] = fi[j] + a * un[j] + b * us[j] + amy[j] * ui[j - 1] + apy[j] * ub - di[j] * ui[j]
        for j in range(0, m4, 4):
            s0 += row[j] * row[j]
            s1 += row[j + 1] * row[j + 1]
            s2 += row[j + 2] * row[j + 2]
            s3 += row[j + 3] * row[j + 3]
        for j in range(m4, ny):
            s0 += row[j] * row[j]
        _restrict_row(rc[aggx[i]], rwx[i], rwy, row, ny)
    return (s0 + s1) + (s2 + s3)


@njit(**_JIT)
def _restrict_row(out_row, w, rwy, row, ny):
    """Add fine row ``row[:ny]`` (weight ``w``) area-averaged along y into ``out_row``.

    Coarse cell J takes fine cells 2J, 2J + 1 (and 2J + 2 for the last one when ny is
    odd), or just cell J when ``out_row`` is as long as the fine row (thin grids).
    """
    nyc = out_row.shape[0]
    if nyc == ny:
        for j in range(ny):
            out_row[j] += w * rwy[j] * row[j]
        return
    for jc in range(nyc - 1):
        j = 2 * jc
        out_row[jc] += w * (rwy[j] * row[j] + rwy[j + 1] * row[j + 1])
    jl = 2 * (nyc - 1)
    acc = rwy[jl] * row[jl] + rwy[jl + 1] * row[jl + 1]
    if ny - jl == 3:
        acc += rwy[jl + 2] * row[jl + 2]
    out_row[nyc - 1] += w * acc


@njit(**_JIT)
def _restrict(a, out, aggx, rwx, rwy):
    """Area-weighted average of ``a`` over each coarse cell into ``out`` (as _residual)."""
    nx, ny = a.shape
    out[:] = 0.0
    for i in range(nx):
        _restrict_row(out[aggx[i]], rwx[i], rwy, a[i], ny)


@njit(**_JIT)
def _add_diag(c, dinv, shift, sx, sy):
    """Reaction rates to the diagonal in place, d = c + shift + sx[i] + sy[j]; 1/d to dinv."""
    nx, ny = c.shape
    for i in range(nx):
        ci, ii, s = c[i], dinv[i], sx[i] + shift
        for j in range(ny):
            ci[j] += s + sy[j]
            ii[j] = 1.0 / ci[j]


@njit(**_JIT)
def _prolong_add(u, e, p0x, p1x, w0x, w1x, p0y, p1y, w0y, w1y, ybuf):
    """u += bilinear interpolation of the coarse correction ``e``.

    Each coarse row is first interpolated along y into ``ybuf``; away from the ends fine
    cells 2J + 1 and 2J + 2 lie between coarse cells J and J + 1.
    """
    nx, ny = u.shape
    nxc, nyc = e.shape
    y = ybuf[:nxc * ny].reshape((nxc, ny))
    jl = 2 * nyc - 1
    for ic in range(nxc):
        ei, yi = e[ic], y[ic]
        if nyc == ny:
            for j in range(ny):
                yi[j] = ei[j]
            continue
        yi[0] = w0y[0] * ei[p0y[0]] + w1y[0] * ei[p1y[0]]
        for jc in range(nyc - 1):
            j = 2 * jc + 1
            yi[j] = w0y[j] * ei[jc] + w1y[j] * ei[jc + 1]
            yi[j + 1] = w0y[j + 1] * ei[jc] + w1y[j + 1] * ei[jc + 1]
        for j in range(jl, ny):
            yi[j] = w0y[j] * ei[p0y[j]] + w1y[j] * ei[p1y[j]]
    for i in range(nx):
        ui, ya, yb, a, b = u[i], y[p0x[i]], y[p1x[i]], w0x[i], w1x[i]
        for j in range(ny):
            ui[j] += a * ya[j] + b * yb[j]


@njit(**_JIT)
def _band_factor(band, d, amx, wx, amy, wy):
    """Assemble the (symmetric, area-integrated) operator in band form and Cholesky it.

    Unknowns are numbered along the shorter axis first; ``band[k, q]`` holds L[k, k - q].
    Returns False if a pivot is not positive.
    """
    nx, ny = d.shape
    along_y = ny <= nx
    bw = ny if along_y else nx
    n = nx * ny
    band[:] = 0.0
    for i in range(nx):
        for j in range(ny):
            k = i * ny + j if along_y else j * nx + i
            v = wx[i] * wy[j]
            band[k, 0] = v * d[i, j]
            if j > 0:
                band[k, 1 if along_y else nx] = -v * amy[j]
            if i > 0:
                band[k, ny if along_y else 1] = -v * amx[i]
    for k in range(n):
        m0 = max(0, k - bw)
        for m in range(m0, k):
            s = band[k, k - m]
            for p in range(max(m0, m - bw), m):
                s -= band[k, k - p] * band[m, m - p]
            band[k, k - m] = s / band[m, 0]
        s = band[k, 0]
        for p in range(m0, k):
            s -= band[k, k - p] ** 2
        if not s > 0.0:
            return False
        band[k, 0] = np.sqrt(s)
    return True


@njit(**_JIT)
def _band_solve(band, vec, u, f, wx, wy):
    """u = A^-1 (area * f) with the factor from :func:`_band_factor`."""
    nx, ny = u.shape
    along_y = ny <= nx
    bw = ny if along_y else nx
    n = nx * ny
    for i in range(nx):
        for j in range(ny):
            vec[i * ny + j if along_y else j * nx + i] = wx[i] * wy[j] * f[i, j]
    for k in range(n):
        s = vec[k]
        for m in range(max(0, k - bw), k):
            s -= band[k, k - m] * vec[m]
        vec[k] = s / band[k, 0]
    for k in range(n - 1, -1, -1):
        s = vec[k]
        for m in range(k + 1, min(n, k + bw + 1)):
            s -= band[m, m - k] * vec[m]
        vec[k] = s / band[k, 0]
    for i in range(nx):
        for j in range(ny):
            u[i, j] = vec[i * ny + j if along_y else j * nx + i]


@njit(**_JIT)
def _prepare(u, c, f, d, dinv, fw, inv_dt, ub, amx, apx, sx, amy, apy, sy):
    """Finest diagonal into ``d``, 1/d into ``dinv``, f + u/h into ``fw`` (if inv_dt > 0).

    Returns (number of c values not >= 0, number of right-hand side values < 0, ||b||^2),
    b being the right-hand side with the Dirichlet boundary terms.
    """
    nx, ny = u.shape
    bad = 0
    neg = 0
    b2 = 0.0
    bl, br = amy[0] * ub, apy[ny - 1] * ub
    for i in range(nx):
        ci, fi, di, ii = c[i], f[i], d[i], dinv[i]
        bx = ub * ((amx[0] if i == 0 else 0.0) + (apx[nx - 1] if i == nx - 1 else 0.0))
        s = sx[i] + inv_dt
        for j in range(ny):
            bad += not ci[j] >= 0.0
            di[j] = ci[j] + s + sy[j]
            ii[j] = 1.0 / di[j]
        if inv_dt > 0.0:
            ui, fwi = u[i], fw[i]
            for j in range(ny):
                fwi[j] = fi[j] + inv_dt * ui[j]
            fi = fwi
        for j in range(ny):
            neg += fi[j] < 0.0
        b2 += (fi[0] + bx + bl) ** 2 + (fi[ny - 1] + bx + br) ** 2
        for j in range(1, ny - 1):
            b2 += (fi[j] + bx) ** 2
    return bad, neg, b2


@njit(**_JIT)
def _axis(fa, ia, off, lev, n):
    """Views of one level's per-axis tables, float rows first then int rows."""
    o, e = off[lev], off[lev] + n + 1
    return (fa[_AM, o:e], fa[_AP, o:e], fa[_S, o:e], fa[_W, o:e], fa[_RW, o:e],
            fa[_PW0, o:e], fa[_PW1, o:e], ia[_AGG - 7, o:e], ia[_P0 - 7, o:e],
            ia[_P1 - 7, o:e])


@njit(**_JIT)
def _grid(buf, off2, shp, lev):
    o, nx, ny = off2[lev], shp[lev, 0], shp[lev, 1]
    return buf[o:o + nx * ny].reshape((nx, ny))


@njit(**_JIT)
def _mg_solve(u, c, f, d0, i0, fw, inv_dt, ub, ghost, zghost, fx, ix, offx, fy, iy, offy,
              shp, kys, off2, ubuf, fbuf, dbuf, ibuf, ybuf, band, vec, row, tol, max_cycles,
              fixed, nu1, nu2):
    """The whole solve; returns (status, cycles, residual, initial residual)."""
    nlev = shp.shape[0]
    lc = nlev - 1
    ax0 = _axis(fx, ix, offx, 0, shp[0, 0])
    ay0 = _axis(fy, iy, offy, 0, shp[0, 1])
    bad, neg, b2 = _prepare(u, c, f, d0, i0, fw, inv_dt, ub, ax0[_AM], ax0[_AP], ax0[_S],
                            ay0[_AM], ay0[_AP], ay0[_S])
    if inv_dt > 0.0:
        f = fw
    if bad > 0:
        return _BAD_C, 0, np.nan, np.nan
    if not np.isfinite(b2):
        return _NAN, 0, np.nan, np.nan
    if b2 == 0.0:
        u[:] = 0.0
        return _OK, 0, 0.0, 0.0
    bnorm = np.sqrt(b2)

    # coarse diagonals (from restricted c) and the coarsest factorisation, once per solve
    _restrict(c, _grid(dbuf, off2, shp, 1), ax0[_AGG], ax0[_RW], ay0[_RW])
    for lev in range(1, nlev):
        ax = _axis(fx, ix, offx, lev, shp[lev, 0])
        ay = _axis(fy, iy, offy, lev, shp[lev, 1])
        dl = _grid(dbuf, off2, shp, lev)
        if lev < lc:
            _restrict(dl, _grid(dbuf, off2, shp, lev + 1), ax[_AGG], ax[_RW], ay[_RW])
        _add_diag(dl, _grid(ibuf, off2, shp, lev), inv_dt, ax[_S], ay[_S])
    axc = _axis(fx, ix, offx, lc, shp[lc, 0])
    ayc = _axis(fy, iy, offy, lc, shp[lc, 1])
    if not _band_factor(band, _grid(dbuf, off2, shp, lc), axc[_AM], axc[_W], ayc[_AM], ayc[_W]):
        return _SINGULAR, 0, np.nan, np.nan

    # The finest residual is the convergence check and, restricted, the first coarse rhs.
    # With pre-smoothing, a cycle checks after it and may stop there.
    f1 = _grid(fbuf, off2, shp, 1)
    r2 = _residual(u, f, d0, ax0[_AM], ax0[_AP], ay0[_AM], ay0[_AP], ghost, ub,
                   ax0[_AGG], ax0[_RW], ay0[_RW], f1, row)
    res = res0 = np.sqrt(r2) / bnorm
    measured = True  # res belongs to the current u
    cycles = 0
    while True:
        if not np.isfinite(res):
            return _NAN, cycles, res, res0
        if fixed > 0:
            if cycles >= fixed:
                break
        elif (measured and res <= tol) or cycles >= max_cycles:
            break
        if nu1 > 0:
            for _ in range(nu1):
                _sweep(u, f, i0, ax0[_AM], ax0[_AP], ay0[_AM], ay0[_AP], kys[0], ghost, ub, row)
            r2 = _residual(u, f, d0, ax0[_AM], ax0[_AP], ay0[_AM], ay0[_AP], ghost, ub,
                           ax0[_AGG], ax0[_RW], ay0[_RW], f1, row)
            res = np.sqrt(r2) / bnorm
            if not np.isfinite(res):
                return _NAN, cycles, res, res0
            if fixed == 0 and res <= tol:
                break
        # down: coarse corrections start at zero, with a homogeneous boundary
        for lev in range(1, lc):
            ax = _axis(fx, ix, offx, lev, shp[lev, 0])
            ay = _axis(fy, iy, offy, lev, shp[lev, 1])
            ul = _grid(ubuf, off2, shp, lev)
            fl = _grid(fbuf, off2, shp, lev)
            ul[:] = 0.0
            for _ in range(nu1):
                _sweep(ul, fl, _grid(ibuf, off2, shp, lev), ax[_AM], ax[_AP], ay[_AM],
                       ay[_AP], kys[lev], zghost, 0.0, row)
            _residual(ul, fl, _grid(dbuf, off2, shp, lev), ax[_AM], ax[_AP], ay[_AM], ay[_AP],
                      zghost, 0.0, ax[_AGG], ax[_RW], ay[_RW], _grid(fbuf, off2, shp, lev + 1),
                      row)
        _band_solve(band, vec, _grid(ubuf, off2, shp, lc), _grid(fbuf, off2, shp, lc),
                    axc[_W], ayc[_W])
        # up: correct, post-smooth
        for lev in range(lc - 1, -1, -1):
            ax = _axis(fx, ix, offx, lev, shp[lev, 0])
            ay = _axis(fy, iy, offy, lev, shp[lev, 1])
            if lev == 0:
                ul, fl, il, gh, bv = u, f, i0, ghost, ub
            else:
                ul = _grid(ubuf, off2, shp, lev)
                fl = _grid(fbuf, off2, shp, lev)
                il = _grid(ibuf, off2, shp, lev)
                gh, bv = zghost, 0.0
            _prolong_add(ul, _grid(ubuf, off2, shp, lev + 1), ax[_P0], ax[_P1], ax[_PW0],
                         ax[_PW1], ay[_P0], ay[_P1], ay[_PW0], ay[_PW1], ybuf)
            for _ in range(nu2):
                _sweep(ul, fl, il, ax[_AM], ax[_AP], ay[_AM], ay[_AP], kys[lev], gh, bv, row)
        cycles += 1
        measured = nu1 == 0 or (fixed > 0 and cycles >= fixed) or cycles >= max_cycles
        if measured:
            r2 = _residual(u, f, d0, ax0[_AM], ax0[_AP], ay0[_AM], ay0[_AP], ghost, ub,
                           ax0[_AGG], ax0[_RW], ay0[_RW], f1, row)
            res = np.sqrt(r2) / bnorm
    if neg == 0 and ub >= 0.0:  # the exact solution is >= 0: drop round-off negatives
        for i in range(u.shape[0]):
            ui = u[i]
            for j in range(u.shape[1]):
                ui[j] = max(ui[j], 0.0)
    return _OK, cycles, res, res0


# --------------------------------------------------------------------------- hierarchy
def _axis_levels(n: int, dx: float, d: float, dirichlet: bool, nlev: int, identity: bool):
    """Per-level tables of one axis: coefficients, widths, restriction and prolongation."""
    widths, aggs = [np.full(n, float(dx))], []
    for _ in range(nlev - 1):
        m = widths[-1].size
        agg = np.arange(m) if identity else np.minimum(np.arange(m) // 2, m // 2 - 1)
        widths.append(np.bincount(agg, weights=widths[-1]))
        aggs.append(agg)
    lo, hi = -0.5 * dx, (n + 0.5) * dx  # Dirichlet points: the finest ghost-cell centres
    centres = [np.cumsum(w) - 0.5 * w for w in widths]
    tables = []
    for lev, (w, x) in enumerate(zip(widths, centres)):
        m = w.size
        g = np.zeros(m + 1)  # face conductances D / distance, um/min
        g[1:m] = d / np.diff(x)
        if dirichlet:
            g[0], g[m] = d / (x[0] - lo), d / (hi - x[-1])
        fl = np.zeros((7, m + 1))
        il = np.zeros((3, m + 1), dtype=np.int64)
        fl[_AM, :m], fl[_AP, :m] = g[:-1] / w, g[1:] / w
        fl[_S] = fl[_AM] + fl[_AP]
        fl[_W, :m] = w
        if lev < nlev - 1:
            agg, wc, xc = aggs[lev], widths[lev + 1], centres[lev + 1]
            il[_AGG - 7, :m] = agg
            fl[_RW, :m] = w / wc[agg]
            p0, p1, pw0, pw1 = il[_P0 - 7], il[_P1 - 7], fl[_PW0], fl[_PW1]
            for i, xi in enumerate(x):
                if xi <= xc[0] or xi >= xc[-1]:
                    k = 0 if xi <= xc[0] else xc.size - 1
                    edge = lo if k == 0 else hi
                    p0[i] = p1[i] = k
                    pw0[i] = (xi - edge) / (xc[k] - edge) if dirichlet else 1.0
                else:
                    k = min(int(np.searchsorted(xc, xi, side="right")) - 1, xc.size - 2)
                    t = (xi - xc[k]) / (xc[k + 1] - xc[k])
                    p0[i], p1[i], pw0[i], pw1[i] = k, k + 1, 1.0 - t, t
            if not identity:  # the pattern _prolong_add relies on
                j = np.arange(1, 2 * wc.size - 1)
                assert (p0[j] == (j - 1) // 2).all() and (p1[j] == p0[j] + 1).all()
        tables.append((fl, il))
    return tables


def _pack(tables):
    sizes = [fl.shape[1] for fl, _ in tables]
    off = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return (np.ascontiguousarray(np.concatenate([fl for fl, _ in tables], axis=1)),
            np.ascontiguousarray(np.concatenate([il for _, il in tables], axis=1)), off)


# ------------------------------------------------------------------------------ solver
class SteadySolver:
    """Multigrid solver of -D lap(u) + c u = f on a fixed grid (see the module docstring).

    Args:
        shape: (nx, ny) voxels, each >= 3.
        dx_um: voxel size, um.
        diffusion_um2_per_min: D, um^2/min (>= 0).
        boundary: "dirichlet" (u = ``boundary_value`` one voxel outside) or "noflux".
        boundary_value: Dirichlet value, in the field's unit.
        tol: relative residual ||b - A u|| / ||b|| to reach.
        max_cycles: V-cycles allowed before failing.
        on_failure: "raise" :class:`ConvergenceError` or "warn" (RuntimeWarning) when
            ``tol`` is not met within ``max_cycles``.
        pre_sweeps, post_sweeps: red-black Gauss-Seidel sweeps before and after each
            coarse-grid correction.

    All level arrays are allocated here, about 4 fine-grid float64 arrays (plus one for
    the backward-Euler right-hand side, on the first solve with ``dt_min``); :meth:`solve`
    allocates nothing. One solver serves one solve at a time (not thread-safe).
    """

    def __init__(self, shape: tuple[int, int], dx_um: float, diffusion_um2_per_min: float,
                 boundary: Literal["dirichlet", "noflux"] = "dirichlet",
                 boundary_value: float = 0.0, *, tol: float = 1e-8, max_cycles: int = 30,
                 on_failure: Literal["raise", "warn"] = "raise", pre_sweeps: int = 1,
                 post_sweeps: int = 1):
        nx, ny = (int(s) for s in shape)
        if min(nx, ny) < 3:
            raise ValueError(f"grid {shape} too small: need nx, ny >= 3")
        if not dx_um > 0 or not diffusion_um2_per_min >= 0:
            raise ValueError("need dx_um > 0 and diffusion_um2_per_min >= 0")
        if boundary not in ("dirichlet", "noflux"):
            raise ValueError(f"boundary must be 'dirichlet' or 'noflux', not {boundary!r}")
        if on_failure not in ("raise", "warn"):
            raise ValueError(f"on_failure must be 'raise' or 'warn', not {on_failure!r}")
        if not tol > 0 or max_cycles < 1 or pre_sweeps < 0 or post_sweeps < 1:
            raise ValueError("need tol > 0, max_cycles >= 1, pre_sweeps >= 0, post_sweeps >= 1")
        self.shape = (nx, ny)
        self.dx_um = float(dx_um)
        self.diffusion_um2_per_min = float(diffusion_um2_per_min)
        self.boundary = boundary
        self.tol, self.max_cycles, self.on_failure = float(tol), int(max_cycles), on_failure
        self.pre_sweeps, self.post_sweeps = int(pre_sweeps), int(post_sweeps)
        dirichlet = boundary == "dirichlet"
        self.boundary_value = float(boundary_value) if dirichlet else 0.0

        shapes = [(nx, ny)]
        while min(shapes[-1]) >= 4:
            shapes.append((shapes[-1][0] // 2, shapes[-1][1] // 2))
        identity = len(shapes) == 1  # a thin grid: one exact solve at full size
        if identity:
            shapes.append((nx, ny))
        nlev = len(shapes)
        d = self.diffusion_um2_per_min
        self._fx, self._ix, self._offx = _pack(_axis_levels(nx, dx_um, d, dirichlet, nlev,
                                                            identity))
        self._fy, self._iy, self._offy = _pack(_axis_levels(ny, dx_um, d, dirichlet, nlev,
                                                            identity))
        self._shp = np.array(shapes, dtype=np.int64)
        self._kys = np.zeros(nlev)  # uniform interior y coefficient per level, or 0
        for lev, (_, m) in enumerate(shapes):
            o = self._offy[lev]
            inner = self._fy[[_AM, _AP], o + 1:o + m - 1]
            if m >= 3 and (inner == inner[0, 0]).all():
                self._kys[lev] = inner[0, 0]
        sizes = [a * b for a, b in shapes]
        self._off2 = np.array([0, 0] + list(np.cumsum(sizes[1:-1])), dtype=np.int64)[:nlev]
        total = sum(sizes[1:])
        self._ubuf, self._fbuf, self._dbuf, self._ibuf = (np.zeros(total) for _ in range(4))
        self._d0, self._i0 = np.zeros((nx, ny)), np.zeros((nx, ny))
        self._ybuf = np.zeros(max(a * b for (a, _), (_, b) in zip(shapes[1:], shapes)))
        ncx, ncy = shapes[-1]
        self._band = np.zeros((ncx * ncy, min(ncx, ncy) + 1))
        self._vec = np.zeros(ncx * ncy)
        self._row = np.zeros(max(nx, ny))
        self._ghost = np.full(max(nx, ny), self.boundary_value)
        self._zghost = np.zeros(max(nx, ny))
        self._fw = np.zeros((1, 1))

    @property
    def levels(self) -> list[tuple[int, int]]:
        """Grid shapes from finest to coarsest (the last is solved directly)."""
        return [tuple(int(v) for v in s) for s in self._shp]

    def solve(self, u: np.ndarray, c: np.ndarray, f: np.ndarray, *,
              dt_min: float | None = None, cycles: int | None = None) -> SolveInfo:
        """Solve in place, starting from ``u``.

        Args:
            u: (nx, ny) float64, C-contiguous; initial guess in, solution out. With
                ``dt_min`` it is also u_old of the backward-Euler step.
            c: (nx, ny) reaction rate >= 0, 1/min (decay + uptake + supply).
            f: (nx, ny) source, [u]/min (release + supply * target).
            dt_min: if given, one backward-Euler step of this length (min) instead of the
                steady state.
            cycles: if given, run exactly this many V-cycles (no tolerance check).

        Returns the cycles run (0 if ``u`` already met ``tol``) and the relative residuals.
        Raises :class:`ConvergenceError` (or warns, see ``on_failure``) if ``tol`` is not
        met within ``max_cycles``; ValueError for c < 0 or a singular problem.
        """
        if u.shape != self.shape or c.shape != self.shape or f.shape != self.shape:
            raise ValueError(f"u, c, f must have shape {self.shape}")
        if u.dtype != np.float64 or not u.flags.c_contiguous or not u.flags.writeable:
            raise TypeError("u must be a writeable C-contiguous float64 array")
        c = np.ascontiguousarray(c, dtype=np.float64)
        f = np.ascontiguousarray(f, dtype=np.float64)
        inv_dt = 0.0
        if dt_min is not None:
            if not dt_min > 0:
                raise ValueError(f"dt_min must be > 0, not {dt_min}")
            inv_dt = 1.0 / dt_min
            if self._fw.shape != self.shape:
                self._fw = np.zeros(self.shape)
        fixed = 0 if cycles is None else int(cycles)
        if cycles is not None and fixed < 1:
            raise ValueError("cycles must be >= 1")
        status, ncyc, res, res0 = _mg_solve(
            u, c, f, self._d0, self._i0, self._fw, inv_dt, self.boundary_value, self._ghost,
            self._zghost, self._fx, self._ix, self._offx, self._fy, self._iy, self._offy,
            self._shp, self._kys, self._off2, self._ubuf, self._fbuf, self._dbuf, self._ibuf,
            self._ybuf, self._band, self._vec,
            self._row, self.tol, self.max_cycles, fixed, self.pre_sweeps, self.post_sweeps)
        if status == _BAD_C:
            raise ValueError("c must be >= 0 everywhere (and not NaN)")
        if status == _SINGULAR:
            raise ValueError("singular problem: with no-flux boundaries c must be > 0 somewhere")
        if status == _NAN:
            raise FloatingPointError("non-finite values in f, u or the iteration")
        info = SolveInfo(int(ncyc), float(res), float(res0))
        if fixed == 0 and not res <= self.tol:
            msg = (f"multigrid reached relative residual {res:.3g} > tol {self.tol:g} "
                   f"after {ncyc} cycles")
            if self.on_failure == "raise":
                raise ConvergenceError(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return info


# --------------------------------------------------------------------------- reference
def reference_solve(c: np.ndarray, f: np.ndarray, dx_um: float, diffusion_um2_per_min: float,
                    boundary: Literal["dirichlet", "noflux"] = "dirichlet",
                    boundary_value: float = 0.0, *, u_old: np.ndarray | None = None,
                    dt_min: float | None = None) -> np.ndarray:
    """The same discrete problem assembled as a sparse matrix and solved directly (scipy).

    For tests. With ``dt_min`` = h solves (c + 1/h) u - D lap u = f + u_old/h.
    """
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    if boundary not in ("dirichlet", "noflux"):
        raise ValueError(f"boundary must be 'dirichlet' or 'noflux', not {boundary!r}")
    diag = np.array(c, dtype=float)
    rhs = np.array(f, dtype=float)
    nx, ny = diag.shape
    k = diffusion_um2_per_min / dx_um**2
    if dt_min is not None:
        if u_old is None:
            raise ValueError("dt_min needs u_old")
        diag += 1.0 / dt_min
        rhs += np.asarray(u_old, dtype=float) / dt_min
    idx = np.arange(nx * ny).reshape(nx, ny)
    pairs = [(idx[1:, :], idx[:-1, :]), (idx[:, 1:], idx[:, :-1])]  # x and y neighbours
    rows = np.concatenate([m.ravel() for a, b in pairs for m in (a, b)])
    cols = np.concatenate([m.ravel() for a, b in pairs for m in (b, a)])
    diag += k * np.bincount(rows, minlength=nx * ny).reshape(nx, ny)
    if boundary == "dirichlet":  # ghost neighbours: k on the diagonal, k * value to the rhs
        ghosts = np.zeros((nx, ny))
        ghosts[[0, -1], :] += 1.0
        ghosts[:, [0, -1]] += 1.0
        diag += k * ghosts
        rhs += k * boundary_value * ghosts
    a = sparse.coo_matrix((np.full(rows.size, -k), (rows, cols)), shape=(nx * ny, nx * ny))
    return spsolve((a + sparse.diags(diag.ravel())).tocsc(), rhs.ravel()).reshape(nx, ny)
