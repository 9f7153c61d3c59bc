"""Numba kernels of the fields: reaction plus LOD backward-Euler sub-steps on a 2D grid.

A field ``u`` is a C-contiguous float64 array indexed [x, y], shape (nx, ny). One sub-step
of length h (min) is

1. reaction, implicit and pointwise: ``u <- A u + B`` with ``A = 1/(1 + h (decay + uptake +
   supply_rate))`` and ``B = h (release + supply_rate * supply_target) A``
   (:func:`reaction_factors` fills A and B once per model step);
2. x sweep: solve ``(I - h D d2/dx2) u' = u`` along axis 0 for every y;
3. y sweep: solve ``(I - h D d2/dy2) u'' = u'`` along axis 1 for every x.

Each sweep is a constant-coefficient tridiagonal solve. Its Thomas factors depend only on
``r = h D / dx^2``, the length and the boundary, so :func:`axis_factors` computes them once
and every sub-step reuses them. A "dirichlet" boundary is a ghost voxel held at the
boundary value just outside the edge; it adds ``r * value`` to the edge voxel's right-hand
side. "noflux" mirrors the edge voxel (zero gradient). All factors are >= 0, so
non-negative inputs give non-negative outputs.

How the kernel is fast on one core (see ``benchmarks/bench_diffusion.py``):

* The x sweep's recurrence runs across contiguous rows: reaction and forward elimination
  are one pass over rows of 8-wide vectors.
* The y sweep's recurrence runs along contiguous rows, a chain of dependent operations.
  Rows are taken in blocks of 16 (two groups of 8). Each 8x8 tile is transposed in
  registers, so the recurrence runs on 8-wide vectors whose lanes are 8 different rows;
  the two groups give two independent chains. The back substitution of the x sweep is done
  block by block just before, while the block is in cache.
* Vectors, fused multiply-adds and transposes are written as LLVM IR through numba
  intrinsics (``_vload``, ``_vfma``, ``_vtranspose``...): numba's auto-vectoriser did not
  produce them. The arithmetic is plain IEEE (fused multiply-adds, no reassociation), so the
  same inputs give bit-identical outputs on every call.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, models, register_model

__all__ = [
    "axis_factors",
    "lod_step",
    "lod_steps",
    "reaction_factors",
    "reaction_steps",
    "work_size",
]

_FASTMATH = {"contract"}  # allow fused multiply-add only: deterministic, no reassociation
_LANES = 16  # rows per y-sweep block: two groups of 8 (two independent recurrence chains)


# --------------------------------------------------------------------------------------
# 8-wide float64 vectors as LLVM IR (used only inside the kernels below)
# --------------------------------------------------------------------------------------
class _F64x8Type(types.Type):
    def __init__(self):
        super().__init__(name="f64x8")


_f64x8 = _F64x8Type()
_VEC = ir.VectorType(ir.DoubleType(), 8)
_I32 = ir.IntType(32)


@register_model(_F64x8Type)
class _F64x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _check_array(a):
    if not (isinstance(a, types.Array) and a.dtype == types.float64 and a.layout == "C"):
        raise TypingError(f"vector access needs a C-contiguous float64 array, got {a}")


def _vec_ptr(context, builder, aryty, ary, offset):
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [offset]), _VEC.as_pointer())


@intrinsic
def _vload(typingctx, a, offset):
    """Elements offset..offset+7 of C-contiguous array ``a`` (flat index) as a vector."""
    _check_array(a)

    def codegen(context, builder, sig, args):
        return builder.load(_vec_ptr(context, builder, sig.args[0], args[0], args[1]), align=8)

    return _f64x8(a, types.intp), codegen


@intrinsic
def _vstore(typingctx, a, offset, v):
    """Store vector ``v`` into elements offset..offset+7 of ``a`` (flat index)."""
    _check_array(a)

    def codegen(context, builder, sig, args):
        builder.store(args[2], _vec_ptr(context, builder, sig.args[0], args[0], args[1]),
                      align=8)
        return context.get_dummy_value()

    return types.void(a, types.intp, _f64x8), codegen


@intrinsic
def _vsplat(typingctx, x):
    """A vector with all lanes equal to the scalar ``x``."""

    def codegen(context, builder, sig, args):
        v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), args[0],
                                   ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, 8), [0] * 8))

    return _f64x8(types.float64), codegen


@intrinsic
def _vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane with a single rounding (llvm.fma)."""

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VEC, [_VEC] * 3), "llvm.fma.v8f64")
        return builder.call(fn, list(args))

    return _f64x8(_f64x8, _f64x8, _f64x8), codegen


