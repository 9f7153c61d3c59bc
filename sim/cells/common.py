"""What every agent type shares: Mesa agents as thin views of the population arrays."""

from functools import partial
from typing import Callable

import numpy as np
from mesa.discrete_space import CellAgent

from ..config.params import FIELD_NAMES
from .lattice import gather, walk

__all__ = ["ArrayAgent", "Signals", "field_signals", "crawl", "relocate", "uniforms_for"]


class ArrayAgent(CellAgent):
    """A Mesa agent whose state lives in ``model.populations[kind]`` row ``self.slot``.

    Position is Mesa's own ``agent.cell`` (kept in step with the arrays by the model);
    ``state`` reads the array, so the two can never disagree.
    """

    kind: str = ""
    STATES: tuple[str, ...] = ()

    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.slot = -1

    @property
    def state(self) -> str:
        return self.STATES[self.model.populations[self.kind]["state"][self.slot]]


def relocate(agents: list, cells: list, old: list, new: list, empty: np.ndarray) -> None:
    """Move Mesa ``CellAgent``s between cells in one batch, as ``agent.cell = new`` would.

    ``cells``: the grid's cells by flat voxel index; ``old``, ``new``: flat voxel indices,
    one per agent; ``empty``: the grid's ``empty`` layer array, flattened (a view).
    Mesa 3.5's ``HasCell.cell`` setter appends the agent to the new cell's ``_agents``,
    removes it from the old one's and sets ``_mesa_cell``; each ``Cell.add_agent`` and
    ``remove_agent`` also writes the ``empty`` layer through a per-cell property. Here
    the list updates run in one plain loop and ``empty`` is written once, vectorised:
    False at the new voxels, then "no agents left" at the old ones. The grids here have
    unlimited capacity, so no capacity check is needed (tests compare the result with
    the setter's).
    """
    for agent, o, n in zip(agents, old, new):
        cell = cells[n]
        cell._agents.append(agent)
        cells[o]._agents.remove(agent)
        agent._mesa_cell = cell
    empty[new] = False
    empty[old] = [not cells[o]._agents for o in old]


def uniforms_for(m, rows: np.ndarray, n: int) -> np.ndarray:
    """Length-``n`` array with fresh U(0, 1) draws at ``rows`` and 0 elsewhere.

    For kernels that read one uniform per listed row: only those rows cost a draw.
    """
    u = np.zeros(n)
    u[rows] = m.rng.random(len(rows))
    return u


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
    ``other_at`` are excluded. Mesa agents follow their rows.
    """
    n = pop.n
    n_moves = np.floor(m.scales.voxels_per_step(speed) + m.rng.random(n)).astype(np.int64)
    if still is not None:
        n_moves[still] = 0
    order = m.rng.permutation(np.flatnonzero(n_moves > 0))
    if order.size == 0:
        return
    with np.errstate(divide="ignore"):
        t_move = np.where(speed > 0, m.p.domain.voxel_um / speed, np.inf)
    persist = np.exp(-t_move / max(persistence_min, 1e-12))
    u = m.rng.random((order.size, int(n_moves.max()), 3))
    old_x, old_y = pop["x"][order], pop["y"][order]
    walk(order, pop["x"], pop["y"], pop["heading"], n_moves, bias, persist,
         field, pop.at, other_at, u)
    m.sync_cells(pop, old_x, old_y, rows=order)
