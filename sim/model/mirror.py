"""The Mesa side of the model: a Mesa grid whose property layers are the fields, and one
Mesa agent per array row, in the grid cell of its voxel.

The arrays of :mod:`.populations` and the fields are the truth the simulation reads and
writes; the Mesa side mirrors them, so Mesa users, ``mesa.batch_run`` and the browser view
see a real Mesa model (``model.grid`` with one property layer per field, ``model.agents``,
``agent.cell``, ``cell.agents``, the grid's ``empty`` layer). Every touch of Mesa's
internals is in this module.

The contract (:class:`sim.model.NeutroModel`): the Mesa side is built by
:meth:`MesaMirror.build` the first time it is read (``model.grid``, ``model.agents``,
``model.agents_by_type``, ``model.agent_types``, ``model.mirror``), or at t=0 with
``NeutroModel(mesa="eager")``; from then on which agents exist is exact at all times (agents
are created and removed with their rows), and where they stand is brought up to date at
the end of every step by :meth:`MesaMirror.sync`, which moves in one batch every agent
whose row changed voxel. A run that nobody reads through Mesa (``neutrosim run``, the
ensembles) never builds it. The simulation never reads the Mesa side, so results do not
depend on whether or when it is built.

A model's Mesa state besides the mirror, its clock and its DataCollector's records, is
read and set here too (:func:`set_clock`, :func:`records`, :func:`restore_records`), for a
model restored from a saved state (:meth:`sim.model.NeutroModel.restore`).
"""

from collections.abc import Mapping

import numpy as np
from mesa.discrete_space import CellAgent, OrthogonalMooreGrid, PropertyLayer

from .populations import with_room

__all__ = ["ArrayAgent", "TumorCell", "Neutrophil", "Macrophage", "EndothelialCell",
           "AGENT_CLASSES", "MesaMirror", "set_clock", "records", "restore_records"]


class ArrayAgent(CellAgent):
    """A Mesa agent standing for row ``slot`` of ``model.populations[kind]``.

    Its position is Mesa's own ``agent.cell``, kept on the row's voxel by
    :class:`MesaMirror`; its state is in the population's arrays.
    """

    kind: str = ""

    def __init__(self, model, cell):
        super().__init__(model)
        self.cell = cell
        self.slot = -1


class TumorCell(ArrayAgent):
    """A tumor cell (``model.populations["tumor"]``)."""

    kind = "tumor"


class Neutrophil(ArrayAgent):
    """A tissue neutrophil (``model.populations["neutrophils"]``)."""

    kind = "neutrophils"


class Macrophage(ArrayAgent):
    """A tissue macrophage (``model.populations["macrophages"]``)."""

    kind = "macrophages"


class EndothelialCell(ArrayAgent):
    """A vessel cell, stalk or tip (``model.populations["endothelial"]``)."""

    kind = "endothelial"


#: population name -> its Mesa agent class
AGENT_CLASSES = {cls.kind: cls for cls in (TumorCell, Neutrophil, Macrophage, EndothelialCell)}