def _shuffle(builder, a, b, idx):
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, 8), idx))


@intrinsic
def _vtranspose(typingctx, v0, v1, v2, v3, v4, v5, v6, v7):
    """Transpose the 8x8 block whose rows are v0..v7; returns the block's columns."""

    def codegen(context, builder, sig, args):
        r = list(args)
        t = []
        for k in range(0, 8, 2):  # interleave pairs of rows
            t.append(_shuffle(builder, r[k], r[k + 1], [0, 8, 2, 10, 4, 12, 6, 14]))
            t.append(_shuffle(builder, r[k], r[k + 1], [1, 9, 3, 11, 5, 13, 7, 15]))
        lo, hi = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
        s = [None] * 8  # interleave pairs of pairs
        for a, b in ((0, 2), (1, 3), (4, 6), (5, 7)):
            s[a] = _shuffle(builder, t[a], t[b], lo)
            s[b] = _shuffle(builder, t[a], t[b], hi)
        out = [None] * 8  # join 256-bit halves
        for k in range(4):
            out[k] = _shuffle(builder, s[k], s[k + 4], [0, 1, 2, 3, 8, 9, 10, 11])
            out[k + 4] = _shuffle(builder, s[k], s[k + 4], [4, 5, 6, 7, 12, 13, 14, 15])
        return context.make_tuple(builder, sig.return_type, out)

    return types.UniTuple(_f64x8, 8)(*([_f64x8] * 8)), codegen


# --------------------------------------------------------------------------------------
# Factors
# --------------------------------------------------------------------------------------
def axis_factors(n: int, r: float, dirichlet: bool, boundary_value: float = 0.0) -> np.ndarray:
    """Thomas factors of ``(I - r d2)`` on a line of ``n`` voxels, shape (4, n).

    ``r = h D / dx^2`` (dimensionless). Rows: ``inv`` (1 / pivot), ``edge`` (the dirichlet
    ghost term ``r * boundary_value`` times ``inv`` at both ends, else 0), ``fwd`` (weight of
    the previous value in forward elimination, 0 at i=0) and ``bwd`` (weight of the next
    value in back substitution, 0 at i=n-1). Forward: ``d_i = inv_i rhs_i + edge_i + fwd_i
    d_(i-1)``; back: ``x_i = d_i + bwd_i x_(i+1)``.
    """
    diag = np.full(n, 1.0 + 2.0 * r)
    if not dirichlet:
        diag[0] = diag[-1] = 1.0 + r
    f = np.zeros((4, n))
    pivot = diag[0]
    f[0, 0] = 1.0 / pivot
    for i in range(1, n):
        pivot = diag[i] - r * r * f[0, i - 1]
        f[0, i] = 1.0 / pivot
    if dirichlet:
        f[1, 0] = r * boundary_value * f[0, 0]
        f[1, -1] = r * boundary_value * f[0, -1]
    f[2, 1:] = r * f[0, 1:]
    f[3, :-1] = r * f[0, :-1]
    return f


def work_size(nx: int, ny: int) -> int:
    """Length of the float64 scratch array :func:`lod_steps` needs for an (nx, ny) field."""
    return ny * (_LANES + 1)


