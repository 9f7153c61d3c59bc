"""Grid-aligned arrays of who is where and in what state: the truth the simulation reads.

Each cell type is a :class:`Population`: compact numpy columns (``x``, ``y``, ``state``
and type-specific ones) and ``at``, a grid map from voxel to row (-1 where empty; one
agent of a type per voxel). Rules and movement run on the columns; the Mesa agents
(:mod:`.mirror`) follow what changed. Rows are kept compact by swap-remove, so a row
number may change when others are removed.
"""

from typing import Any

import numpy as np

__all__ = ["Population", "with_room"]


def with_room(arr: np.ndarray, need: int, keep: int) -> np.ndarray:
    """``arr`` if it holds ``need`` entries, else a zeroed array of its dtype, doubled in
    length until it does, holding ``arr``'s first ``keep`` entries."""
    cap = len(arr)
    if need <= cap:
        return arr
    while cap < need:
        cap *= 2
    new = np.zeros(cap, arr.dtype)
    new[:keep] = arr[:keep]
    return new


class Population:
    """Struct-of-arrays for one agent type on an (nx, ny) grid.

    ``columns`` maps each extra column to its dtype, or to ``(dtype, value)`` for a column
    whose new rows start at ``value`` rather than 0.
    """

    def __init__(self, name: str, columns: dict[str, Any], shape: tuple[int, int], capacity: int = 256):
        self.name = name
        self.starts = {k: v[1] for k, v in columns.items() if isinstance(v, tuple)}
        columns = {k: v[0] if isinstance(v, tuple) else v for k, v in columns.items()}
        self.dtypes = {"x": np.int32, "y": np.int32, "state": np.int8, **columns}
        self._cols = {k: np.zeros(capacity, dt) for k, dt in self.dtypes.items()}
        self.n = 0
        self.at = np.full(shape, -1, dtype=np.int32)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, col: str) -> np.ndarray:
        """Live view of a column for the current rows."""
        return self._cols[col][: self.n]

    def state(self) -> dict[str, np.ndarray]:
        """The rows as they are: a copy of every column's first ``n`` entries, by column
        name (``at`` follows from ``x`` and ``y``)."""
        return {col: arr[: self.n].copy() for col, arr in self._cols.items()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Replace every row by those of ``state`` (as :meth:`state` gives it: one array per
        column, all of one length, of the column's dtype) and rebuild ``at`` from them."""
        if set(state) != set(self.dtypes):
            raise ValueError(f"{self.name}: state has columns {sorted(state)}, expected "
                             f"{sorted(self.dtypes)}")
        n = len(state["x"])
        cap = 256
        while cap < n:
            cap *= 2
        for col, dt in self.dtypes.items():
            arr = np.asarray(state[col])
            if arr.shape != (n,) or arr.dtype != np.dtype(dt):
                raise ValueError(f"{self.name}: column {col} is {arr.dtype}{arr.shape}, "
                                 f"expected {np.dtype(dt)}({n},)")
            self._cols[col] = np.zeros(cap, dt)
            self._cols[col][:n] = arr
        self.n = n
        self.at.fill(-1)
        self.at[self["x"], self["y"]] = np.arange(n, dtype=np.int32)
        if (self.at >= 0).sum() != n:
            raise ValueError(f"{self.name}: two rows of the state share a voxel")

    def _grow(self, need: int) -> None:
        for k, arr in self._cols.items():
            self._cols[k] = with_room(arr, need, self.n)

    def add(self, x, y, **values) -> np.ndarray:
        """Append rows (the voxels must be free of this type); return their row numbers."""
        x = np.asarray(x, dtype=np.int32)
        y = np.asarray(y, dtype=np.int32)
        k = x.size
        rows = np.arange(self.n, self.n + k)
        if k == 0:
            return rows
        if (self.at[x, y] >= 0).any():
            raise RuntimeError(f"{self.name}: adding to an occupied voxel")
        self._grow(self.n + k)
        new = slice(self.n, self.n + k)  # the new rows, as a slice (cheaper than an index)
        cols = self._cols
        cols["x"][new] = x
        cols["y"][new] = y
        for col, v in values.items():
            cols[col][new] = v
        for col, arr in cols.items():  # the columns not given start at their start value
            if col not in values and col != "x" and col != "y":
                arr[new] = self.starts.get(col, 0)
        self.at[x, y] = rows
        self.n += k
        return rows

    @staticmethod
    def _removal_order(rows) -> list[int]:
        """The rows to remove, each once, highest first (the order of :meth:`remove`)."""
        return sorted(set(int(i) for i in np.atleast_1d(rows)), reverse=True)

    def renumbering(self, rows) -> np.ndarray:
        """What :meth:`remove` of ``rows`` will do to the row numbers: for each current row
        its row afterwards, -1 for the removed ones (for columns of other populations that
        hold rows of this one)."""
        held = np.arange(self.n)  # the current row each position will hold
        n = self.n
        for r in self._removal_order(rows):
            n -= 1
            held[r] = held[n]  # the last row moves into r (nothing moves when r is last)
        new = np.full(self.n, -1)
        new[held[:n]] = np.arange(n)
        return new

    def remove(self, rows) -> list[int]:
        """Remove rows by swap-remove, highest first; return the rows in the order removed
        (what the Mesa mirror repeats)."""
        order = self._removal_order(rows)
        for r in order:
            last = self.n - 1
            self.at[self._cols["x"][r], self._cols["y"][r]] = -1
            if r != last:
                for arr in self._cols.values():
                    arr[r] = arr[last]
                self.at[self._cols["x"][r], self._cols["y"][r]] = r
            self.n -= 1
        return order
