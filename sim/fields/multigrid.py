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

Implementation (for speed; results are bit-identical to a plain scalar version of the same
operations, which the kernels were checked against on odd, thin and square grids in
every mode):

- every level is kept in 64-byte aligned scratch buffers with rows padded to a multiple
  of 8 and ghost rows (layout note above the kernels); the caller's u is copied in by
  the first pass and out (clipped) by the last;
- kernels use explicit 8-wide vectors (:mod:`.simd`) with the scalar code's operations
  per cell: a Gauss-Seidel row computes whole vectors and stores only its colour's lanes
  with a masked store (no ``tmp`` row and strided write-back); left and right neighbours
  are aligned vectors slid by one lane (no cache-line-straddling loads); the residual's
  sum of squares keeps the scalar code's four running sums (lanes 0-3 of a vector);
- one pass per level and stage of the cycle (:func:`_pass`) runs prolongation, the
  sweeps and the residual with its restriction as a wavefront over the rows; after a
  cycle's post-smoothing the next cycle's pre-smoothing and residual join that pass;
- 1/d is only recomputed for vectors of 8 cells whose diagonal changed since the last
  solve (the model changes c in ~1% of the cells per step, and IEEE division is the
  dearest operation here), and ||b||^2 (a sequential sum, so its order is kept) is only
  summed again from the first row whose f changed.