@njit(cache=True, fastmath=_FASTMATH)
def reaction_factors(a, b, h, decay, release, uptake, supply_rate, supply_target):
    """Fill ``a``, ``b`` (shape of the field) for the implicit reaction ``u <- a u + b``.

    ``a = 1/(1 + h (decay + uptake + supply_rate))``, ``b = h (release + supply_rate *
    supply_target) a``; h in min, decay in 1/min, the others arrays or None (zero).
    Returns how many entries are negative or not finite (0 when all are valid).
    """
    nx, ny = a.shape
    bad = 0
    for i in range(nx):
        for j in range(ny):
            loss = decay
            gain = 0.0
            if uptake is not None:
                k = uptake[i, j]
                loss += k
                bad += not 0.0 <= k < np.inf
            if supply_rate is not None:
                p = supply_rate[i, j]
                loss += p
                bad += not 0.0 <= p < np.inf
                if supply_target is not None:
                    target = supply_target[i, j]
                    gain += p * target
                    bad += not 0.0 <= target < np.inf
            if release is not None:
                s = release[i, j]
                gain += s
                bad += not 0.0 <= s < np.inf
            f = 1.0 / (1.0 + h * loss)
            a[i, j] = f
            b[i, j] = h * gain * f
    return bad


# --------------------------------------------------------------------------------------
# One sub-step
# --------------------------------------------------------------------------------------
@njit(cache=True, fastmath=_FASTMATH)
def _reaction_and_x_forward(u, a, b, cx):
    """Reaction ``u <- a u + b`` fused with the x sweep's forward elimination (in place)."""
    nx, ny = u.shape
    uf = u.reshape(-1)
    af = a.reshape(-1)
    bf = b.reshape(-1)
    ny8 = ny - ny % 8
    for i in range(nx):
        inv = _vsplat(cx[0, i])
        edge = _vsplat(cx[1, i])
        o = i * ny
        if i == 0:
            for j in range(0, ny8, 8):
                w = _vfma(_vload(uf, o + j), _vload(af, o + j), _vload(bf, o + j))
                _vstore(uf, o + j, _vfma(w, inv, edge))
        else:
            fwd = _vsplat(cx[2, i])
            for j in range(0, ny8, 8):
                w = _vfma(_vload(uf, o + j), _vload(af, o + j), _vload(bf, o + j))
                _vstore(uf, o + j, _vfma(fwd, _vload(uf, o + j - ny), _vfma(w, inv, edge)))
        for j in range(ny8, ny):
            d = (u[i, j] * a[i, j] + b[i, j]) * cx[0, i] + cx[1, i]
            if i > 0:
                d += cx[2, i] * u[i - 1, j]
            u[i, j] = d


@njit(cache=True, fastmath=_FASTMATH)
def _x_back_rows(u, cx, carry, i0, i1):
    """x back substitution on rows i1-1 .. i0; ``carry`` holds row i1 (zeros below the
    grid) and on return holds row i0."""
    ny = u.shape[1]
    uf = u.reshape(-1)
    ny8 = ny - ny % 8
    for i in range(i1 - 1, i0 - 1, -1):
        bwd = _vsplat(cx[3, i])
        o = i * ny
        if i == i1 - 1:
            for j in range(0, ny8, 8):
                _vstore(uf, o + j, _vfma(bwd, _vload(carry, j), _vload(uf, o + j)))
            for j in range(ny8, ny):
                u[i, j] += cx[3, i] * carry[j]
        else:
            for j in range(0, ny8, 8):
                _vstore(uf, o + j, _vfma(bwd, _vload(uf, o + j + ny), _vload(uf, o + j)))
            for j in range(ny8, ny):
                u[i, j] += cx[3, i] * u[i + 1, j]
    for j in range(ny):
        carry[j] = u[i0, j]


@njit(cache=True, inline="always")
def _load_tile(uf, o, ny):
    """Columns of the 8x8 tile whose top-left element is uf[o] (rows ny apart)."""
    return _vtranspose(_vload(uf, o), _vload(uf, o + ny), _vload(uf, o + 2 * ny),
                       _vload(uf, o + 3 * ny), _vload(uf, o + 4 * ny), _vload(uf, o + 5 * ny),
                       _vload(uf, o + 6 * ny), _vload(uf, o + 7 * ny))


