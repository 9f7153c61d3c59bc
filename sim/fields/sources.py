"""The source terms the cells write in one model step, for the field solvers to read.

Per field: release ([field]/min) and first-order uptake (1/min) per voxel; for oxygen also
the vessels' supply rate toward the blood value (1/min). Cells write through
:meth:`Sources.add_release`, :meth:`Sources.add_uptake` and :meth:`Sources.set_supply`,
which remember the voxels written, so clearing touches only those and a solver can skip
an array nobody wrote (:meth:`Sources.written`).
"""

from dataclasses import dataclass, field

import numba as nb
import numpy as np

from ..config.field_registry import FIELD_NAMES

__all__ = ["Sources", "deposit", "zero_at"]


@nb.njit(cache=True)
def _deposit(grid, x, y, rate, flat):
    ny = grid.shape[1]
    g = grid.reshape(-1)
    for i in range(x.size):
        k = np.int64(x[i]) * ny + y[i]
        g[k] += rate[i]
        flat[i] = k


@nb.njit(cache=True)
def _deposit_scalar(grid, x, y, rate, flat):
    ny = grid.shape[1]
    g = grid.reshape(-1)
    for i in range(x.size):
        k = np.int64(x[i]) * ny + y[i]
        g[k] += rate
        flat[i] = k


def deposit(grid: np.ndarray, x: np.ndarray, y: np.ndarray, rate,
            flat: np.ndarray | None = None) -> None:
    """``grid[x, y] += rate`` in place, for a rate per voxel (array) or one for all (scalar).

    Repeated voxels accumulate (unlike numpy's buffered ``+=``); within one population
    voxels are distinct, so the two agree there. ``grid``: C-contiguous. ``flat``
    (optional, int64, at least ``x.size`` long) receives the flat indices ``x * ny + y``
    written (for :func:`zero_at`).
    """
    if flat is None:
        flat = np.empty(x.size, np.int64)
    if np.ndim(rate) == 0:
        _deposit_scalar(grid, x, y, float(rate), flat)
    else:
        _deposit(grid, x, y, np.asarray(rate, dtype=np.float64), flat)


@nb.njit(cache=True)
def _set_scalar(grid, x, y, rate, where, flat):
    """grid[x, y] = rate where ``where``; the flat indices written go to ``flat``."""
    ny = grid.shape[1]
    g = grid.reshape(-1)
    k = 0
    for i in range(x.size):
        if where[i]:
            f = np.int64(x[i]) * ny + y[i]
            g[f] = rate
            flat[k] = f
            k += 1


@nb.njit(cache=True)
def zero_at(grid, flat):
    """grid.flat[flat] = 0 (grid C-contiguous)."""
    g = grid.reshape(-1)
    for i in range(flat.size):
        g[flat[i]] = 0.0


