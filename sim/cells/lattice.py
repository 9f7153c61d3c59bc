"""Numba kernels for agents on the lattice: walks, placement into free space, neighbour counts.

Agents are processed one at a time in a random order drawn by the caller (so two agents
never take the same voxel), with every random number pre-drawn from the model's
generator and passed in: the kernels themselves draw nothing, so a run is reproducible.
Occupancy maps hold the row of the agent in each voxel, -1 where free.
"""

import numba as nb
import numpy as np

__all__ = ["DX", "DY", "walk", "place_near", "move_to_free", "box_sum", "free_within", "gather",
           "count_around", "pick_around"]

#: Moore neighbourhood offsets, direction d = 0..7 (E, NE, N, NW, W, SW, S, SE)
DX = np.array([1, 1, 0, -1, -1, -1, 0, 1], dtype=np.int64)
DY = np.array([0, 1, 1, 1, 0, -1, -1, -1], dtype=np.int64)


@nb.njit(cache=True)
def _is_free(a, b, tx, ty):
    nx, ny = a.shape
    return 0 <= tx < nx and 0 <= ty < ny and a[tx, ty] == -1 and b[tx, ty] < 0


@nb.njit(cache=True)
def _free_neighbour(xi, yi, a, b, include_self, r):
    """A uniformly chosen voxel around (xi, yi) free in both maps, or (-1, -1).

    Free means -1 in ``a`` (-2 marks a voxel already reserved this step) and < 0 in ``b``.
    Candidates are (xi, yi) itself (if ``include_self``), then directions 0..7; the
    ``min(int(r k), k - 1)``-th of the k free ones is taken (counted, then found again:
    no allocation).
    """
    k = 1 if include_self and _is_free(a, b, xi, yi) else 0
    for d in range(8):
        k += _is_free(a, b, xi + DX[d], yi + DY[d])
    if k == 0:
        return -1, -1
    j = min(int(r * k), k - 1)
    if include_self and _is_free(a, b, xi, yi):
        if j == 0:
            return xi, yi
        j -= 1
    for d in range(8):
        tx = xi + DX[d]
        ty = yi + DY[d]
        if _is_free(a, b, tx, ty):
            if j == 0:
                return tx, ty
            j -= 1
    return -1, -1


@nb.njit(cache=True)
def _free_within(xi, yi, a, b, include_self, reach, r):
    """A free voxel at the smallest Chebyshev distance <= ``reach`` (uniform within it)."""
    tx, ty = _free_neighbour(xi, yi, a, b, include_self, r)
    if tx >= 0 or reach <= 1:
        return tx, ty
    nx, ny = a.shape
    size = 8 * reach
    cand_x = np.empty(size, np.int64)
    cand_y = np.empty(size, np.int64)
    for ring in range(2, reach + 1):
        k = 0
        for dx in range(-ring, ring + 1):
            for dy in range(-ring, ring + 1):
                if max(abs(dx), abs(dy)) != ring:
                    continue
                px, py = xi + dx, yi + dy
                if 0 <= px < nx and 0 <= py < ny and a[px, py] == -1 and b[px, py] < 0:
                    cand_x[k] = px
                    cand_y[k] = py
                    k += 1
        if k > 0:
            j = min(int(r * k), k - 1)
            return cand_x[j], cand_y[j]
    return -1, -1


@nb.njit(cache=True)
def place_near(order, sx, sy, a, b, include_self, u, out_x, out_y, reach=1):
    """For each source in ``order`` find a free voxel near (sx, sy) for a newcomer.

    The nearest free voxels within Chebyshev distance ``reach`` are preferred (a daughter
    placed two voxels away stands for a local shove of the cell between). Chosen voxels
    are reserved in ``a`` (set to -2) so later sources skip them; the caller adds the
    newcomers there. Sources with no free voxel get (-1, -1).
    """
    for i in order:
        tx, ty = _free_within(sx[i], sy[i], a, b, include_self, reach, u[i])
        out_x[i] = tx
        out_y[i] = ty
        if tx >= 0:
            a[tx, ty] = -2


@nb.njit(cache=True)
def move_to_free(order, x, y, a, b, u):
    """Move each agent in ``order`` to a uniformly chosen free neighbour, if any."""
    for i in order:
        tx, ty = _free_neighbour(x[i], y[i], a, b, False, u[i])
        if tx >= 0:
            a[x[i], y[i]] = -1
            a[tx, ty] = i
            x[i] = tx
            y[i] = ty


@nb.njit(cache=True)
def _uphill(field, xi, yi, r):
    """Direction of the highest neighbouring value; random (from r) if none is higher."""
    nx, ny = field.shape
    best = field[xi, yi]
    best_d = -1
    for d in range(8):
        tx = xi + DX[d]
        ty = yi + DY[d]
        if 0 <= tx < nx and 0 <= ty < ny and field[tx, ty] > best:
            best = field[tx, ty]
            best_d = d
    if best_d < 0:
        best_d = min(int(r * 8), 7)
    return best_d