@njit(cache=True, inline="always")
def _store_tile(uf, o, ny, c0, c1, c2, c3, c4, c5, c6, c7):
    """Store columns c0..c7 as the 8x8 tile whose top-left element is uf[o]."""
    r = _vtranspose(c0, c1, c2, c3, c4, c5, c6, c7)
    for k in range(8):
        _vstore(uf, o + k * ny, r[k])


@njit(cache=True, inline="always")
def _y_forward_tile(uf, o, ny, t, to, cy, j0, m0, p):
    """Forward elimination along y over tile columns j0+m0 .. j0+7 of 8 rows; column j's
    result (one lane per row) goes to ``t[to + j*_LANES:][:8]``."""
    c = _load_tile(uf, o, ny)
    for m in range(m0, 8):
        j = j0 + m
        p = _vfma(_vsplat(cy[2, j]), p, _vfma(c[m], _vsplat(cy[0, j]), _vsplat(cy[1, j])))
        _vstore(t, to + j * _LANES, p)
    return p


@njit(cache=True, inline="always")
def _y_back_tile(uf, o, ny, t, to, cy, j0, q):
    """Back substitution along y over tile columns j0+7 .. j0 for 8 rows; stores the tile."""
    c7 = _vfma(_vsplat(cy[3, j0 + 7]), q, _vload(t, to + (j0 + 7) * _LANES))
    c6 = _vfma(_vsplat(cy[3, j0 + 6]), c7, _vload(t, to + (j0 + 6) * _LANES))
    c5 = _vfma(_vsplat(cy[3, j0 + 5]), c6, _vload(t, to + (j0 + 5) * _LANES))
    c4 = _vfma(_vsplat(cy[3, j0 + 4]), c5, _vload(t, to + (j0 + 4) * _LANES))
    c3 = _vfma(_vsplat(cy[3, j0 + 3]), c4, _vload(t, to + (j0 + 3) * _LANES))
    c2 = _vfma(_vsplat(cy[3, j0 + 2]), c3, _vload(t, to + (j0 + 2) * _LANES))
    c1 = _vfma(_vsplat(cy[3, j0 + 1]), c2, _vload(t, to + (j0 + 1) * _LANES))
    c0 = _vfma(_vsplat(cy[3, j0]), c1, _vload(t, to + j0 * _LANES))
    _store_tile(uf, o, ny, c0, c1, c2, c3, c4, c5, c6, c7)
    return c0


@njit(cache=True, fastmath=_FASTMATH)
def _y_line(u, i, cy):
    """y sweep of row i alone (scalar; for grids narrower than 8)."""
    ny = u.shape[1]
    p = 0.0
    for j in range(ny):
        p = cy[2, j] * p + (u[i, j] * cy[0, j] + cy[1, j])
        u[i, j] = p
    p = 0.0
    for j in range(ny - 1, -1, -1):
        p = cy[3, j] * p + u[i, j]
        u[i, j] = p