class MesaMirror:
    """Keeps one Mesa agent per population row, on the row's voxel of ``grid`` as of the
    last :meth:`sync`.

    ``agents[kind]`` lists the agents in row order (rows are swap-removed, so an agent's
    ``slot`` follows its row); ``voxel(kind)[row]`` is the flat voxel (``x * ny + y``) the
    row's agent stands on. ``MesaMirror(model, grid)`` starts with no agents on an existing
    grid; :meth:`build` makes the grid and the agents of a model as it is.
    """

    @classmethod
    def build(cls, model, shape: tuple[int, int], layers: Mapping[str, np.ndarray],
              populations) -> "MesaMirror":
        """A new Mesa grid of ``shape`` whose property layers are ``layers`` (name -> (nx,
        ny) array, shared, not copied: the layer reads and writes the array), and one agent
        per row of ``populations`` (name -> Population) on its voxel, in row order."""
        grid = OrthogonalMooreGrid(shape, torus=False, capacity=None, random=model.random)
        for name, data in layers.items():
            layer = PropertyLayer(name, shape, default_value=0.0, dtype=data.dtype.type)
            layer._data = data  # before add_property_layer, whose cell accessors bind it
            grid.add_property_layer(layer)
        mirror = cls(model, grid)
        for kind, pop in populations.items():
            mirror.added(kind, np.arange(len(pop)), pop["x"], pop["y"])
        return mirror

    def __init__(self, model, grid):
        nx, ny = grid.dimensions
        cells = {c.coordinate: c for c in grid.all_cells.cells}
        self.grid = grid
        self._model = model
        self._ny = ny
        #: Mesa cells by flat voxel index x * ny + y
        self._cells = [cells[(i, j)] for i in range(nx) for j in range(ny)]
        # Mesa's occupancy layer (True = no agent) by flat voxel: a view (copy=False raises
        # rather than copy)
        self._empty = np.reshape(grid.empty.data, -1, copy=False)
        self.agents: dict[str, list[ArrayAgent]] = {kind: [] for kind in AGENT_CLASSES}
        self._voxel = {kind: np.empty(256, np.int64) for kind in AGENT_CLASSES}

    def discard(self) -> None:
        """Remove every agent of this mirror from the model (before the model's arrays
        are replaced wholesale, :meth:`sim.model.NeutroModel.restore`); the grid is left
        to be dropped with the mirror."""
        for kind, agents in self.agents.items():
            for agent in agents:
                agent.remove()
            agents.clear()

    def voxel(self, kind: str) -> np.ndarray:
        """Flat voxel (``x * ny + y``) each row's agent of ``kind`` stands on (a view)."""
        return self._voxel[kind][: len(self.agents[kind])]

    def added(self, kind: str, rows: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Mesa agents for rows just appended to population ``kind``, at voxels (x, y)."""
        agents = self.agents[kind]
        if len(rows) and len(agents) != rows[0]:
            raise RuntimeError(f"{kind}: agents added out of order")
        cls, model, cells = AGENT_CLASSES[kind], self._model, self._cells
        flat = np.asarray(x, np.int64) * self._ny + np.asarray(y, np.int64)
        start = len(agents)
        for r, k in zip(rows.tolist(), flat.tolist()):
            agent = cls(model, cells[k])
            agent.slot = r
            agents.append(agent)
        voxel = self._voxel[kind] = with_room(self._voxel[kind], len(agents), start)
        voxel[start: len(agents)] = flat

    def removed(self, kind: str, rows: list[int]) -> None:
        """Remove the agents of ``rows``, swap-removed one by one in the order given (the
        order in which :meth:`.populations.Population.remove` removed them)."""
        agents, voxel = self.agents[kind], self._voxel[kind]
        gone = []
        for r in rows:
            last = len(agents) - 1
            gone.append(agents[r])
            if r != last:
                agents[r] = agents[last]
                agents[r].slot = r
                voxel[r] = voxel[last]
            agents.pop()
        for agent in gone:
            agent.remove()

    def sync(self, populations) -> None:
        """Move every agent whose row (in ``populations``, name -> Population) changed voxel
        since the last sync to the row's voxel now, in one batch per population."""
        ny = self._ny
        for kind, pop in populations.items():
            voxel = self.voxel(kind)
            now = pop["x"].astype(np.int64) * ny + pop["y"]
            rows = np.flatnonzero(voxel != now)
            if rows.size:
                self.moved(kind, rows, voxel[rows], now[rows])
                voxel[rows] = now[rows]

    def moved(self, kind: str, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Move the agents of ``rows`` from flat voxels ``old`` to ``new``, as ``agent.cell =
        new_cell`` would, in one batch.

        Mesa 3.5's ``HasCell.cell`` setter appends the agent to the new cell's ``_agents``,
        removes it from the old one's and sets ``_mesa_cell``; each ``Cell.add_agent`` and
        ``remove_agent`` also writes the ``empty`` layer through a per-cell property. Here
        the list updates run in one plain loop and ``empty`` is written once, vectorised:
        False at the new voxels, then "no agents left" at the old ones. The grids here have
        unlimited capacity, so no capacity check is needed (tests compare the result with
        the setter's).
        """
        agents, cells, empty = self.agents[kind], self._cells, self._empty
        old, new = old.tolist(), new.tolist()
        for i, o, n in zip(rows.tolist(), old, new):
            agent, cell = agents[i], cells[n]
            cell._agents.append(agent)
            cells[o]._agents.remove(agent)
            agent._mesa_cell = cell
        empty[new] = False
        empty[old] = [not cells[o]._agents for o in old]


# ---------------------------------------------------------------------- Mesa's own state
def set_clock(model, steps: int) -> None:
    """Put Mesa's clock of ``model`` at ``steps`` steps done, as if stepped that far:
    ``model.steps`` and ``model.time`` (one time unit a step), and the next step due at
    ``steps + 1`` (Mesa 3.5 schedules ``step`` as an event; a clock set alone would leave
    it due at time 1 and run every step in between)."""
    schedule = model._default_schedule
    schedule.pause()
    model.steps = int(steps)
    model.time = float(steps)
    schedule.resume()
    schedule._execution_count = int(steps)


def records(collector) -> dict:
    """The model-level records of a Mesa ``DataCollector`` so far: ``{"time": [model time
    of each record], "columns": {reporter: [value of each record]}}``, values as plain
    Python numbers (JSON keeps them exactly)."""
    def plain(v):
        return v.item() if isinstance(v, np.generic) else v

    return {"time": [plain(t) for t in collector._collection_steps],
            "columns": {k: [plain(v) for v in vs] for k, vs in collector.model_vars.items()}}


def restore_records(collector, saved: dict, keep: list[bool]) -> None:
    """Put the records of ``saved`` (as :func:`records` gives them) into ``collector``,
    those where ``keep`` is True, replacing what it held."""
    if set(saved["columns"]) != set(collector.model_reporters):
        raise ValueError(f"records hold columns {sorted(saved['columns'])}, the collector "
                         f"reports {sorted(collector.model_reporters)}")
    collector._collection_steps = [t for t, k in zip(saved["time"], keep) if k]
    collector.model_vars = {name: [v for v, k in zip(saved["columns"][name], keep) if k]
                            for name in collector.model_reporters}
