"""NeutroModel: the Mesa model of tumor cells, neutrophils, macrophages and vessels.

``step()`` is a short list of stages: interventions, cells (each type senses, applies
its rules, and adds its secretion and uptake to this step's field sources), the fields
over the step, then the DataCollector records. One model step is ``time.dt_min`` minutes.

With ``time.source_lag_steps = 1`` (the default) the fields of a step are advanced from the
sources of the step before, on helper threads while the cells act; with 0, after the cells,
from their own sources (docs/numerics.md, "Coupling of cells and fields").
"""

from dataclasses import dataclass, field

import numpy as np
from mesa import Model
from mesa.datacollection import DataCollector
from mesa.discrete_space import OrthogonalMooreGrid

from .. import readouts
from ..cells import endothelial, macrophage, neutrophil, tumor
from ..cells.common import relocate
from ..cells.lattice import deposit, moved_voxels, zero_at
from ..config.params import FIELD_NAMES, Params, load_params
from ..config.rules import BEHAVIOURS
from ..config.units import MIN_PER_DAY, MIN_PER_HOUR, Scales
from ..fields import FieldSpec
from ..fields.multigrid import SteadySolver
from ..fields.stepper import FieldStepper
from ..fields.threads import check_threads, default_threads
from . import tissue
from .populations import Population

__all__ = ["NeutroModel", "resolve_field_threads"]

#: fields advanced in time by the LOD solver; oxygen is solved quasi-steadily
TRANSIENT_FIELDS = tuple(f for f in FIELD_NAMES if f != "oxygen")
#: relative residual of the oxygen solve: errors <= 0.06 mmHg, 21-day readouts within
#: 0.15 seed-to-seed SD of a 1e-6 solve (measured: docs/numerics.md)
OXYGEN_TOL = 1e-4


def resolve_field_threads(threads: int | None = None) -> int:
    """Threads a model solves its fields on: ``threads`` (default
    :func:`~sim.fields.threads.default_threads`), at most one per field."""
    n = default_threads() if threads is None else check_threads(threads)
    return min(n, 1 + len(TRANSIENT_FIELDS))


@dataclass
class Sources:
    """Per-voxel source terms of one step (see sim.fields): release, uptake, vessel supply.

    Units: release in [field]/min, uptake and supply rates in 1/min. Cells write through
    :meth:`add_release`, :meth:`add_uptake` and :meth:`set_supply`, which remember the
    voxels written, so :meth:`clear` zeroes only those (an array written at more than a
    quarter of its voxels is filled instead: about as fast as scattered zeroing there).
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

    def add_release(self, name: str, x, y, rate) -> None:
        """Release of field ``name`` at voxels (x, y) ([field]/min, array or scalar)."""
        deposit(self.release[name], x, y, rate, self._track(self.release[name], len(x)))

    def add_uptake(self, name: str, x, y, rate) -> None:
        """First-order uptake of field ``name`` at voxels (x, y) (1/min)."""
        deposit(self.uptake[name], x, y, rate, self._track(self.uptake[name], len(x)))

    def set_supply(self, x, y, rate: float) -> None:
        """Vessel supply rate toward the blood value at voxels (x, y) (1/min)."""
        self.supply_rate[x, y] = rate
        flat = self._track(self.supply_rate, len(x))
        np.add(np.multiply(x, self.supply_rate.shape[1], out=flat, casting="unsafe"), y,
               out=flat, casting="unsafe")

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
        return arr if any(a is arr for a, _, _ in self._written) else None

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
        """What :meth:`clear` would do, for compiled code to do it (:mod:`sim.fields.stepper`):
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


