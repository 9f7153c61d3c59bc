"""Numba kernels of the fields: reaction plus LOD backward-Euler sub-steps on a 2D grid.

A field is a C-contiguous float64 array indexed [x, y]. The kernels work in their own
layout: shape (nx, ny) with ny rounded up to a multiple of 8 (:func:`padded`; the padding
columns have zero y factors, so they stay 0 and never touch the field) and, for speed,
the data 64-byte aligned (:func:`aligned_zeros`), so that every 8-wide vector is one
cache line (split-line vector loads and stores cost ~40% of the speed on Intel cores).
:class:`.transient.FieldSolver` keeps such a scratch copy; :func:`lod_steps_sources` reads
the field into it in its first pass and writes it back in its last. One sub-step of
length h (min) is

1. reaction, implicit and pointwise: ``u <- A u + B`` with ``A = 1/(1 + h (decay + uptake +
   supply_rate))`` and ``B = h (release + supply_rate * supply_target) A``
   (:func:`reaction_from_sources` makes them once per model step, as a :class:`Reaction`);
2. x sweep: solve ``(I - h D d2/dx2) u' = u`` along axis 0 for every y;
3. y sweep: solve ``(I - h D d2/dy2) u'' = u'`` along axis 1 for every x.

Each sweep is a constant-coefficient tridiagonal solve. Its Thomas factors depend only on
``r = h D / dx^2``, the length and the boundary, so :func:`axis_factors` computes them once
and every sub-step reuses them. A "dirichlet" boundary is a ghost voxel held at the
boundary value just outside the edge; it adds ``r * value`` to the edge voxel's right-hand
side. "noflux" mirrors the edge voxel (zero gradient). All factors are >= 0, so
non-negative inputs give non-negative outputs.

How it is fast on one core (``benchmarks/bench_diffusion.py`` measures it):

* Reaction and the x forward elimination are one pass over rows of 8-wide vectors (the x
  recurrence runs across contiguous rows).
* The rest goes in blocks of 16 rows, from the end of the elimination order. For each 8x8
  tile the x back substitution runs down its rows (vectors along y), the tile is transposed
  in registers, and the y forward elimination continues on vectors whose 8 lanes are 8
  rows: the y recurrence, a chain of dependent operations along each contiguous row, runs
  for 8 rows at once, and the block's two groups of 8 rows give two independent chains.
  The y back substitution transposes back and stores the block's final rows.
* Successive sub-steps run the x elimination in alternate directions, so the next
  sub-step's reaction and forward elimination follow each block while it is in cache: one
  pass over memory a sub-step, which reads and writes u (16 bytes a voxel).
* A and B are uniform (decay only) except where there are sources, so a :class:`Reaction`
  stores each as its uniform value plus, per row, a bit mask of the voxels with their own
  value (uptake for A, release for B) and those values packed in column order. The
  forward elimination expands each 8-voxel group's packed values into vector lanes
  (``vexpand``, llvm.masked.expandload), so a sub-step reads 1/4 + 8 (fa + fb) bytes a
  voxel of them (fa, fb: the fractions listed) instead of 16 for dense A and B: 17-20
  instead of 32 bytes a voxel in all, and a 1000 x 1000 field's u (8 MB) and reaction
  (1-3 MB) stay in the L3 cache from one sub-step to the next.
* Vectors, fused multiply-adds and transposes are LLVM IR written through numba intrinsics
  (``vload``, ``vfma``, ``vtranspose``...); numba's auto-vectoriser did not produce
  them. The arithmetic is plain IEEE (fused multiply-adds, no reassociation), so the same
  inputs give bit-identical outputs on every call, whatever the arrays' alignment.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, types
from numba.extending import overload

from .simd import (
    aligned_zeros,
    popcount,
    vadd,
    vcompress,
    vcount_valid,
    vdiv,
    vexpand,
    vfma,
    vload,
    vmul,
    vne_bits,
    vsplat,
    vstore,
    vtranspose,
)

__all__ = [
    "FieldConstants",
    "Reaction",
    "Scratch",
    "SourceTerms",
    "aligned_zeros",
    "axis_factors",
    "field_step",
    "lod_step",
    "lod_steps",
    "lod_steps_sources",
    "new_reaction",
    "padded",
    "reaction_from_sources",
    "reaction_steps",
    "work_size",
]

_FASTMATH = {"contract"}  # allow fused multiply-add only: deterministic, no reassociation
_LANES = 16  # rows per y-sweep block: two groups of 8 (two independent recurrence chains)


# --------------------------------------------------------------------------------------
# Factors
# --------------------------------------------------------------------------------------
def padded(ny: int) -> int:
    """Row length of the kernels' layout for ``ny`` columns: ``ny`` rounded up to 8."""
    return -(-ny // 8) * 8


def axis_factors(n: int, r: float, dirichlet: bool, boundary_value: float = 0.0,
                 length: int | None = None) -> np.ndarray:
    """Thomas factors of ``(I - r d2)`` on a line of ``n`` voxels, shape (4, length).

    ``r = h D / dx^2`` (dimensionless). Rows: ``inv`` (1 / pivot), ``edge`` (the dirichlet
    ghost term ``r * boundary_value`` times ``inv`` at both ends, else 0), ``fwd`` (weight of
    the previous value in forward elimination, 0 at i=0) and ``bwd`` (weight of the next
    value in back substitution, 0 at i=n-1). Forward: ``d_i = inv_i rhs_i + edge_i + fwd_i
    d_(i-1)``; back: ``x_i = d_i + bwd_i x_(i+1)``. ``length`` (>= n, default n) pads with
    zero factors: a padding voxel's result is 0 and it does not touch the line's voxels
    (the y factors of a :func:`padded` row).
    """
    length = n if length is None else length
    if length < n:
        raise ValueError(f"length {length} < n {n}")
    diag = np.full(n, 1.0 + 2.0 * r)
    if not dirichlet:
        diag[0] = diag[-1] = 1.0 + r
    f = np.zeros((4, length))
    pivot = diag[0]
    f[0, 0] = 1.0 / pivot
    for i in range(1, n):
        pivot = diag[i] - r * r * f[0, i - 1]
        f[0, i] = 1.0 / pivot
    if dirichlet:
        f[1, 0] = r * boundary_value * f[0, 0]
        f[1, n - 1] = r * boundary_value * f[0, n - 1]
    f[2, 1:n] = r * f[0, 1:n]
    f[3, :n - 1] = r * f[0, :n - 1]
    return f


def work_size(nx: int, ny: int) -> int:
    """Length of the float64 scratch array :func:`lod_steps` needs for an (nx, ny) field
    (ny: the padded row length)."""
    return ny * (_LANES + 1)


class Reaction(NamedTuple):
    """The pointwise reaction ``u <- a u + b`` of an (nx, ny) field (ny: the padded row
    length, a multiple of 8; padding voxels take the uniform factors), stored compactly: ``a``
    is ``a0`` except at voxels with uptake (or supply), ``b`` is ``b0`` except at voxels
    with release (or supply); each keeps its own list of those voxels and their values,
    packed row by row. A sub-step reads 1/4 + 8 (fa + fb) bytes a voxel of it (fa, fb: the
    listed fractions) instead of 16 for dense ``a`` and ``b``.

    Attributes:
        ab0: float64 (2,), the uniform a0 (dimensionless) and b0 (concentration).
        mask: uint8 (2, nx, ny / 8); bit m of mask[0, i, g] is set if voxel
            (i, 8 g + m) has its own ``a``, of mask[1, i, g] if it has its own ``b``.
        start: int64 (2, nx + 1); row i's own ``a`` values are a[start[0, i]:start[0, i + 1]]
            in column order, its own ``b`` values b[start[1, i]:start[1, i + 1]].
        a, b: float64 (nx * ny), packed values (room for every voxel).
    """

    ab0: np.ndarray
    mask: np.ndarray
    start: np.ndarray
    a: np.ndarray
    b: np.ndarray


# numba's disk cache pickles these classes by reference in its index files: after one is
# renamed or removed, stale cache files fail to load (AttributeError); delete __pycache__.
class SourceTerms(NamedTuple):
    """A field's sources over one model step, each an (nx, nys) float64 array (nys: the
    field's own columns) or None (zero everywhere; the kernels are compiled for each
    combination of given and absent sources, and skip the absent ones).

    Attributes:
        release: release rate (concentration/min).
        uptake: uptake rate (1/min).
        supply_rate: vessel supply rate (1/min).
        supply_target: the concentration the supply drives toward (concentration; used
            only with supply_rate).
    """

    release: np.ndarray | None
    uptake: np.ndarray | None
    supply_rate: np.ndarray | None
    supply_target: np.ndarray | None


class FieldConstants(NamedTuple):
    """One field's constants of a model step (:func:`field_step`).

    Attributes:
        h: sub-step length (min).
        decay: uniform first-order decay (1/min).
        n_sub: sub-steps per model step.
        diffusive: whether the field diffuses (if not, ``cx`` is the identity and the
            sub-steps are reaction only).
        cx, cy: Thomas factors of the x and y sweeps (:func:`axis_factors`), shapes
            (4, nx) and (4, padded ny): dimensionless, the ``edge`` row in concentration.
    """

    h: float
    decay: float
    n_sub: int
    diffusive: bool
    cx: np.ndarray
    cy: np.ndarray


class Scratch(NamedTuple):
    """Scratch of the field steps of one thread, in the kernels' layout (one field at a
    time).

    Attributes:
        u: float64 (nx, padded ny), 64-byte aligned: the field being advanced
            (concentration).
        rx: the sub-steps' :class:`Reaction`.
        work: float64 (:func:`work_size`,), 64-byte aligned.
    """

    u: np.ndarray
    rx: Reaction
    work: np.ndarray


def new_reaction(nx: int, ny: int) -> Reaction:
    """An empty :class:`Reaction` for an (nx, ny) field, ny a multiple of 8 (to fill with
    :func:`reaction_from_sources`)."""
    if ny % 8:
        raise ValueError(f"row length {ny} is not a multiple of 8 (see kernels.padded)")
    return Reaction(np.zeros(2), np.zeros((2, nx, ny // 8), np.uint8),
                    np.zeros((2, nx + 1), np.int64), np.zeros(nx * ny), np.zeros(nx * ny))


@njit(cache=True, inline="always")
def _valid(x):
    return (x >= 0.0) & (x < np.inf)


@njit(cache=True, inline="always")
def _columns(s, nx, nys):
    """Columns of source ``s`` (None: ``nys``), which must have nx rows and, if nys >= 0,
    nys columns."""
    if s is None:
        return nys
    if s.shape[0] != nx or (nys >= 0 and s.shape[1] != nys):
        raise ValueError("reaction: the source arrays differ in shape")
    return s.shape[1]


@njit(cache=True)
def _source_columns(release, uptake, supply_rate, supply_target, nx, ny):
    """Columns of the given source arrays (all (nx, nys), ny - 8 < nys <= ny); ny if none."""
    nys = _columns(release, nx, -1)
    nys = _columns(uptake, nx, nys)
    nys = _columns(supply_rate, nx, nys)
    nys = _columns(supply_target, nx, nys)
    if nys < 0:
        return ny
    if not (ny - 8 < nys <= ny):
        raise ValueError("reaction: the sources do not match the padded field")
    return nys


def _reaction_rows(rx, h, decay, sources, u, cx, keep, field):
    """Compiled callers only (:func:`_reaction_rows_for`)."""
    raise NotImplementedError("_reaction_rows is called from compiled code only")


@overload(_reaction_rows, jit_options=dict(fastmath=_FASTMATH, error_model="numpy"))
def _reaction_rows_for(rx, h, decay, sources, u, cx, keep, field):
    """:func:`_reaction_rows` for the given types: numba prunes branches on arguments
    that are None, not on members of a tuple, so which of the :class:`SourceTerms` are
    given is fixed here, at compile time, from their types (numpy error model: division
    unchecked)."""
    if not (isinstance(sources, types.BaseTuple) and len(sources) == 4):
        return None
    has_release, has_uptake, has_rate, has_target = (
        not isinstance(t, types.NoneType) for t in sources.types)

    def impl(rx, h, decay, sources, u, cx, keep, field):
        """Make the reaction factors of sub-steps of h (min) from the :class:`SourceTerms`,
        as :func:`reaction_from_sources` describes, and store them in :class:`Reaction`
        ``rx`` if ``keep``; unless ``u`` is None, also apply them to ``u`` with the x
        forward elimination (order +1, factors ``cx``), as :func:`_x_forward_rows` does,
        reading the field from ``field`` (shaped as the sources) instead of ``u`` if it is
        given. Returns how many source values are negative or not finite (0: all
        valid)."""
        release, uptake = sources.release, sources.uptake
        supply_rate, supply_target = sources.supply_rate, sources.supply_target
        nx, nb = rx.mask.shape[1:]
        ny = nb * 8  # padded row length
        nys = _source_columns(release, uptake, supply_rate, supply_target, nx, ny)
        nys = _columns(field, nx, nys if nys != ny or field is None else -1)
        if not (ny - 8 < nys <= ny):
            raise ValueError("reaction: the field does not match the padded field")
        ns8 = nys - nys % 8  # source columns covered by whole vectors
        bits_a, bits_b = rx.mask[0].reshape(-1), rx.mask[1].reshape(-1)
        if has_uptake:
            kf = uptake.reshape(-1)
        if has_rate:
            pf = supply_rate.reshape(-1)
            if has_target:
                tf = supply_target.reshape(-1)
        if has_release:
            sf = release.reshape(-1)
        if u is not None:
            uf = u.reshape(-1)
            vf = uf if field is None else field.reshape(-1)  # where u is read from
            sv = 0  # vf index minus uf index, in this row
        a0 = 1.0 / (1.0 + h * decay)
        a0v, zero, one = vsplat(a0), vsplat(0.0), vsplat(1.0)
        hv, decay_v = vsplat(h), vsplat(decay)
        fa_uniform = vdiv(one, vfma(hv, decay_v, one))  # fa where loss is the decay alone
        rx.ab0[0], rx.ab0[1] = a0, 0.0
        rx.start[:, 0] = 0
        good = 0
        ka = kb = 0  # how many a and b values are packed so far
        for i in range(nx):
            o = i * ny  # the padded row in u and in the masks
            s = i * nys - o  # source index minus padded index, in this row
            if u is not None:
                if field is not None:
                    sv = s
                op = o - ny if i > 0 else o  # the previous row (fwd 0 at i = 0)
                inv, edge, fwd = cx[0, i], cx[1, i], cx[2, i]
                inv_v, edge_v, fwd_v = vsplat(inv), vsplat(edge), vsplat(fwd)
            for j in range(o, o + ns8, 8):
                loss, gain = decay_v, zero
                if has_uptake:
                    x = vload(kf, s + j)
                    good += vcount_valid(x)
                    loss = vadd(loss, x)
                if has_rate:
                    p = vload(pf, s + j)
                    good += vcount_valid(p)
                    loss = vadd(loss, p)
                    if has_target:
                        t = vload(tf, s + j)
                        good += vcount_valid(t)
                        gain = vfma(p, t, gain)
                if has_release:
                    x = vload(sf, s + j)
                    good += vcount_valid(x)
                    gain = vadd(gain, x)
                fa = fa_uniform  # most voxels take up nothing: skip the (slow) division there
                if vne_bits(loss, decay_v):
                    fa = vdiv(one, vfma(hv, loss, one))
                fb = vmul(vmul(hv, gain), fa)
                if keep:  # list the lanes whose factors are not the uniform ones
                    ma, mb = vne_bits(fa, a0v), vne_bits(fb, zero)
                    vcompress(rx.a, ka, ma, fa)
                    vcompress(rx.b, kb, mb, fb)
                    g = (j - o) // 8 + i * nb
                    bits_a[g], bits_b[g] = ma, mb
                    ka += popcount(ma)
                    kb += popcount(mb)
                if u is not None:
                    w = vfma(vload(vf, sv + j), fa, fb)
                    vstore(uf, j, vfma(fwd_v, vload(uf, op - o + j), vfma(w, inv_v, edge_v)))
            if ns8 == ny:
                rx.start[0, i + 1], rx.start[1, i + 1] = ka, kb
                continue
            ma = mb = 0
            # the row's last group one by one (padding: no sources)
            for j in range(o + ns8, o + ny):
                loss, gain = decay, 0.0
                if j - o < nys:
                    if has_uptake:
                        good += _valid(kf[s + j])
                        loss += kf[s + j]
                    if has_rate:
                        good += _valid(pf[s + j])
                        loss += pf[s + j]
                        if has_target:
                            good += _valid(tf[s + j])
                            gain += pf[s + j] * tf[s + j]
                    if has_release:
                        good += _valid(sf[s + j])
                        gain += sf[s + j]
                fa = 1.0 / (1.0 + h * loss)
                fb = h * gain * fa
                if keep and fa != a0:
                    rx.a[ka] = fa
                    ma |= 1 << (j - o - ns8)
                    ka += 1
                if keep and fb != 0.0:
                    rx.b[kb] = fb
                    mb |= 1 << (j - o - ns8)
                    kb += 1
                if u is not None:
                    x = vf[sv + j] if field is None or j - o < nys else 0.0
                    uf[j] = (x * fa + fb) * inv + edge + fwd * uf[op - o + j]
            if keep:
                bits_a[i * nb + ns8 // 8], bits_b[i * nb + ns8 // 8] = ma, mb
            rx.start[0, i + 1], rx.start[1, i + 1] = ka, kb
        n_given = 0
        if has_release:
            n_given += 1
        if has_uptake:
            n_given += 1
        if has_rate:
            n_given += 1
            if has_target:
                n_given += 1
        return n_given * nx * nys - good

    return impl


@njit(cache=True, nogil=True)
def reaction_from_sources(rx, h, decay, release, uptake, supply_rate, supply_target):
    """Fill :class:`Reaction` ``rx`` for one sub-step of h (min): ``a = 1/(1 + h loss)``,
    ``b = h gain a`` with ``loss = decay + uptake + supply_rate``, ``gain = release +
    supply_rate * supply_target``; decay in 1/min, the others (nx, nys) arrays or None
    (zero; nys: the field's columns, its padded row length or fewer). Voxels whose factors
    are the uniform ``a0 = 1/(1 + h decay)``, ``b0 = 0`` (those without sources, padding
    included) are not listed. Returns how many source values are negative or not finite
    (0: all valid); supply_target counts only with supply_rate.
    """
    return _reaction_rows(rx, h, decay, SourceTerms(release, uptake, supply_rate, supply_target),
                          None, None, True, None)


@njit(cache=True, fastmath=_FASTMATH)
def _x_forward_rows(u, rx, cx, d, i0, i1):
    """Reaction ``u <- a u + b`` (factors from :class:`Reaction` ``rx``) fused with the x
    sweep's forward elimination, in place, for rows i0..i1-1 in elimination order ``d``
    (+1: row i is physical row i; -1: physical row nx-1-i; the line's matrix is the same
    read backwards, so ``cx`` serves both). The listed factors are expanded into the
    vectors' lanes from the packed arrays, so a voxel without sources costs no memory."""
    nx, ny = u.shape
    uf = u.reshape(-1)
    a0v, b0v = vsplat(rx.ab0[0]), vsplat(rx.ab0[1])
    for i in range(i0, i1):
        row = i if d > 0 else nx - 1 - i
        o = row * ny
        op = o - d * ny if i > 0 else o  # the previous row in elimination order (fwd 0 at i = 0)
        bits_a, bits_b = rx.mask[0, row], rx.mask[1, row]
        ka, kb = rx.start[0, row], rx.start[1, row]
        inv_v, edge_v, fwd_v = vsplat(cx[0, i]), vsplat(cx[1, i]), vsplat(cx[2, i])
        for j in range(0, ny, 8):
            ma, mb = np.int64(bits_a[j >> 3]), np.int64(bits_b[j >> 3])
            w = vfma(vload(uf, o + j), vexpand(rx.a, ka, ma, a0v), vexpand(rx.b, kb, mb, b0v))
            ka += popcount(ma)
            kb += popcount(mb)
            vstore(uf, o + j, vfma(fwd_v, vload(uf, op + j), vfma(w, inv_v, edge_v)))


@njit(cache=True, fastmath=_FASTMATH)
def _x_back_rows(u, cx, carry, d, i0, i1):
    """x back substitution on rows i1-1 .. i0 (elimination order ``d``); ``carry`` holds
    row i1 (zeros past the end) and on return holds row i0."""
    nx, ny = u.shape
    uf = u.reshape(-1)
    for i in range(i1 - 1, i0 - 1, -1):
        o = (i if d > 0 else nx - 1 - i) * ny
        bwd = vsplat(cx[3, i])
        if i == i1 - 1:
            for j in range(0, ny, 8):
                vstore(uf, o + j, vfma(bwd, vload(carry, j), vload(uf, o + j)))
        else:
            on = o + d * ny  # the next row in elimination order
            for j in range(0, ny, 8):
                vstore(uf, o + j, vfma(bwd, vload(uf, on + j), vload(uf, o + j)))
    o = (i0 if d > 0 else nx - 1 - i0) * ny
    for j in range(0, ny, 8):
        vstore(carry, j, vload(uf, o + j))


@njit(cache=True, inline="always")
def _load_tile(uf, o, ny):
    """Columns of the 8x8 tile whose top-left element is uf[o] (rows ny apart)."""
    return vtranspose(vload(uf, o), vload(uf, o + ny), vload(uf, o + 2 * ny),
                       vload(uf, o + 3 * ny), vload(uf, o + 4 * ny), vload(uf, o + 5 * ny),
                       vload(uf, o + 6 * ny), vload(uf, o + 7 * ny))


@njit(cache=True, inline="always")
def _store_tile(uf, o, ny, c0, c1, c2, c3, c4, c5, c6, c7):
    """Store columns c0..c7 as the 8x8 tile whose top-left element is uf[o]."""
    r = vtranspose(c0, c1, c2, c3, c4, c5, c6, c7)
    for k in range(8):
        vstore(uf, o + k * ny, r[k])


@njit(cache=True, inline="always")
def _y_forward_cols(c, t, to, cy, j0, p):
    """Forward elimination along y over columns j0 .. j0+7 of 8 rows (``c``: the 8
    columns, one lane per row; ``p``: the value at column j0-1); column j's result goes
    to ``t[to + j*_LANES:][:8]``. Returns the last one."""
    for m in range(8):
        j = j0 + m
        p = vfma(vsplat(cy[2, j]), p, vfma(c[m], vsplat(cy[0, j]), vsplat(cy[1, j])))
        vstore(t, to + j * _LANES, p)
    return p


@njit(cache=True, inline="always")
def _x_back_up(uf, o, ny, bwd, i, v):
    """x back substitution of the 8 rows from uf[o] (rows ny apart; 8 columns), from the
    last row up; ``v``: the row below, ``bwd[i + k]`` the weight of row k. Returns the
    rows' columns (transposed) and row 0."""
    v7 = vfma(vsplat(bwd[i + 7]), v, vload(uf, o + 7 * ny))
    v6 = vfma(vsplat(bwd[i + 6]), v7, vload(uf, o + 6 * ny))
    v5 = vfma(vsplat(bwd[i + 5]), v6, vload(uf, o + 5 * ny))
    v4 = vfma(vsplat(bwd[i + 4]), v5, vload(uf, o + 4 * ny))
    v3 = vfma(vsplat(bwd[i + 3]), v4, vload(uf, o + 3 * ny))
    v2 = vfma(vsplat(bwd[i + 2]), v3, vload(uf, o + 2 * ny))
    v1 = vfma(vsplat(bwd[i + 1]), v2, vload(uf, o + ny))
    v0 = vfma(vsplat(bwd[i]), v1, vload(uf, o))
    return vtranspose(v0, v1, v2, v3, v4, v5, v6, v7), v0


@njit(cache=True, inline="always")
def _x_back_down(uf, o, ny, bwd, i, v):
    """As :func:`_x_back_up` from row 0 down (``v``: the row above; ``bwd[i - k]`` the
    weight of row k, the elimination order being reversed). Returns columns and row 7."""
    v0 = vfma(vsplat(bwd[i]), v, vload(uf, o))
    v1 = vfma(vsplat(bwd[i - 1]), v0, vload(uf, o + ny))
    v2 = vfma(vsplat(bwd[i - 2]), v1, vload(uf, o + 2 * ny))
    v3 = vfma(vsplat(bwd[i - 3]), v2, vload(uf, o + 3 * ny))
    v4 = vfma(vsplat(bwd[i - 4]), v3, vload(uf, o + 4 * ny))
    v5 = vfma(vsplat(bwd[i - 5]), v4, vload(uf, o + 5 * ny))
    v6 = vfma(vsplat(bwd[i - 6]), v5, vload(uf, o + 6 * ny))
    v7 = vfma(vsplat(bwd[i - 7]), v6, vload(uf, o + 7 * ny))
    return vtranspose(v0, v1, v2, v3, v4, v5, v6, v7), v7


@njit(cache=True, inline="always")
def _y_back_tile(uf, o, ny, t, to, cy, j0, q):
    """Back substitution along y over tile columns j0+7 .. j0 for 8 rows; stores the tile."""
    c7 = vfma(vsplat(cy[3, j0 + 7]), q, vload(t, to + (j0 + 7) * _LANES))
    c6 = vfma(vsplat(cy[3, j0 + 6]), c7, vload(t, to + (j0 + 6) * _LANES))
    c5 = vfma(vsplat(cy[3, j0 + 5]), c6, vload(t, to + (j0 + 5) * _LANES))
    c4 = vfma(vsplat(cy[3, j0 + 4]), c5, vload(t, to + (j0 + 4) * _LANES))
    c3 = vfma(vsplat(cy[3, j0 + 3]), c4, vload(t, to + (j0 + 3) * _LANES))
    c2 = vfma(vsplat(cy[3, j0 + 2]), c3, vload(t, to + (j0 + 2) * _LANES))
    c1 = vfma(vsplat(cy[3, j0 + 1]), c2, vload(t, to + (j0 + 1) * _LANES))
    c0 = vfma(vsplat(cy[3, j0]), c1, vload(t, to + j0 * _LANES))
    _store_tile(uf, o, ny, c0, c1, c2, c3, c4, c5, c6, c7)
    return c0


@njit(cache=True, fastmath=_FASTMATH)
def _y_lines(u, r0, r1, cy):
    """y sweep of rows r0..r1-1, one line at a time (scalar; for fields of fewer than 8 rows)."""
    ny = u.shape[1]
    for i in range(r0, r1):
        p = 0.0
        for j in range(ny):
            p = cy[2, j] * p + (u[i, j] * cy[0, j] + cy[1, j])
            u[i, j] = p
        p = 0.0
        for j in range(ny - 1, -1, -1):
            p = cy[3, j] * p + u[i, j]
            u[i, j] = p


@njit(cache=True, fastmath=_FASTMATH)
def _y_block(u, r0, r1, cy, t):
    """y sweep of rows r0..r1-1 (8 <= r1 - r0 <= 16) as two groups of 8 rows; when they
    overlap, the shared rows are computed twice, identically. ``t``: ny * 16 scratch."""
    ny = u.shape[1]
    uf = u.reshape(-1)
    o0 = (r1 - 8) * ny
    o1 = r0 * ny
    p0 = vsplat(0.0)
    p1 = p0
    for j0 in range(0, ny, 8):
        p0 = _y_forward_cols(_load_tile(uf, o0 + j0, ny), t, 0, cy, j0, p0)
        p1 = _y_forward_cols(_load_tile(uf, o1 + j0, ny), t, 8, cy, j0, p1)
    _y_backward(uf, ny, o0, o1, cy, t)


@njit(cache=True, fastmath=_FASTMATH)
def _y_backward(uf, ny, o0, o1, cy, t):
    """y back substitution of the two groups of 8 rows at uf[o0], uf[o1] from the forward
    results in ``t``; stores the final rows."""
    q0 = vsplat(0.0)
    q1 = q0
    for j0 in range(ny - 8, -1, -8):
        q0 = _y_back_tile(uf, o0 + j0, ny, t, 0, cy, j0, q0)
        q1 = _y_back_tile(uf, o1 + j0, ny, t, 8, cy, j0, q1)


@njit(cache=True, fastmath=_FASTMATH)
def _xy_block(u, r0, cx, cy, carry, t, d):
    """A block of 16 rows from physical row r0: x back substitution (order ``d``;
    ``carry`` holds the next row in that order, and gets this block's last) fused with the
    forward y elimination on the transposed tiles, then the y back substitution."""
    nx, ny = u.shape
    uf = u.reshape(-1)
    bwd = cx[3]
    o0 = (r0 + 8) * ny  # group 0: rows r0+8 .. r0+15
    o1 = r0 * ny  # group 1: rows r0 .. r0+7
    i = r0 if d > 0 else nx - 1 - r0  # bwd index of row r0
    p0 = vsplat(0.0)
    p1 = p0
    for j0 in range(0, ny, 8):  # one 8-column tile of both groups at a time
        # x back substitution from the row in ``carry``, which gets the groups' last
        if d > 0:
            c0, v = _x_back_up(uf, o0 + j0, ny, bwd, i + 8, vload(carry, j0))
            c1, v = _x_back_up(uf, o1 + j0, ny, bwd, i, v)
        else:
            c1, v = _x_back_down(uf, o1 + j0, ny, bwd, i, vload(carry, j0))
            c0, v = _x_back_down(uf, o0 + j0, ny, bwd, i - 8, v)
        vstore(carry, j0, v)
        # the y forward elimination of the tile's columns
        p0 = _y_forward_cols(c0, t, 0, cy, j0, p0)
        p1 = _y_forward_cols(c1, t, 8, cy, j0, p1)
    _y_backward(uf, ny, o0, o1, cy, t)


@njit(cache=True)
def _copy_rows(u, dst, r0, r1):
    """dst[r0:r1] = u[r0:r1, :dst.shape[1]] (u: padded rows)."""
    nys = dst.shape[1]
    for i in range(r0, r1):
        ui, di = u[i], dst[i]
        for j in range(nys):
            di[j] = ui[j]


@njit(cache=True)
def _sweep(u, rx, cx, cy, work, d, fuse, dst):
    """x back substitution (order ``d``) and the y sweep, block by block from the end of
    the elimination order; with ``fuse``, each finished block then gets the next
    sub-step's reaction and forward elimination, in order ``-d``, while it is in cache;
    otherwise, unless ``dst`` is None, its rows are copied to ``dst`` (unpadded)."""
    nx, ny = u.shape
    t = work[: ny * _LANES]
    carry = work[ny * _LANES: ny * (_LANES + 1)]
    carry[:] = 0.0
    narrow = nx < 8
    i1 = nx
    while i1 > 0:
        n_rows = _LANES  # 16 rows a block, fewer only at the end (never fewer than 8)
        if narrow:
            n_rows = i1
        elif i1 < _LANES:
            n_rows = i1
        elif i1 < _LANES + 8:
            n_rows = i1 - 8
        i0 = i1 - n_rows
        r0 = i0 if d > 0 else nx - i1  # the block's physical rows
        r1 = i1 if d > 0 else nx - i0
        if narrow:
            _x_back_rows(u, cx, carry, d, i0, i1)
            _y_lines(u, r0, r1, cy)
        elif n_rows == _LANES:
            _xy_block(u, r0, cx, cy, carry, t, d)
        else:
            _x_back_rows(u, cx, carry, d, i0, i1)
            _y_block(u, r0, r1, cy, t)
        if fuse:
            _x_forward_rows(u, rx, cx, -d, nx - i1, nx - i0)
        elif dst is not None:
            _copy_rows(u, dst, r0, r1)
        i1 = i0


@njit(cache=True)
def _check_shapes(u, rx, cx, cy, work):
    nx, ny = u.shape
    if (ny % 8 or rx.mask.shape != (2, nx, ny // 8) or rx.start.shape != (2, nx + 1)
            or rx.a.size != nx * ny or rx.b.size != nx * ny or cx.shape != (4, nx)
            or cy.shape != (4, ny) or work.size < ny * (_LANES + 1)):
        raise ValueError("lod_steps: array shapes do not match the (padded) field")


@njit(cache=True, nogil=True)
def lod_steps(u, rx, cx, cy, work, n_steps):
    """Advance field ``u`` (nx, ny), in place, by ``n_steps`` sub-steps.

    ``u`` is in the kernels' layout: C-contiguous rows of :func:`padded` length ny (a
    multiple of 8; columns past the field's own are padding, kept at 0 by the zero
    factors of ``cy``), best 64-byte aligned (:func:`aligned_zeros`). Each sub-step:
    reaction ``u <- a u + b`` (:class:`Reaction` ``rx``, from
    :func:`reaction_from_sources`), then the x and y backward-Euler
    sweeps with factors ``cx = axis_factors(nx, ...)`` and ``cy = axis_factors(ny_field,
    ..., length=ny)``. ``work``: float64 scratch of length :func:`work_size`. Allocates
    nothing. Successive sub-steps run the x elimination in alternate directions, so that
    one pass over memory ends a sub-step and starts the next.
    """
    _check_shapes(u, rx, cx, cy, work)
    if n_steps > 0:
        _x_forward_rows(u, rx, cx, 1, 0, u.shape[0])
        _sweeps(u, rx, cx, cy, work, n_steps, None)


@njit(cache=True)
def _sweeps(u, rx, cx, cy, work, n_steps, dst):
    """The rest of :func:`lod_steps` once the first forward elimination (order +1) is done."""
    d = 1
    for k in range(n_steps):
        _sweep(u, rx, cx, cy, work, d, k < n_steps - 1, dst)
        d = -d


@njit(cache=True, nogil=True)
def lod_steps_sources(scratch, consts, sources, field=None):
    """:func:`reaction_from_sources` then :func:`lod_steps`: the ``consts.n_sub`` (>= 1)
    sub-steps of a field (:class:`FieldConstants` ``consts``) from its
    :class:`SourceTerms` ``sources``, with the reaction made in the first pass over the
    field rather than a pass of its own (and stored in ``scratch.rx`` only for n_sub > 1).

    ``scratch`` (:class:`Scratch`): its ``u`` is the field in the kernels' layout. ``field``
    (optional): the field as an (nx, nys) array of its own columns (any alignment); it is
    read in the first pass and written, block by block, in the last, so ``scratch.u`` is
    then only the padded scratch (no separate copies in or out).

    Returns how many source values are negative or not finite; if any, nothing more is
    done (``scratch.u`` is left partly updated, ``field`` unchanged)."""
    u, rx, work = scratch
    cx, cy, n_steps = consts.cx, consts.cy, consts.n_sub
    _check_shapes(u, rx, cx, cy, work)
    bad = _reaction_rows(rx, consts.h, consts.decay, sources, u, cx, n_steps > 1, field)
    if bad == 0:
        _sweeps(u, rx, cx, cy, work, n_steps, field)
    return bad


@njit(cache=True)
def lod_step(u, rx, cx, cy, work):
    """One sub-step of :func:`lod_steps` (the unit the benchmark counts)."""
    lod_steps(u, rx, cx, cy, work, 1)


@njit(cache=True, nogil=True)
def reaction_steps(u, rx, cx, n_steps):
    """``n_steps`` reaction-only sub-steps ``u <- a u + b`` (a field that does not diffuse:
    ``cx = axis_factors(nx, 0.0, ...)``, whose elimination is the identity)."""
    for _ in range(n_steps):
        _x_forward_rows(u, rx, cx, 1, 0, u.shape[0])


@njit(cache=True, nogil=True)
def field_step(scratch, consts, sources, field):
    """One model step of ``field`` ((nx, nys) array, advanced in place) with constants
    :class:`FieldConstants` ``consts`` and :class:`SourceTerms` ``sources``: ``n_sub``
    sub-steps of :func:`lod_steps_sources`, or :func:`reaction_from_sources` and
    :func:`reaction_steps` for a field that does not diffuse (``diffusive`` False; ``cx``
    then the identity). ``scratch``
    (:class:`Scratch`): in the kernels' layout. Returns how many source values are
    negative or not finite; if any, ``field`` is left unchanged."""
    if consts.diffusive:
        return lod_steps_sources(scratch, consts, sources, field)
    u, rx = scratch.u, scratch.rx
    bad = _reaction_rows(rx, consts.h, consts.decay, sources, None, None, True, None)
    if bad == 0:
        nys = field.shape[1]
        u[:, :nys] = field
        reaction_steps(u, rx, consts.cx, consts.n_sub)
        field[:, :] = u[:, :nys]
    return bad