@dataclass
class Sources:
    """Per-voxel source terms of one step: release, uptake, vessel supply.

    Units: release in [field]/min, uptake and supply rates in 1/min. :meth:`clear` zeroes
    only the voxels written since the last clear (an array written at more than a quarter
    of its voxels is filled instead: about as fast as scattered zeroing there).
    """

    release: dict[str, np.ndarray]
    uptake: dict[str, np.ndarray]
    supply_rate: np.ndarray
    _flat: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    _written: list = field(default_factory=list, repr=False)  # (array, start, stop) in _flat
    _used: int = 0

    @classmethod
    def zeros(cls, shape) -> "Sources":
        return cls({f: np.zeros(shape) for f in FIELD_NAMES},
                   {f: np.zeros(shape) for f in FIELD_NAMES}, np.zeros(shape))

    def _named(self) -> dict[str, np.ndarray]:
        """Every array by name: ``release/<field>``, ``uptake/<field>``, ``supply_rate``."""
        return {**{f"release/{f}": a for f, a in self.release.items()},
                **{f"uptake/{f}": a for f, a in self.uptake.items()},
                "supply_rate": self.supply_rate}

    def state(self) -> dict[str, np.ndarray]:
        """A copy of every array written since the last clear, by name (``release/<field>``,
        ``uptake/<field>``, ``supply_rate``); the arrays not named are all zero. Which
        arrays were written is state too: a solve skips an array nobody wrote."""
        written = self.written_ids()
        return {name: a.copy() for name, a in self._named().items() if id(a) in written}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """The sources of ``state`` (as :meth:`state` gives it): the arrays named hold its
        values and count as written (each whole), every other array is zero."""
        named = self._named()
        unknown = set(state) - set(named)
        if unknown:
            raise ValueError(f"sources: unknown arrays {sorted(unknown)}")
        for a in named.values():
            a.fill(0.0)
        self.forget()
        for name, values in state.items():
            a = named[name]
            np.copyto(a, values)
            self._track(a, a.size)[:] = np.arange(a.size)

    def add_release(self, name: str, x, y, rate) -> None:
        """Release of field ``name`` at voxels (x, y) ([field]/min, array or scalar)."""
        deposit(self.release[name], x, y, rate, self._track(self.release[name], len(x)))

    def add_uptake(self, name: str, x, y, rate) -> None:
        """First-order uptake of field ``name`` at voxels (x, y) (1/min)."""
        deposit(self.uptake[name], x, y, rate, self._track(self.uptake[name], len(x)))

    def set_supply(self, x, y, rate: float, where: np.ndarray | None = None) -> None:
        """Vessel supply rate toward the blood value at voxels (x, y) (1/min); with
        ``where`` (bool per voxel listed), only at those."""
        n = len(x) if where is None else int(np.count_nonzero(where))
        flat = self._track(self.supply_rate, n)
        _set_scalar(self.supply_rate, x, y, float(rate),
                    np.ones(len(x), np.bool_) if where is None else where, flat)

    def _track(self, arr: np.ndarray, n: int) -> np.ndarray:
        """Room in the record for the flat indices of ``n`` voxels written into ``arr``."""
        start, stop = self._used, self._used + n
        if stop > self._flat.size:
            grown = np.empty(max(2 * self._flat.size, stop, arr.size), np.int64)
            grown[:start] = self._flat[:start]
            self._flat = grown
        self._written.append((arr, start, stop))
        self._used = stop
        return self._flat[start:stop]

    def written(self, arr: np.ndarray) -> np.ndarray | None:
        """``arr`` if it was written since the last clear, else None (all zero: the field
        solvers then skip it)."""
        return arr if id(arr) in self.written_ids() else None

    def written_ids(self) -> set[int]:
        """``id`` of every array written since the last clear (the others are all zero)."""
        return {id(a) for a, _, _ in self._written}

    def _zeroing(self):
        """(array, (start, stop) into the record, or None: fill it) for every array written
        since the last clear: what :meth:`clear` zeroes."""
        counts: dict[int, int] = {}
        for arr, start, stop in self._written:
            counts[id(arr)] = counts.get(id(arr), 0) + stop - start
        filled = set()
        for arr, start, stop in self._written:
            if counts[id(arr)] > arr.size // 4:
                if id(arr) not in filled:
                    filled.add(id(arr))
                    yield arr, None
            else:
                yield arr, (start, stop)

    def clear(self) -> "Sources":
        """Zero in place every voxel written since the last clear and return self."""
        for arr, where in self._zeroing():
            if where is None:
                arr.fill(0.0)
            else:
                zero_at(arr, self._flat[where[0]:where[1]])
        return self.forget()

    def zeroing_plan(self, arrays) -> tuple[np.ndarray, np.ndarray]:
        """What :meth:`clear` would do, for compiled code to do it (:mod:`.stepper`):
        the flat-index record and rows (slot, start, stop), slot the array's index in
        ``arrays`` (which must hold every array written), start = stop = -1 meaning the
        whole array. Follow with :meth:`forget` once done."""
        slot = {id(a): k for k, a in enumerate(arrays)}
        rows = [(slot[id(arr)], *(where or (-1, -1))) for arr, where in self._zeroing()]
        return self._flat, np.array(rows, np.int64).reshape(-1, 3)

    def forget(self) -> "Sources":
        """Empty the record of written voxels (they must have been zeroed) and return self."""
        self._written.clear()
        self._used = 0
        return self
