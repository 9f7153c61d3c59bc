"""Grid-aligned arrays of who is where and in what state, beside the Mesa agents.

Each cell type is a :class:`Population`: compact numpy columns (``x``, ``y``, ``state``
and type-specific ones), a parallel list of its Mesa agents, and ``at``, a grid map
from voxel to row (-1 where empty; one agent of a type per voxel). Rules and movement
run on the columns; Mesa agents are touched only to apply what changed (a new agent,
a removed one, a new cell). Rows are kept compact by swap-remove, so an agent's row
(``agent.slot``) may change when others are removed.
"""

from typing import Any

import numpy as np

__all__ = ["Population"]


class Population:
    """Struct-of-arrays for one agent type on an (nx, ny) grid."""

    def __init__(self, name: str, columns: dict[str, Any], shape: tuple[int, int], capacity: int = 256):
        self.name = name
        self.dtypes = {"x": np.int32, "y": np.int32, "state": np.int8, **columns}
        self._cols = {k: np.zeros(capacity, dt) for k, dt in self.dtypes.items()}
        self.n = 0
        self.agents: list = []
        self.at = np.full(shape, -1, dtype=np.int32)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, col: str) -> np.ndarray:
        """Live view of a column for the current rows."""
        return self._cols[col][: self.n]

    def raw(self, col: str) -> np.ndarray:
        """The whole backing buffer (for kernels that update in place)."""
        return self._cols[col]

    def _grow(self, need: int) -> None:
        cap = len(self._cols["x"])
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for k, arr in self._cols.items():
            new = np.zeros(cap, arr.dtype)
            new[: self.n] = arr[: self.n]
            self._cols[k] = new

    def add(self, x, y, **values) -> np.ndarray:
        """Append rows (the voxels must be free of this type); return their row numbers."""
        x = np.asarray(x, dtype=np.int32)
        y = np.asarray(y, dtype=np.int32)
        k = x.size
        rows = np.arange(self.n, self.n + k)
        if k == 0:
            return rows
        if np.any(self.at[x, y] >= 0):
            raise RuntimeError(f"{self.name}: adding to an occupied voxel")
        self._grow(self.n + k)
        new = slice(self.n, self.n + k)  # the new rows, as a slice (cheaper than an index)
        for col in self._cols:
            self._cols[col][new] = 0
        self._cols["x"][new] = x
        self._cols["y"][new] = y
        for col, v in values.items():
            self._cols[col][new] = v
        self.at[x, y] = rows
        self.n += k
        return rows

    def remove(self, rows) -> list:
        """Remove rows (swap-remove); return the Mesa agents that belonged to them."""
        removed = []
        for r in sorted(set(int(i) for i in np.atleast_1d(rows)), reverse=True):
            last = self.n - 1
            self.at[self._cols["x"][r], self._cols["y"][r]] = -1
            if r != last:
                for arr in self._cols.values():
                    arr[r] = arr[last]
                self.at[self._cols["x"][r], self._cols["y"][r]] = r
            if self.agents:
                agent = self.agents[r]
                if r != last:
                    self.agents[r] = self.agents[last]
                    self.agents[r].slot = r
                self.agents.pop()
                removed.append(agent)
            self.n -= 1
        return removed

    def attach(self, rows: np.ndarray, agents: list) -> None:
        """Record the Mesa agents created for freshly added rows."""
        if len(rows) and len(self.agents) != rows[0]:
            raise RuntimeError(f"{self.name}: agents attached out of order")
        for r, a in zip(rows, agents):
            a.slot = int(r)
            self.agents.append(a)