@njit(cache=True, fastmath=_FASTMATH)
def _x_back_and_y_sweep(u, cx, cy, work):
    """x back substitution and the whole y sweep, in blocks of up to 16 rows from the
    bottom. ``work``: scratch of length ny * 17."""
    nx, ny = u.shape
    uf = u.reshape(-1)
    t = work[: ny * _LANES]
    carry = work[ny * _LANES: ny * (_LANES + 1)]
    carry[:] = 0.0
    if nx < 8 or ny < 8:
        _x_back_rows(u, cx, carry, 0, nx)
        for i in range(nx):
            _y_line(u, i, cy)
        return
    rem = ny % 8
    ny8 = ny - rem
    zero = _vsplat(0.0)
    i1 = nx
    while i1 > 0:
        # a block of 16 rows, fewer only at the top (never fewer than 8)
        n_rows = _LANES
        if i1 < _LANES:
            n_rows = i1
        elif i1 < _LANES + 8:
            n_rows = i1 - 8
        i0 = i1 - n_rows
        _x_back_rows(u, cx, carry, i0, i1)
        # two groups of 8 rows; in a block of 8..15 rows they overlap and the shared rows
        # are computed twice, identically
        o0 = (i1 - 8) * ny
        o1 = i0 * ny
        p0 = zero
        p1 = zero
        for j0 in range(0, ny8, 8):
            p0 = _y_forward_tile(uf, o0 + j0, ny, t, 0, cy, j0, 0, p0)
            p1 = _y_forward_tile(uf, o1 + j0, ny, t, 8, cy, j0, 0, p1)
        q0 = zero
        q1 = zero
        if rem:
            # the last rem columns come from a tile overlapping the previous one
            j0 = ny - 8
            p0 = _y_forward_tile(uf, o0 + j0, ny, t, 0, cy, j0, 8 - rem, p0)
            p1 = _y_forward_tile(uf, o1 + j0, ny, t, 8, cy, j0, 8 - rem, p1)
            for j in range(ny - 1, ny8 - 1, -1):
                bwd = _vsplat(cy[3, j])
                q0 = _vfma(bwd, q0, _vload(t, j * _LANES))
                _vstore(t, j * _LANES, q0)
                q1 = _vfma(bwd, q1, _vload(t, j * _LANES + 8))
                _vstore(t, j * _LANES + 8, q1)
            # stores columns ny-8 .. ny-1; those below ny8 are placeholders, overwritten next
            for g in range(2):
                og = o0 if g == 0 else o1
                to = (ny - 8) * _LANES + 8 * g
                _store_tile(uf, og + ny - 8, ny,
                            _vload(t, to), _vload(t, to + _LANES), _vload(t, to + 2 * _LANES),
                            _vload(t, to + 3 * _LANES), _vload(t, to + 4 * _LANES),
                            _vload(t, to + 5 * _LANES), _vload(t, to + 6 * _LANES),
                            _vload(t, to + 7 * _LANES))
        for j0 in range(ny8 - 8, -1, -8):
            q0 = _y_back_tile(uf, o0 + j0, ny, t, 0, cy, j0, q0)
            q1 = _y_back_tile(uf, o1 + j0, ny, t, 8, cy, j0, q1)
        i1 = i0


@njit(cache=True)
def _check_shapes(u, a, b, cx, cy, work):
    nx, ny = u.shape
    if (a.shape != u.shape or b.shape != u.shape or cx.shape != (4, nx)
            or cy.shape != (4, ny) or work.size < ny * (_LANES + 1)):
        raise ValueError("lod_steps: array shapes do not match the field")


@njit(cache=True)
def lod_steps(u, a, b, cx, cy, work, n_steps):
    """Advance field ``u`` (nx, ny), in place, by ``n_steps`` sub-steps.

    Each sub-step: reaction ``u <- a u + b`` (``a``, ``b`` from :func:`reaction_factors`),
    then the x and y backward-Euler sweeps with factors ``cx = axis_factors(nx, ...)`` and
    ``cy = axis_factors(ny, ...)``. ``work``: float64 scratch of length
    :func:`work_size`. Allocates nothing.
    """
    _check_shapes(u, a, b, cx, cy, work)
    for _ in range(n_steps):
        _reaction_and_x_forward(u, a, b, cx)
        _x_back_and_y_sweep(u, cx, cy, work)


@njit(cache=True)
def lod_step(u, a, b, cx, cy, work):
    """One sub-step of :func:`lod_steps` (the unit the benchmark counts)."""
    _check_shapes(u, a, b, cx, cy, work)
    _reaction_and_x_forward(u, a, b, cx)
    _x_back_and_y_sweep(u, cx, cy, work)


@njit(cache=True, fastmath=_FASTMATH)
def reaction_steps(u, a, b, n_steps):
    """``n_steps`` reaction-only sub-steps ``u <- a u + b`` (a field that does not diffuse)."""
    nx, ny = u.shape
    for _ in range(n_steps):
        for i in range(nx):
            for j in range(ny):
                u[i, j] = u[i, j] * a[i, j] + b[i, j]
