"""What the cell types share: lazily computed signals, field gathers, the biased persistent
walk, and per-row random draws."""

from functools import partial
from typing import Callable

import numpy as np

from ..config.field_registry import FIELD_NAMES
from .lattice import gather, place_near, walk

__all__ = ["Signals", "field_signals", "crawl", "uniforms_for"]


def minus_ones(n: int) -> np.ndarray:
    """An int64 array of ``n`` -1s (np.full's result, at less cost a call)."""
    a = np.empty(n, np.int64)
    a.fill(-1)
    return a


def uniforms_for(m, rows: np.ndarray, n: int) -> np.ndarray:
    """Length-``n`` array with fresh U(0, 1) draws at ``rows`` and 0 elsewhere.

    For kernels that read one uniform per listed row: only those rows cost a draw.
    """
    u = np.zeros(n)
    u[rows] = m.rng.random(len(rows))
    return u


def enter_at_vessels(m, src: np.ndarray, at: np.ndarray, other_at: np.ndarray):
    """Voxels (x, y) for immune cells entering at the vessel rows ``src``: each takes its
    vessel's voxel or a free neighbour (free in ``at``, its own type's map, and in
    ``other_at``, the other immune type's), served in a random order; those that find
    none do not enter. Returns the entering rows of ``src`` and their x and y."""
    e = m.endothelial
    n = e.n
    px = minus_ones(n)
    py = minus_ones(n)
    place_near(m.rng.permutation(src), e["x"], e["y"], at, other_at, True,
               uniforms_for(m, src, n), px, py)
    ok = src[px[src] >= 0]
    return ok, px[ok], py[ok]


class Signals(dict):
    """Signal arrays of a population, each computed on first use.

    Built from zero-argument functions; the rules engine reads only the signals its rules
    name, so unused ones (a field gather, a neighbourhood count) are never computed.
    """

    def __init__(self, lazy: dict[str, Callable[[], np.ndarray]]):
        super().__init__()
        self._lazy = dict(lazy)

    def __missing__(self, key: str) -> np.ndarray:
        value = self._lazy[key]()
        self[key] = value
        return value

    def __setitem__(self, key: str, value) -> None:
        self._lazy[key] = lambda: value
        super().__setitem__(key, value)

    def subset(self, rows) -> "Signals":
        """The same signals for a subset of the agents (an index or boolean array)."""
        return Signals({k: partial(_take, self, k, rows) for k in self._lazy})


def _take(signals: Signals, key: str, rows) -> np.ndarray:
    return signals[key][rows]


def field_signals(model, x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    """Lazy getters of the field concentrations at the given voxels, one per field."""
    return {name: partial(_gather, model.fields[name], x, y) for name in FIELD_NAMES}


def _gather(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return gather(field, x, y)


def crawl(m, pop, speed, bias, persistence_min: float, field, other_at, still=None) -> None:
    """Biased persistent walk of a population for one step (see sim.cells.lattice.walk).

    ``speed`` (um/min) gives ``floor(v dt/dx + u)`` moves per step; ``bias`` the
    probability a move climbs ``field``; persistence per move is
    ``exp(-(dx / v) / persistence_min)``. Rows in ``still`` do not move. Voxels taken in
    ``other_at`` are excluded.
    """
    n = pop.n
    n_moves = np.floor(m.scales.voxels_per_step(speed) + m.rng.random(n)).astype(np.int64)
    if still is not None:
        n_moves[still] = 0
    order = m.rng.permutation(np.flatnonzero(n_moves > 0))
    if order.size == 0:
        return
    t_move = np.divide(m.p.domain.voxel_um, speed, out=np.full(n, np.inf), where=speed > 0)
    persist = np.exp(-t_move / max(persistence_min, 1e-12))
    u = m.rng.random((order.size, int(n_moves.max()), 3))
    walk(order, pop["x"], pop["y"], pop["heading"], n_moves, bias, persist,
         field, pop.at, other_at, u)