@nb.njit(cache=True)
def walk(order, x, y, heading, n_moves, bias, persist, field, own, other, u):
    """Biased persistent random walk, several moves per step, one agent per voxel.

    Each move: with probability ``bias[i]`` head up the gradient of ``field``; else with
    probability ``persist[i]`` keep the last heading; else pick one of 8 directions at
    random. The move happens if the target voxel is inside the grid and free in ``own``
    (this population's map, kept up to date) and ``other`` (a second population that
    excludes it). ``u`` holds pre-drawn uniforms, shape (len(order), max_moves, 3): row
    ``q`` for the agent ``order[q]``.
    """
    nx, ny = own.shape
    for q in range(order.size):
        i = order[q]
        for k in range(n_moves[i]):
            if u[q, k, 0] < bias[i]:
                d = _uphill(field, x[i], y[i], u[q, k, 2])
            elif u[q, k, 1] < persist[i]:
                d = heading[i]
            else:
                d = min(int(u[q, k, 2] * 8), 7)
            heading[i] = d
            tx = x[i] + DX[d]
            ty = y[i] + DY[d]
            if 0 <= tx < nx and 0 <= ty < ny and own[tx, ty] < 0 and other[tx, ty] < 0:
                own[x[i], y[i]] = -1
                own[tx, ty] = i
                x[i] = tx
                y[i] = ty


@nb.njit(cache=True)
def _box3(mask):
    """3x3 box sums of a boolean grid, separably (columns then rows)."""
    nx, ny = mask.shape
    col = np.zeros((nx, ny), np.int32)
    for i in range(nx):
        for j in range(ny):
            col[i, j] = mask[i, j]
    for i in range(nx - 1):
        for j in range(ny):
            col[i, j] += mask[i + 1, j]
    for i in range(nx - 1, 0, -1):
        for j in range(ny):
            col[i, j] += mask[i - 1, j]
    out = col.copy()
    for i in range(nx):
        for j in range(ny - 1):
            out[i, j] += col[i, j + 1]
        for j in range(1, ny):
            out[i, j] += col[i, j - 1]
    return out


@nb.njit(cache=True)
def free_within(rows, xs, ys, a, b, r):
    """Per listed row: some voxel within Chebyshev distance ``r`` of (xs, ys)[row], inside
    the grid, is free in both maps (-1 in ``a``, < 0 in ``b``, as :func:`_is_free`)."""
    out = np.zeros(rows.size, np.bool_)
    for k in range(rows.size):
        xi, yi = xs[rows[k]], ys[rows[k]]
        found = False
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                if _is_free(a, b, xi + dx, yi + dy):
                    found = True
                    break
            if found:
                break
        out[k] = found
    return out


@nb.njit(cache=True)
def count_around(at, x, y):
    """Per listed voxel (x[i], y[i]): how many voxels of its 3x3 box (itself included)
    hold a row in the map ``at`` (``at >= 0``), as float64; ``box_sum(at >= 0)[x, y]``
    without the whole grid."""
    nx, ny = at.shape
    out = np.empty(x.size, np.float64)
    for i in range(x.size):
        c = 0
        for a in range(max(x[i] - 1, 0), min(x[i] + 2, nx)):
            for b in range(max(y[i] - 1, 0), min(y[i] + 2, ny)):
                c += at[a, b] >= 0
        out[i] = c
    return out


@nb.njit(cache=True)
def pick_around(at, x, y, rows, u):
    """For each of ``rows``: a row of the map ``at`` in the 3x3 box around (x[r], y[r]),
    chosen uniformly, or -1 if the box holds none. ``u``: (len(rows), 9) uniforms, one per
    box voxel in the order centre, then :data:`DX`/:data:`DY`; the voxel with the largest
    uniform among those holding a row wins (the first on a tie)."""
    nx, ny = at.shape
    out = np.empty(rows.size, np.int64)
    for q in range(rows.size):
        r = rows[q]
        best, best_score = -1, 0.0
        for j in range(9):
            cx = x[r] + (0 if j == 0 else DX[j - 1])
            cy = y[r] + (0 if j == 0 else DY[j - 1])
            if cx < 0 or cx >= nx or cy < 0 or cy >= ny or at[cx, cy] < 0:
                continue
            score = u[q, j] + 1.0
            if score > best_score:
                best, best_score = at[cx, cy], score
        out[q] = best
    return out


def box_sum(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """Sum of a boolean ``mask`` over the (2r+1)^2 box around every voxel (zero outside)."""
    if radius == 1:
        return _box3(np.ascontiguousarray(mask, dtype=np.bool_))
    m = np.asarray(mask, dtype=np.int32)
    nx, ny = m.shape
    p = np.zeros((nx + 2 * radius, ny + 2 * radius), dtype=np.int32)
    p[radius:-radius, radius:-radius] = m
    c = p.cumsum(0).cumsum(1)
    c = np.pad(c, ((1, 0), (1, 0)))
    w = 2 * radius + 1
    return c[w:, w:] - c[:-w, w:] - c[w:, :-w] + c[:-w, :-w]


@nb.njit(cache=True)
def gather(grid, x, y):
    """``grid[x, y]`` for index arrays x, y (a new float64 array; numba, no temporaries)."""
    out = np.empty(x.size, np.float64)
    for i in range(x.size):
        out[i] = grid[x[i], y[i]]
    return out