Solve times are in benchmarks/README.md (``bench_diffusion.py``).
"""

import warnings
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numba import njit

from .simd import (
    aligned_zeros,
    popcount,
    vadd,
    vbits_differ,
    vdiv,
    vge_bits,
    vlane,
    vload,
    vlt_bits,
    vmload,
    vmstore,
    vmul,
    vpairadd,
    vselect,
    vslide_down,
    vslide_up,
    vsplat,
    vstore,
    vstretch,
    vsub,
    vswaphalves,
)

__all__ = ["SteadySolver", "SolveInfo", "ConvergenceError", "reference_solve", "Hierarchy",
           "Settings"]

# per-axis tables: float rows, then int rows (numbered on, as in the fields of Axis);
# each level holds n + 1 entries
_AM, _AP, _S, _W, _RW, _PW0, _PW1 = range(7)
_AGG, _P0, _P1 = range(7, 10)
# status codes returned by the compiled driver
_OK, _BAD_C, _SINGULAR, _NAN = 0, 1, 2, 3
_JIT = dict(cache=True, error_model="numpy")  # numpy error model: no zero-division checks
# small helpers, inlined into the caller's IR: no call, and no reference counting of the
# arrays they are handed
_INLINE = dict(_JIT, inline="always")


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


# ---------------------------------------------------------------------- compiled state
# numba's disk cache pickles these classes by reference in its index files: after one is
# renamed or removed, stale cache files fail to load (AttributeError); delete __pycache__.
class LevelBuffers(NamedTuple):
    """Every level's values, each kind in one flat 64-byte aligned float64 buffer (see
    the layout note above the kernels).

    Attributes:
        U: u on the finest level (the field's unit), the coarse corrections below it.
        F: right-hand side ([u]/min): f (plus u_old/h) on the finest level, the
            restricted residuals below it.
        D: diagonal d = c + amx + apx + amy + apy (1/min).
        I: 1/d (min); inf where no d has been stored yet.
        C: c restricted to the coarse levels (1/min; the finest level's part is unused).
    """

    U: np.ndarray
    F: np.ndarray
    D: np.ndarray
    I: np.ndarray  # noqa: E741 - the buffer of 1/d, named as in the kernels
    C: np.ndarray


class AxisTables(NamedTuple):
    """One axis' tables of every level (:func:`_axis_levels`): level ``lev`` of n cells
    in columns off[lev] .. off[lev] + n (the last one spare).

    Attributes:
        f: float64 (7, columns): rows _AM and _AP, the coupling to the previous and the
            next cell (1/min); _S, their sum (1/min); _W, cell widths (um); _RW,
            restriction weights (width / coarse width); _PW0 and _PW1, prolongation
            weights of the two coarse cells a cell interpolates from.
        i: int64 (3, columns): rows _AGG - 7, the coarse cell that takes each cell;
            _P0 - 7 and _P1 - 7, the two coarse cells a cell interpolates from.
        off: int64 (levels,), each level's first column.
    """

    f: np.ndarray
    i: np.ndarray
    off: np.ndarray


class RhsCache(NamedTuple):
    """What the last solve kept of its finest right-hand side, so that the next one sums
    ||b||^2 again only from the first row whose f changed (:func:`_prepare`).

    Attributes:
        b2row: float64 (nx,), the running sum of b^2 ([u]^2/min^2) after each row.
        negrow: int64 (nx,), each row's count of negative right-hand side values.
        valid: int64 (1,), 1 if both belong to the f in the buffers (the last solve was
            a steady one, inv_dt = 0).
    """

    b2row: np.ndarray
    negrow: np.ndarray
    valid: np.ndarray


class Hierarchy(NamedTuple):
    """A :class:`SteadySolver`'s levels, tables and scratch: all that its compiled solve
    reads or writes besides u, c and f (allocated once, by the solver).

    Attributes:
        buf: the levels' values (:class:`LevelBuffers`).
        go: int64 (levels,), flat offset of each level's first (ghost) row in the buffers.
        pitch: int64 (levels,), each level's row length in the buffers (ny rounded up
            to 8).
        shape: int64 (levels, 2), each level's (nx, ny), finest first.
        yt: float64 (levels, 6 q), each level's padded y tables (layout note above the
            kernels): amy, apy (1/min), restriction weights, amy + apy (1/min),
            prolongation weights.
        ky: float64 (levels,), each level's uniform interior y coupling (1/min), or 0
            if it is not uniform.
        x, y: the per-axis tables (:class:`AxisTables`).
        ybuf: float64 scratch: a coarse correction interpolated along y.
        band: float64 (cells, bandwidth + 1), the coarsest level's Cholesky factor.
        vec: float64 (cells,), scratch of the coarsest solve.
        row: float64 scratch: one residual row.
        rhs: :class:`RhsCache`.
    """

    buf: LevelBuffers
    go: np.ndarray
    pitch: np.ndarray
    shape: np.ndarray
    yt: np.ndarray
    ky: np.ndarray
    x: AxisTables
    y: AxisTables
    ybuf: np.ndarray
    band: np.ndarray
    vec: np.ndarray
    row: np.ndarray
    rhs: RhsCache


class Settings(NamedTuple):
    """A :class:`SteadySolver`'s settings, as its compiled solve takes them.

    Attributes:
        boundary_value: the Dirichlet value (the field's unit; 0 with no-flux edges).
        tol: relative residual ||b - A u|| / ||b|| to reach.
        max_cycles: V-cycles allowed.
        pre_sweeps, post_sweeps: red-black Gauss-Seidel sweeps before and after each
            coarse-grid correction.
    """

    boundary_value: float
    tol: float
    max_cycles: int
    pre_sweeps: int
    post_sweeps: int


class Axis(NamedTuple):
    """One level's tables of one axis (views into :class:`AxisTables`, n + 1 entries):
    am, ap (coupling to the previous and the next cell, 1/min), s = am + ap (1/min), w
    (cell widths, um), rw, pw0, pw1 (restriction and prolongation weights), agg, p0, p1
    (coarse cell indices)."""

    am: np.ndarray
    ap: np.ndarray
    s: np.ndarray
    w: np.ndarray
    rw: np.ndarray
    pw0: np.ndarray
    pw1: np.ndarray
    agg: np.ndarray
    p0: np.ndarray
    p1: np.ndarray


class Grid(NamedTuple):
    """Where one level lies in the flat buffers: offset ``go`` of its first (ghost) row,
    row length ``p`` (values), and its ``nx`` x ``ny`` cells."""

    go: int
    p: int
    nx: int
    ny: int


class Level(NamedTuple):
    """One level as the kernels take it: its :class:`Grid` ``g``, x tables ``ax``
    (:class:`Axis`), padded y tables ``yt`` (its row of :attr:`Hierarchy.yt`) and uniform
    interior y coupling ``ky`` (1/min, or 0)."""

    g: Grid
    ax: Axis
    yt: np.ndarray
    ky: float


# ----------------------------------------------------------------------------- kernels
# Every level is stored in "per area" form: row (i, j) of A u reads
#   d[i, j] u[i, j] - amx[i] u[i-1, j] - apx[i] u[i+1, j] - amy[j] u[i, j-1] - apy[j] u[i, j+1]
# with d = c + amx + apx + amy + apy; out-of-grid neighbours take the ghost value ``ub``
# (their coefficient is 0 at a no-flux boundary).
#
# Layout: each level's u, f, d and 1/d live in flat 64-byte aligned buffers (U, F, D, I),
# as nx + 2 rows of ``p`` = ny rounded up to 8 values starting at the level's offset
# ``go``: row 0 and row nx + 1 are ghost rows (ub on the finest level, 0 on the coarse
# ones), interior row i starts at go + (i + 1) p. Kernels work on 8-wide vectors
# (:mod:`.simd`) with exactly the scalar code's operations per cell (no fused
# multiply-adds, no reassociation), so results are bit-identical to a scalar loop; the
# first and last cell of a row, whose stencils take the ghost value, are done in scalar
# code. A level's y tables ``yt`` are padded the same way: a flat array of _NYT rows of q
# values (_YAM, _YAP, _YRW, _YS, _YW0, _YW1: amy, apy, restriction weights, amy + apy,
# prolongation weights; zero beyond ny), read at flat index k q + j.
#
# Row loops are written out inside the kernels rather than called: an njit helper that
# takes arrays costs an atomic reference count increment and decrement per array and
# call, which for one call per row cost as much as the row's arithmetic.
_YAM, _YAP, _YRW, _YS, _YW0, _YW1 = range(6)
_NYT = 6


@njit(**_INLINE)
def _lanes(n, j0):
    """Bits of the vector lanes j0, ..., j0 + 7 that lie below ``n``."""
    k = n - j0
    return 0xFF if k >= 8 else (1 << k) - 1


@njit(**_JIT)
def _pass(B, lv, coarse, ub, prolong, nsw, res, ybuf, row):
    """One pass over level ``lv`` of the buffers ``B`` (ghost value ``ub``): optionally u
    += the prolonged correction, then ``nsw`` red-black Gauss-Seidel sweeps, then
    optionally the residual f - A u, area-averaged into F of the next coarser level (at
    :class:`Grid` ``coarse``), with ``row`` as scratch.

    The stages run as a wavefront over the rows, each stage a fixed number of rows behind
    the one before (prolong row i; red row i - 1; black row i - 2; red of the second
    sweep, row i - 3; ...; residual last), so a row is reused while in cache. Every cell
    sees exactly the values it would see with the stages run one after another over the
    whole grid (red only reads black cells and vice versa), so results are identical.
    ``ybuf`` holds the coarse correction already interpolated along y (:func:`_prolong_y`).

    Returns sum(r^2) over the residual (0 without it), summed as the scalar code did: four
    running sums over j mod 4 (the last ny mod 4 cells of a row go to the first), rows in
    order, then (s0 + s1) + (s2 + s3).
    """
    U, F, I, D = B.U, B.F, B.I, B.D
    out = F  # the restricted residual: the coarser level's right-hand side
    go, p, nx, ny = lv.g
    ax, yt, ky = lv.ax, lv.yt, lv.ky
    goc, pc, nyc = coarse.go, coarse.p, coarse.ny
    amx, apx, aggx, rwx = ax.am, ax.ap, ax.agg, ax.rw
    p0x, p1x, w0x, w1x = ax.p0, ax.p1, ax.pw0, ax.pw1
    q = yt.shape[0] // _NYT
    ya, yp, yr = _YAM * q, _YAP * q, _YRW * q
    zero, kv = vsplat(0.0), vsplat(ky)
    last, m8, m4, odd = ny - 1, ny - ny % 8, ny - ny % 4, ny & 1
    s0 = 1 if prolong else 0
    acc = zero
    for it in range(nx + s0 + 2 * nsw):
        if prolong and it < nx:  # u += a ya + b yb, ya and yb rows of ybuf
            r, y0, y1 = go + (it + 1) * p, p0x[it] * p, p1x[it] * p
            av, bv = vsplat(w0x[it]), vsplat(w1x[it])
            for j0 in range(0, ny, 8):
                o = r + j0
                t = vadd(vload(U, o), vadd(vmul(av, vload(ybuf, y0 + j0)),
                                           vmul(bv, vload(ybuf, y1 + j0))))
                if j0 + 8 <= ny:
                    vstore(U, o, t)
                else:
                    vmstore(U, o, _lanes(ny, j0), t)
        for stage in range(2 * nsw):  # red, black, red, black, ...
            i = it - s0 - stage
            if i < 0 or i >= nx:
                continue
            # Gauss-Seidel update of the cells j = i + stage (mod 2) of row i: a vector
            # computes 8 lanes, a masked store keeps those of the colour (they read only
            # the other colour); cells 0 and ny - 1 in scalar code. Left and right
            # neighbours are the row's aligned vectors slid by one lane; the next vector is
            # loaded before this one is stored (its lanes of the other colour are current).
            r, a, b = go + (i + 1) * p, amx[i], apx[i]
            av, bv = vsplat(a), vsplat(b)
            par = (i + stage) & 1
            colour = 0x55 if par == 0 else 0xAA
            prev, cur = vload(U, r - 8), vload(U, r)
            for j0 in range(0, ny, 8):
                o = r + j0
                nxt = vload(U, o + 8)
                t = vadd(vload(F, o), vmul(av, vload(U, o - p)))
                t = vadd(t, vmul(bv, vload(U, o + p)))
                left, right = vslide_up(prev, cur), vslide_down(cur, nxt)
                if ky > 0.0:
                    t = vadd(t, vmul(kv, vadd(left, right)))
                else:
                    t = vadd(t, vmul(vload(yt, ya + j0), left))
                    t = vadd(t, vmul(vload(yt, yp + j0), right))
                t = vmul(t, vload(I, o))
                bits = colour & _lanes(last, j0)
                vmstore(U, o, bits & 0xFE if j0 == 0 else bits, t)
                prev, cur = cur, nxt
            if par == 0:
                U[r] = (F[r] + a * U[r - p] + b * U[r + p] + yt[ya] * ub
                        + yt[yp] * U[r + 1]) * I[r]
            if last & 1 == par:
                o = r + last
                U[o] = (F[o] + a * U[o - p] + b * U[o + p] + yt[ya + last] * U[o - 1]
                        + yt[yp + last] * ub) * I[o]
        i = it - s0 - 2 * nsw
        if not res or i < 0:
            continue
        # residual of row i into row[:p] (0 beyond ny), its squares into acc
        r, a, b = go + (i + 1) * p, amx[i], apx[i]
        av, bv = vsplat(a), vsplat(b)
        e0 = (F[r] + a * U[r - p] + b * U[r + p] + yt[ya] * ub + yt[yp] * U[r + 1]
              - D[r] * U[r])
        o = r + last
        e1 = (F[o] + a * U[o - p] + b * U[o + p] + yt[ya + last] * U[o - 1]
              + yt[yp + last] * ub - D[o] * U[o])
        prev, cur = vload(U, r - 8), vload(U, r)
        for j0 in range(0, p, 8):
            o = r + j0
            nxt = vload(U, o + 8)
            t = vadd(vload(F, o), vmul(av, vload(U, o - p)))
            t = vadd(t, vmul(bv, vload(U, o + p)))
            t = vadd(t, vmul(vload(yt, ya + j0), vslide_up(prev, cur)))
            t = vadd(t, vmul(vload(yt, yp + j0), vslide_down(cur, nxt)))
            t = vsub(t, vmul(vload(D, o), cur))
            prev, cur = cur, nxt
            if j0 == 0:
                t = vselect(1, vsplat(e0), t)
            if last - j0 < 8:
                t = vselect(_lanes(ny, j0), vselect(1 << (last - j0), vsplat(e1), t), zero)
            vstore(row, j0, t)
            sq = vmul(t, t)
            if j0 < m8:  # lanes 0..3 of acc are the four running sums
                acc = vadd(vadd(acc, sq), vswaphalves(sq))
            elif m4 > m8:
                acc = vadd(acc, sq)  # cells m8..m8+3; lanes 4..7 of acc are not used
        for j in range(m4, ny):
            acc = vadd(acc, vselect(1, vsplat(row[j] * row[j]), zero))
        # restriction: coarse cell J takes fine cells 2J, 2J + 1 (and 2J + 2 for the last
        # one when ny is odd), or cell J when nyc == ny (thin grids); the first fine row
        # of a coarse row stores 0.0 + value, as adding to a zeroed row would
        oc, w = goc + (aggx[i] + 1) * pc, rwx[i]
        first = i == 0 or aggx[i] != aggx[i - 1]
        if nyc == ny:
            for j in range(ny):
                out[oc + j] = (0.0 if first else out[oc + j]) + w * yt[yr + j] * row[j]
            continue
        wv = vsplat(w)
        for jc in range(0, nyc - odd, 8):
            j = 2 * jc
            pair = vpairadd(vmul(vload(yt, yr + j), vload(row, j)),
                            vmul(vload(yt, yr + j + 8), vload(row, j + 8)))
            base = zero if first else vload(out, oc + jc)
            t = vadd(base, vmul(wv, pair))
            if jc + 8 <= nyc - odd:
                vstore(out, oc + jc, t)
            else:
                vmstore(out, oc + jc, _lanes(nyc - odd, jc), t)
        if odd:
            jl = 2 * (nyc - 1)
            s = yt[yr + jl] * row[jl] + yt[yr + jl + 1] * row[jl + 1]
            s += yt[yr + jl + 2] * row[jl + 2]
            o = oc + nyc - 1
            out[o] = (0.0 if first else out[o]) + w * s
    return (vlane(acc, 0) + vlane(acc, 1)) + (vlane(acc, 2) + vlane(acc, 3))


@njit(**_JIT)
def _restrict_rows(src, so, sp, fine, coarse, out, row):
    """Area-weighted average of the nx rows of level ``fine`` held in ``src`` (row i at
    flat ``so + i sp``, ny values) into :class:`Grid` ``coarse`` of ``out``, with ``row``
    as scratch, as :func:`_pass` restricts the residual (the same lines, written out in
    both: a shared per-row helper, inlined or called, makes the solve slower)."""
    nx, ny = fine.g.nx, fine.g.ny
    aggx, rwx, yt = fine.ax.agg, fine.ax.rw, fine.yt
    goc, pc, nyc = coarse.go, coarse.p, coarse.ny
    yr = _YRW * (yt.shape[0] // _NYT)
    zero = vsplat(0.0)
    odd = ny & 1
    for i in range(nx):
        for j0 in range(0, ny, 8):
            vstore(row, j0, vmload(src, so + i * sp + j0, _lanes(ny, j0), zero))
        oc, w = goc + (aggx[i] + 1) * pc, rwx[i]
        first = i == 0 or aggx[i] != aggx[i - 1]
        if nyc == ny:
            for j in range(ny):
                out[oc + j] = (0.0 if first else out[oc + j]) + w * yt[yr + j] * row[j]
            continue
        wv = vsplat(w)
        for jc in range(0, nyc - odd, 8):
            j = 2 * jc
            pair = vpairadd(vmul(vload(yt, yr + j), vload(row, j)),
                            vmul(vload(yt, yr + j + 8), vload(row, j + 8)))
            base = zero if first else vload(out, oc + jc)
            vmstore(out, oc + jc, _lanes(nyc - odd, jc), vadd(base, vmul(wv, pair)))
        if odd:
            jl = 2 * (nyc - 1)
            s = yt[yr + jl] * row[jl] + yt[yr + jl + 1] * row[jl + 1]
            s += yt[yr + jl + 2] * row[jl + 2]
            o = oc + nyc - 1
            out[o] = (0.0 if first else out[o]) + w * s


@njit(**_JIT)
def _prolong_y(U, coarse, fine, yt, p0y, p1y, ybuf):
    """The coarse correction (level at :class:`Grid` ``coarse`` of ``U``) interpolated
    along y onto the columns of level ``fine`` (its y tables ``yt``, ``p0y``, ``p1y``):
    coarse row ic to ybuf[ic p:ic p + ny] (p, ny: the fine level's).

    Away from the ends fine cells 2J + 1 and 2J + 2 lie between coarse cells J and J + 1,
    so a vector of fine cells j0..j0+7 takes coarse cells j0/2 - 1 .. j0/2 + 3, each twice
    (:func:`.simd.vstretch`); the end cells (0, and 2 nyc - 1 on) are done in scalar code.
    """
    Uc, goc, pc, nxc, nyc = U, coarse.go, coarse.p, coarse.nx, coarse.ny
    p, ny = fine.p, fine.ny
    q = yt.shape[0] // _NYT
    w0, w1 = _YW0 * q, _YW1 * q
    jl = 2 * nyc - 1
    for ic in range(nxc):
        e, y = goc + (ic + 1) * pc, ic * p
        if nyc == ny:
            for j in range(ny):
                ybuf[y + j] = Uc[e + j]
            continue
        for j0 in range(0, jl, 8):
            v = vload(Uc, e + j0 // 2 - 1)
            vstore(ybuf, y + j0, vadd(vmul(vload(yt, w0 + j0), vstretch(v, 0)),
                                      vmul(vload(yt, w1 + j0), vstretch(v, 1))))
        ybuf[y] = yt[w0] * Uc[e + p0y[0]] + yt[w1] * Uc[e + p1y[0]]
        for j in range(jl, ny):
            ybuf[y + j] = yt[w0 + j] * Uc[e + p0y[j]] + yt[w1 + j] * Uc[e + p1y[j]]


@njit(**_JIT)
def _coarse_diag(B, lv, shift):
    """d = c + (sx[i] + shift + sy[j]) of coarse level ``lv`` of the buffers ``B``
    (``shift``: 1/min), and 1/d where d changed (vectors of 8 cells whose d is
    bit-identical to the stored one keep their 1/d)."""
    C, D, I = B.C, B.D, B.I
    go, p, nx, ny = lv.g
    sx, yt = lv.ax.s, lv.yt
    one, ys = vsplat(1.0), _YS * (yt.shape[0] // _NYT)
    for i in range(nx):
        r = go + (i + 1) * p
        s = vsplat(sx[i] + shift)
        for j0 in range(0, p, 8):
            o = r + j0
            d = vadd(vload(C, o), vadd(s, vload(yt, ys + j0)))
            if vbits_differ(d, vload(D, o)) & _lanes(ny, j0):
                vstore(D, o, d)
                vstore(I, o, vdiv(one, d))


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
def _prepare(u, c, f, B, lv, inv_dt, ub, rhs):
    """Finest level ``lv``: u and f (or f + u/h, if inv_dt > 0; 1/min) to the buffers U, F
    of ``B``; d = c + s into D and 1/d into I where d changed.

    Returns (number of c values not >= 0, number of right-hand side values < 0, ||b||^2),
    b being the right-hand side with the Dirichlet boundary terms. ||b||^2 is the scalar
    running sum over the rows in order; ``b2row[i]`` (of :class:`RhsCache` ``rhs``) keeps
    its value after row i and ``negrow[i]`` row i's negative count, so that with
    ``valid[0]`` set (the last solve had inv_dt = 0 too) only rows from the first one whose
    f changed are summed again.
    """
    U, F, D, I = B.U, B.F, B.D, B.I
    go, p = lv.g.go, lv.g.p
    amx, apx, sx, yt = lv.ax.am, lv.ax.ap, lv.ax.s, lv.yt
    b2row, negrow, cache = rhs
    nx, ny = u.shape
    q = yt.shape[0] // _NYT
    ya, yp, ys = _YAM * q, _YAP * q, _YS * q
    zero, one, hv = vsplat(0.0), vsplat(1.0), vsplat(inv_dt)
    bad = 0
    force = cache[0] == 0 or inv_dt > 0.0
    dirty = force
    bl, br = yt[ya] * ub, yt[yp + ny - 1] * ub
    b2 = 0.0
    for i in range(nx):
        r, k = go + (i + 1) * p, i * ny
        sv = vsplat(sx[i] + inv_dt)
        changed = dirty
        for j0 in range(0, ny, 8):
            bits, o = _lanes(ny, j0), r + j0
            uv = vmload(u, k + j0, bits, zero)
            vmstore(U, o, bits, uv)
            cv = vmload(c, k + j0, bits, zero)
            bad += popcount(bits & ~vge_bits(cv, zero))
            d = vadd(vadd(cv, sv), vload(yt, ys + j0))
            if vbits_differ(d, vload(D, o)) & bits:
                vstore(D, o, d)
                vstore(I, o, vdiv(one, d))
            fv = vmload(f, k + j0, bits, zero)
            if inv_dt > 0.0:
                vmstore(F, o, bits, vadd(fv, vmul(hv, uv)))
            elif vbits_differ(fv, vload(F, o)) & bits:
                vmstore(F, o, bits, fv)
                changed = True
        if not changed:
            b2 = b2row[i]
            continue
        neg = 0
        for j in range(ny):
            neg += F[r + j] < 0.0
        negrow[i] = neg
        bx = ub * ((amx[0] if i == 0 else 0.0) + (apx[nx - 1] if i == nx - 1 else 0.0))
        b2 += (F[r] + bx + bl) ** 2 + (F[r + ny - 1] + bx + br) ** 2
        for j in range(1, ny - 1):
            b2 += (F[r + j] + bx) ** 2
        # later rows need summing again only if the running sum differs from the cached one
        dirty = force or not b2 == b2row[i]
        b2row[i] = b2
    cache[0] = 0 if inv_dt > 0.0 else 1
    return bad, negrow[:nx].sum(), b2


@njit(**_INLINE)
def _axis(t, lev, n):
    """The :class:`Axis` of level ``lev`` (n cells) of :class:`AxisTables` ``t``."""
    fa, ia = t.f, t.i
    o, e = t.off[lev], t.off[lev] + n + 1
    return Axis(fa[_AM, o:e], fa[_AP, o:e], fa[_S, o:e], fa[_W, o:e], fa[_RW, o:e],
                fa[_PW0, o:e], fa[_PW1, o:e], ia[_AGG - 7, o:e], ia[_P0 - 7, o:e],
                ia[_P1 - 7, o:e])


@njit(**_INLINE)
def _grid(go, pitch, shape, lev):
    """The :class:`Grid` of level ``lev`` (``go``, ``pitch``, ``shape``: those of
    :class:`Hierarchy`)."""
    return Grid(go[lev], pitch[lev], shape[lev, 0], shape[lev, 1])


@njit(**_INLINE)
def _level(go, pitch, shape, x, yt, ky, lev):
    """The :class:`Level` ``lev`` (the other arguments: those of :class:`Hierarchy`)."""
    g = _grid(go, pitch, shape, lev)
    return Level(g, _axis(x, lev, g.nx), yt[lev], ky[lev])


@njit(**_JIT)
def _interior(buf, g):
    """The (nx, ny) interior of the level at :class:`Grid` ``g`` as a 2-D view."""
    go, p, nx, ny = g
    return buf[go + p:go + p + nx * p].reshape((nx, p))[:, :ny]


@njit(**_JIT)
def _write_back(u, U, go, p, clip):
    """The finest level's scratch to ``u``, clipped at 0 if ``clip`` (as max(x, 0.0): x
    unless 0.0 > x, so -0.0 and NaN stay)."""
    nx, ny = u.shape
    zero = vsplat(0.0)
    for i in range(nx):
        r = go + (i + 1) * p
        for j0 in range(0, ny, 8):
            v = vload(U, r + j0)
            if clip:
                v = vselect(vlt_bits(v, zero), zero, v)
            vmstore(u, i * ny + j0, _lanes(ny, j0), v)


@njit(nogil=True, **_JIT)
def _mg_solve(u, c, f, h, s, inv_dt, fixed):
    """The whole solve of u, c, f on :class:`Hierarchy` ``h`` with :class:`Settings` ``s``:
    the steady state (``inv_dt`` 0) or a backward-Euler step of 1/inv_dt min; ``fixed``
    cycles exactly, or (0) until ``s.tol``. Returns (status, cycles, residual, initial
    residual)."""
    # the members used in the loops, taken out once: each access to a member of a tuple
    # counts references to the arrays it holds
    B, ub, tol, max_cycles = h.buf, s.boundary_value, s.tol, s.max_cycles
    nu1, nu2 = s.pre_sweeps, s.post_sweeps
    U, F, D, C = B.U, B.F, B.D, B.C
    ybuf, row, band, vec = h.ybuf, h.row, h.band, h.vec
    lgo, lp, shp, xtab, ytab, yts, kys = h.go, h.pitch, h.shape, h.x, h.y, h.yt, h.ky
    nlev = shp.shape[0]
    lc = nlev - 1
    l0 = _level(lgo, lp, shp, xtab, yts, kys, 0)
    go, p, nx, ny = l0.g
    bad, neg, b2 = _prepare(u, c, f, B, l0, inv_dt, ub, h.rhs)
    if bad > 0:
        return _BAD_C, 0, np.nan, np.nan
    if not np.isfinite(b2):
        return _NAN, 0, np.nan, np.nan
    if b2 == 0.0:
        u[:] = 0.0
        return _OK, 0, 0.0, 0.0
    bnorm = np.sqrt(b2)

    # coarse diagonals (from restricted c) and the coarsest factorisation, once per solve
    g1 = _grid(lgo, lp, shp, 1)
    _restrict_rows(c, 0, ny, l0, g1, C, row)
    for lev in range(1, nlev):
        lv = _level(lgo, lp, shp, xtab, yts, kys, lev)
        if lev < lc:
            _restrict_rows(C, lv.g.go + lv.g.p, lv.g.p, lv, _grid(lgo, lp, shp, lev + 1), C,
                           row)
        _coarse_diag(B, lv, inv_dt)
    lvc = _level(lgo, lp, shp, xtab, yts, kys, lc)
    ayc = _axis(ytab, lc, lvc.g.ny)
    if not _band_factor(band, _interior(D, lvc.g), lvc.ax.am, lvc.ax.w, ayc.am, ayc.w):
        return _SINGULAR, 0, np.nan, np.nan

    # The finest residual is the convergence check and, restricted, the first coarse rhs.
    # With pre-smoothing, a cycle checks after it and may stop there. A cycle that needs
    # no residual after its post-smoothing runs the next cycle's pre-smoothing and
    # residual in the same pass (``smoothed``).
    r2 = _pass(B, l0, g1, ub, False, 0, True, ybuf, row)
    res = res0 = np.sqrt(r2) / bnorm
    measured = True  # res belongs to the current u
    smoothed = False  # this cycle's pre-smoothing is done, res is its residual
    cycles = 0
    while True:
        if not np.isfinite(res):
            _write_back(u, U, go, p, False)
            return _NAN, cycles, res, res0
        if not smoothed:
            if fixed > 0:
                if cycles >= fixed:
                    break
            elif (measured and res <= tol) or cycles >= max_cycles:
                break
            if nu1 > 0:
                r2 = _pass(B, l0, g1, ub, False, nu1, True, ybuf, row)
                res = np.sqrt(r2) / bnorm
                if not np.isfinite(res):
                    _write_back(u, U, go, p, False)
                    return _NAN, cycles, res, res0
        if nu1 > 0 and fixed == 0 and res <= tol:
            break
        # down: coarse corrections start at zero, with a homogeneous boundary
        for lev in range(1, lc):
            lv = _level(lgo, lp, shp, xtab, yts, kys, lev)
            gl, pl, nxl = lv.g.go, lv.g.p, lv.g.nx
            U[gl:gl + (nxl + 2) * pl] = 0.0
            _pass(B, lv, _grid(lgo, lp, shp, lev + 1), 0.0, False, nu1, True, ybuf, row)
        _band_solve(band, vec, _interior(U, lvc.g), _interior(F, lvc.g), lvc.ax.w,
                    ayc.w)
        # up: correct, post-smooth
        for lev in range(lc - 1, 0, -1):
            lv = _level(lgo, lp, shp, xtab, yts, kys, lev)
            ay = _axis(ytab, lev, lv.g.ny)
            _prolong_y(U, _grid(lgo, lp, shp, lev + 1), lv.g, lv.yt, ay.p0, ay.p1, ybuf)
            _pass(B, lv, lv.g, 0.0, True, nu2, False, ybuf, row)
        ay0 = _axis(ytab, 0, ny)
        _prolong_y(U, g1, l0.g, l0.yt, ay0.p0, ay0.p1, ybuf)
        cycles += 1
        measured = nu1 == 0 or (fixed > 0 and cycles >= fixed) or cycles >= max_cycles
        # finest post-smoothing, then the residual (measured) or the next pre-smoothing
        # and its residual
        r2 = _pass(B, l0, g1, ub, True, nu2 if measured else nu2 + nu1, True, ybuf, row)
        res = np.sqrt(r2) / bnorm
        smoothed = not measured
    # the exact solution is >= 0: drop round-off negatives
    _write_back(u, U, go, p, neg == 0 and ub >= 0.0)
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
            if not identity:  # the pattern _prolong_y relies on (vstretch)
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

    All level arrays are allocated here, about 7 fine-grid float64 arrays (u, f, d, 1/d
    and the restricted c of every level, padded); :meth:`solve` allocates nothing. The
    solver keeps d, 1/d and f of its last solve to skip unchanged work (results do not
    depend on it). One solver serves one solve at a time (not thread-safe).
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
        x = AxisTables(*_pack(_axis_levels(nx, dx_um, d, dirichlet, nlev, identity)))
        y = AxisTables(*_pack(_axis_levels(ny, dx_um, d, dirichlet, nlev, identity)))
        ky = np.zeros(nlev)  # uniform interior y coefficient per level, or 0
        for lev, (_, m) in enumerate(shapes):
            o = y.off[lev]
            inner = y.f[[_AM, _AP], o + 1:o + m - 1]
            if m >= 3 and (inner == inner[0, 0]).all():
                ky[lev] = inner[0, 0]
        # padded, aligned level buffers (see the layout note above the kernels)
        pitches = [-(-m // 8) * 8 for _, m in shapes]
        sizes = [(a + 2) * pl for (a, _), pl in zip(shapes, pitches)]
        lgo = np.array([8] + [8 + int(s) for s in np.cumsum(sizes)[:-1]], dtype=np.int64)
        total = 8 + sum(sizes) + 8
        buf = LevelBuffers(*(aligned_zeros(total) for _ in range(5)))
        buf.I[:] = np.inf  # = 1 / D: the invariant that lets a solve skip unchanged 1/d
        go, p = lgo[0], pitches[0]
        buf.U[go:go + p] = self.boundary_value  # the finest ghost rows
        buf.U[go + (nx + 1) * p:go + (nx + 2) * p] = self.boundary_value
        q = max(pitches) + 16
        yts = aligned_zeros((nlev, _NYT * q))
        for lev, (_, m) in enumerate(shapes):
            o = y.off[lev]
            for k, t in ((_YAM, _AM), (_YAP, _AP), (_YRW, _RW), (_YS, _S), (_YW0, _PW0),
                         (_YW1, _PW1)):
                yts[lev, k * q:k * q + m] = y.f[t, o:o + m]
        ncx, ncy = shapes[-1]
        self._hierarchy = Hierarchy(
            buf=buf, go=lgo, pitch=np.array(pitches, dtype=np.int64),
            shape=np.array(shapes, dtype=np.int64), yt=yts, ky=ky, x=x, y=y,
            ybuf=aligned_zeros(max(a * pl for (a, _), pl in zip(shapes[1:], pitches)) + 8),
            band=np.zeros((ncx * ncy, min(ncx, ncy) + 1)), vec=np.zeros(ncx * ncy),
            row=aligned_zeros(q + 16),
            rhs=RhsCache(np.zeros(nx), np.zeros(nx, dtype=np.int64),
                         np.zeros(1, dtype=np.int64)))

    @property
    def levels(self) -> list[tuple[int, int]]:
        """Grid shapes from finest to coarsest (the last is solved directly)."""
        return [tuple(int(v) for v in s) for s in self._hierarchy.shape]

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
        fixed = 0 if cycles is None else int(cycles)
        if cycles is not None and fixed < 1:
            raise ValueError("cycles must be >= 1")
        status, ncyc, res, res0 = _mg_solve(u, c, f, *self.kernel_args(), inv_dt, fixed)
        return self.outcome(status, ncyc, res, res0, fixed)

    def kernel_args(self) -> tuple[Hierarchy, Settings]:
        """The solver's own arguments of the compiled solve: a call is ``_mg_solve(u, c, f,
        hierarchy, settings, inv_dt, cycles)`` (inv_dt 0: the steady state; cycles 0: until
        ``tol``). For compiled callers that run the solve themselves (:mod:`.stepper`);
        they hand the returned status to :meth:`outcome`."""
        return self._hierarchy, Settings(self.boundary_value, self.tol, self.max_cycles,
                                         self.pre_sweeps, self.post_sweeps)

    def outcome(self, status: int, ncyc: int, res: float, res0: float,
                fixed: int = 0) -> SolveInfo:
        """The :class:`SolveInfo` of a compiled solve's result, or its error (see
        :meth:`solve`)."""
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
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
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