class NeutroModel(Model):
    """Agent-based model of neutrophil-tumor-vessel dynamics in an advanced mammary tumor.

    Args:
        params: resolved parameters (default: ``load_params(scenario=scenario)``).
        rng: seed (int) or numpy Generator; the only source of randomness.
        scenario: scenario name from params/scenarios/ (used when ``params`` is None).
        width, height: grid size in voxels (override ``domain.nx``, ``domain.ny``).
        threads: threads that solve the fields of a step side by side (default
            :func:`sim.fields.threads.default_threads`: ``NUMBA_NUM_THREADS`` if set, else
            the cores available). Results do not depend on it.
        **overrides: any parameter as ``section__key=value`` (or ``"section.key"``), so
            ``mesa.batch_run`` and SolaraViz can drive the model with plain keywords.
    """

    def __init__(self, params: Params | None = None, *, rng=None, scenario: str | None = None,
                 width: int | None = None, height: int | None = None,
                 threads: int | None = None, **overrides):
        if isinstance(rng, str):  # SolaraViz's InputText delivers text
            rng = int(rng)
        super().__init__(rng=rng)
        if params is None:
            params = load_params(scenario=scenario)
        elif scenario is not None and scenario != params.scenario:
            raise ValueError("give either params or scenario, not both")
        if width is not None:
            overrides["domain.nx"] = width
        if height is not None:
            overrides["domain.ny"] = height
        if overrides:
            params = params.replace(overrides, origin="model keywords")
        self.p = params
        self.scales = Scales(params.domain.voxel_um, params.time.dt_min)
        shape = (params.domain.nx, params.domain.ny)
        self.grid = OrthogonalMooreGrid(shape, torus=False, capacity=None, random=self.random)
        cells = {c.coordinate: c for c in self.grid.all_cells.cells}
        #: Mesa cells in row-major voxel order (index x * ny + y)
        self._cell_list = [cells[(i, j)] for i in range(shape[0]) for j in range(shape[1])]
        # Mesa's own occupancy layer (True = no agent), flat by voxel x * ny + y: a view
        # (copy=False raises rather than copy)
        self._empty_flat = np.reshape(self.grid.empty.data, -1, copy=False)
        self.fields = {
            name: self.grid.create_property_layer(name, default_value=0.0, dtype=float).data
            for name in FIELD_NAMES
        }
        # oxygen relaxes in well under a minute: solved to its quasi-steady state each step
        self.oxygen_solver = SteadySolver(shape, params.domain.voxel_um,
                                          params.oxygen.diffusion_um2_per_min, "dirichlet",
                                          params.oxygen.boundary_mmHg, tol=OXYGEN_TOL)
        self.field_stepper = FieldStepper(
            shape, params.domain.voxel_um, params.time.dt_min, oxygen=self.oxygen_solver,
            oxygen_decay_per_min=params.oxygen.decay_per_min,
            oxygen_blood=params.oxygen.blood_mmHg, transient=self._field_specs(),
            threads=resolve_field_threads(threads))
        self._sources = Sources.zeros(shape)  # written by this step's cells
        # lag 1: the step before's sources, read by the field solves while the cells write
        self._pending = Sources.zeros(shape) if params.time.source_lag_steps else None
        self.populations = {
            "tumor": Population("tumor", tumor.COLUMNS, shape),
            "neutrophils": Population("neutrophils", neutrophil.COLUMNS, shape),
            "macrophages": Population("macrophages", macrophage.COLUMNS, shape),
            "endothelial": Population("endothelial", endothelial.COLUMNS, shape),
        }
        self._base = {
            (cell, name): getattr(getattr(params, key.split(".")[0]), key.split(".")[1])
            for cell, behaviours in BEHAVIOURS.items()
            for name, (_, key, _) in behaviours.items()
        }
        self.treated = False
        self.recruited = 0  # neutrophils that extravasated since t=0
        self.recruit_factor = 1.0
        self.chemotaxis_factor = 1.0
        self.contact_factor = 1.0
        self.steps_per_record = self.scales.steps(params.time.record_every_h * MIN_PER_HOUR)
        self.fields["oxygen"][:] = params.oxygen.boundary_mmHg
        tissue.build(self)
        for _ in range(params.time.warmup_steps):
            self._advance_fields(self._collect_sources(self._sources))
        if params.time.source_lag_steps:  # the first step's fields: from the cells as built
            self._collect_sources(self._pending)
        self.datacollector = DataCollector(model_reporters=readouts.REPORTERS)
        self.datacollector.collect(self)

    # ----------------------------------------------------------------- accessors
    @property
    def tumor(self) -> Population:
        return self.populations["tumor"]

    @property
    def neutrophils(self) -> Population:
        return self.populations["neutrophils"]

    @property
    def macrophages(self) -> Population:
        return self.populations["macrophages"]

    @property
    def endothelial(self) -> Population:
        return self.populations["endothelial"]

    @property
    def field_threads(self) -> int:
        """Threads that solve the fields of a step side by side (``threads``)."""
        return self.field_stepper.threads

    @property
    def time_min(self) -> float:
        """Simulated time since t=0, minutes."""
        return self.scales.minutes(self.steps)

    @property
    def time_h(self) -> float:
        return self.time_min / MIN_PER_HOUR

    def behaviour(self, cell_type: str, name: str, signals, n: int) -> np.ndarray:
        """Rule-modulated value of a behaviour for ``n`` agents (see sim.config.rules)."""
        return self.p.rules.evaluate(cell_type, name, self._base[(cell_type, name)], signals, n)

    def invasive_mask(self) -> np.ndarray:
        return readouts.invasive_mask(self)

    # ----------------------------------------------------------------- agents
    def spawn(self, cls, x, y, **values) -> np.ndarray:
        """Add agents of ``cls`` at voxels (x, y): array rows and Mesa agents together."""
        pop = self.populations[cls.kind]
        rows = pop.add(x, y, **values)
        flat = np.asarray(x, np.int64) * self.p.domain.ny + np.asarray(y, np.int64)
        pop.attach(rows, [cls(self, self._cell_list[k]) for k in flat.tolist()])
        return rows

    def discard(self, pop: Population, rows) -> None:
        """Remove rows of a population and their Mesa agents."""
        for agent in pop.remove(rows):
            agent.remove()

    def sync_cells(self, pop: Population, old_x: np.ndarray, old_y: np.ndarray,
                   rows: np.ndarray | None = None) -> None:
        """Move the Mesa agents whose array position changed (only those).

        ``old_x``, ``old_y``: positions before a movement kernel ran, of all rows or, if
        given, of ``rows`` (the only rows that may have moved). Rows must not have been
        removed in between.
        """
        if rows is None:
            rows = np.arange(pop.n)
        moved, old, new = moved_voxels(pop["x"], pop["y"], old_x, old_y, rows, self.p.domain.ny)
        if moved.size:
            agents = pop.agents
            relocate([agents[i] for i in moved.tolist()], self._cell_list, old.tolist(),
                     new.tolist(), self._empty_flat)

    # ----------------------------------------------------------------- stages
    def _field_specs(self) -> list[FieldSpec]:
        p = self.p
        specs = []
        for name in TRANSIENT_FIELDS:
            fp = getattr(p, name)
            specs.append(FieldSpec(
                name=name,
                diffusion_um2_per_min=fp.diffusion_um2_per_min,
                decay_per_min=fp.decay_per_min,
                boundary=fp.boundary,
                boundary_value=0.0,  # dirichlet: the surrounding tissue holds none
                max_substep_min=fp.max_substep_min,
            ))
        return specs

    def _collect_sources(self, src: Sources) -> Sources:
        """Sources from the current cells without changing them, into ``src`` (warm-up)."""
        src.clear()
        tumor.secrete(self, tumor.signals(self), src)
        viable_at = neutrophil.viable_tumor_map(self)
        neutrophil.secrete(self, neutrophil.signals(self, viable_at), src)
        macrophage.secrete(self, macrophage.signals(self, viable_at), src)
        endothelial.absorb(self, src)
        return src

    def _advance_fields(self, src: Sources) -> None:
        """Every field over one step from ``src`` (independent solves, shared among the
        field threads)."""
        self.field_stepper.advance(self.fields, src)

    def _cells(self, src: Sources) -> None:
        """The cells of one step: each type senses, acts, and writes its sources to ``src``."""
        endothelial.step(self, src)
        tumor.step(self, src)
        viable_at = neutrophil.viable_tumor_map(self)
        macrophage.step(self, src, viable_at)
        neutrophil.step(self, src, viable_at)

    def apply_interventions(self) -> None:
        """From the start day, the scenario's intervention acts (once-off and ongoing parts)."""
        iv = self.p.intervention
        if self.treated or self.time_min < iv.start_day * MIN_PER_DAY:
            return
        self.treated = True
        nb, mc = self.neutrophils, self.macrophages
        if iv.neutrophil_depletion > 0:
            self.discard(nb, np.flatnonzero(self.rng.random(nb.n) < iv.neutrophil_depletion))
        if iv.macrophage_depletion > 0:
            self.discard(mc, np.flatnonzero(self.rng.random(mc.n) < iv.macrophage_depletion))
        if iv.contact_blockade > 0:
            bound = np.flatnonzero(nb["state"] == neutrophil.BOUND)
            freed = bound[self.rng.random(bound.size) < iv.contact_blockade]
            nb["state"][freed] = neutrophil.ACTIVATED
            nb["partner"][freed] = -1
        self.recruit_factor = (1 - iv.neutrophil_depletion) * (1 - iv.cxcr2_inhibition)
        self.chemotaxis_factor = 1 - iv.cxcr2_inhibition
        self.contact_factor = 1 - iv.contact_blockade

    def step(self) -> None:
        """Advance one model step (``time.dt_min`` minutes)."""
        self.apply_interventions()
        src = self._sources.clear()
        if self.p.time.source_lag_steps:
            # the fields over this step from the sources of the step before, solved on the
            # helper threads while the cells act (they read the fields, write only src)
            stepper = self.field_stepper
            stepper.start(self.fields, self._pending, zero_sources=True)
            try:
                self._cells(src)
            except BaseException:
                stepper.abandon()
                raise
            stepper.finish(self.fields)
            self._sources, self._pending = self._pending, src
        else:
            self._cells(src)
            self._advance_fields(src)
        if self.steps % self.steps_per_record == 0:
            self.datacollector.collect(self)
