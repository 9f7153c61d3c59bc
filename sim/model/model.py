"""NeutroModel: the Mesa model of tumor cells, neutrophils, macrophages and vessels.

``step()`` runs the stages of :mod:`.stages` in order (treatment, fields, each cell type,
record); one model step is ``time.dt_min`` minutes. The simulated time ends at
``time.days`` (:meth:`NeutroModel.set_end`): the last time point is recorded there and
``running`` turns False, so ``mesa.batch_run`` and ``Model.run_model`` stop there. The
cells' state lives in the arrays of :mod:`.populations`; the fields are a
:class:`sim.fields.FieldSystem`, the model's one entry into :mod:`sim.fields`. Both are
mirrored as a Mesa grid and Mesa agents by :mod:`.mirror`, built the first time they are read.
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from mesa import Model
from mesa.datacollection import DataCollector
from mesa.discrete_space import OrthogonalMooreGrid

from .. import readouts
from ..cells import CELL_TYPES, endothelial, neutrophil, tumor
from ..config.field_registry import FIELD_NAMES
from ..config.params import Params, load_params
from ..config.rules import BEHAVIOURS
from ..config.units import MIN_PER_DAY, MIN_PER_HOUR, Scales
from ..fields import FieldSystem
from . import tissue
from .mirror import MesaMirror, records, restore_records, set_clock
from .populations import Population
from .stages import STAGES, Stage, write_sources
from .treatment import Treatment

__all__ = ["NeutroModel", "ModelState", "MESA_SIDE"]

#: when the Mesa side (grid, agents) is built: the first time it is read, or at t=0
MESA_SIDE = ("lazy", "eager")


class ModelState(NamedTuple):
    """Everything a model between two steps holds that later steps read
    (:meth:`NeutroModel.state`), apart from its parameters.

    Attributes:
        values: plain JSON values: ``steps`` done, ``seed`` (Mesa's, of its Python
            ``random``), ``rng`` (the numpy generator's ``bit_generator.state``),
            ``random`` (Python ``random``'s state), ``treatment`` (the intervention's
            state), ``counters`` (cells recruited, killed since t=0), ``records`` (the
            DataCollector's records so far).
        arrays: numpy arrays by name: ``pop/<population>/<column>``,
            ``sprouts/<name>``, ``fields/field/<field>`` and, with
            ``time.source_lag_steps = 1``, ``fields/pending/<array>`` (the sources the next
            step's solves read).
    """

    values: dict[str, Any]
    arrays: dict[str, np.ndarray]


#: the model's counters since t=0 that a state holds
COUNTERS = ("recruited", "macrophages_recruited", "killed")


def _under(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries of ``arrays`` whose names start with ``prefix``, without it."""
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}

class NeutroModel(Model):
    """Agent-based model of neutrophil-tumor-vessel dynamics in an advanced mammary tumor.

    Args:
        params: resolved parameters (default: ``load_params(scenario=scenario)``).
        rng: seed (int) or numpy Generator; the only source of randomness.
        scenario: scenario name from params/scenarios/ (used when ``params`` is None).
        width, height: grid size in voxels (override ``domain.nx``, ``domain.ny``).
        threads: threads that solve the fields of a step side by side. Default: up to
            :func:`sim.config.threads.default_threads`, all of them or one step by step,
            whichever is faster on the machine as it is loaded
            (:class:`sim.fields.threads.ThreadChooser`); a number: exactly that many.
            Results do not depend on it.
        mesa: when the Mesa side (``grid``, ``agents``: :mod:`.mirror`) is built:
            ``"lazy"`` (default) the first time it is read, ``"eager"`` at t=0. Once built
            it is kept exact after every step. A run nobody reads through Mesa
            (:func:`sim.runs.run.run_one`, the ensembles) never builds it. Results do not
            depend on it.
        **overrides: any parameter as ``section__key=value`` (or ``"section.key"``), so
            ``mesa.batch_run`` and SolaraViz can drive the model with plain keywords.

    Attributes:
        fields: the fields by name (arrays in the units of
            :mod:`sim.config.field_registry`), their sources and solvers.
        populations: the cells of each type (:class:`.populations.Population`).
        sprouts: the vessel sprouts laid since t=0, their parents and perfusion
            (:class:`sim.cells.endothelial.Sprouts`).
        grid: Mesa's ``OrthogonalMooreGrid`` of the tissue, one property layer per field
            (the arrays of ``fields``), built on first read (``mesa``).
        agents, agents_by_type, agent_types: Mesa's, one agent per cell (built with the grid).
        mirror: the Mesa grid and agents standing for the cells (:class:`.mirror.MesaMirror`),
            built on first read (``mesa``).
        treatment: the intervention's state (:class:`.treatment.Treatment`).
        steps_per_record: model steps between recorded time points (``time.record_every_h``).
        end_step: the model step at which the simulated time ends (``time.days``, or what
            :meth:`set_end` gave), rounded to whole steps. The DataCollector records there
            too, and ``running`` (Mesa's flag) turns False there; the model can still be
            stepped past it.
        stage_timer: None, or ``timer(stage, model)`` called to run each stage of a step
            instead of ``stage.run(model)`` (benchmarks time the stages through it).
    """

    def __init__(self, params: Params | None = None, *, rng=None, scenario: str | None = None,
                 width: int | None = None, height: int | None = None,
                 threads: int | None = None, mesa: str = "lazy", **overrides):
        if mesa not in MESA_SIDE:
            raise ValueError(f"mesa = {mesa!r}; allowed: {', '.join(MESA_SIDE)}")
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
        self._assemble(params, threads)
        self.fields["oxygen"][:] = params.oxygen.boundary_mmHg
        tissue.build(self)
        self.fields.warm_up(lambda src: write_sources(self, src), params.time.warmup_steps)
        tissue.start_cycles(self)
        self.datacollector.collect(self)
        if mesa == "eager":
            self.mirror  # built now

    def _assemble(self, params: Params, threads: int | None) -> None:
        """Everything of a model but its cells, fields' values and records: the parts
        that follow from ``params`` (empty populations, zero fields, the solvers)."""
        self.p = params
        self.scales = Scales(params.domain.voxel_um, params.time.dt_min)
        shape = (params.domain.nx, params.domain.ny)
        self._shape = shape
        self._mirror: MesaMirror | None = None  # the Mesa side, built on first read
        self.fields = FieldSystem(params, {name: np.zeros(shape) for name in FIELD_NAMES},
                                  threads=threads)
        self.populations = {c.KIND: Population(c.KIND, c.COLUMNS, shape) for c in CELL_TYPES}
        self.sprouts = endothelial.Sprouts()
        self._base = {
            (cell, name): getattr(getattr(params, key.split(".")[0]), key.split(".")[1])
            for cell, behaviours in BEHAVIOURS.items()
            for name, (_, key, _) in behaviours.items()
        }
        #: behaviours whose value can be above 0 (base or an increasing rule's saturation)
        self._possible = {key: params.rules.max_value(*key, base) > 0
                          for key, base in self._base.items()}
        self.treatment = Treatment()
        self.recruited = 0  # neutrophils that extravasated since t=0
        self.macrophages_recruited = 0  # macrophages that entered from the blood since t=0
        self.killed = 0  # tumor cells neutrophils killed since t=0
        self.stage_timer: Callable[[Stage, "NeutroModel"], None] | None = None
        self.steps_per_record = self.scales.steps(params.time.record_every_h * MIN_PER_HOUR)
        self.set_end(params.time.days)
        self.datacollector = DataCollector(model_reporters=readouts.REPORTERS)

    # ----------------------------------------------------------------- saved state
    @classmethod
    def from_state(cls, params: Params, state: ModelState, *, threads: int | None = None,
                   mesa: str = "lazy") -> "NeutroModel":
        """A model with ``params`` in ``state`` (:meth:`state`), without building a
        tissue; its simulated time ends at ``params.time.days`` (``threads``, ``mesa``: as
        for the constructor). Stepped on, it gives what the model that ``state`` was taken
        from gives, bit for bit."""
        if mesa not in MESA_SIDE:
            raise ValueError(f"mesa = {mesa!r}; allowed: {', '.join(MESA_SIDE)}")
        model = cls.__new__(cls)
        Model.__init__(model, rng=state.values["seed"])
        model._assemble(params, threads)
        model.restore(state)
        if mesa == "eager":
            model.mirror  # built now
        return model

    def state(self) -> ModelState:
        """This model's state between two steps (:class:`ModelState`, copies): with its
        parameters, all a model needs to go on as this one would. Not in it: the Mesa
        side (a mirror of the arrays, rebuilt from them) and the choice of threads
        (results do not depend on it)."""
        arrays = {f"pop/{kind}/{col}": a for kind, pop in self.populations.items()
                  for col, a in pop.state().items()}
        arrays.update({f"sprouts/{k}": a for k, a in self.sprouts.state().items()})
        arrays.update({f"fields/{k}": a for k, a in self.fields.state().items()})
        values = {
            "steps": int(self.steps),
            "seed": int(self._seed),
            "rng": self.rng.bit_generator.state,
            "random": self.random.getstate(),
            "treatment": dataclasses.asdict(self.treatment),
            "counters": {name: int(getattr(self, name)) for name in COUNTERS},
            "records": records(self.datacollector),
        }
        return ModelState(values, arrays)

    def restore(self, state: ModelState) -> None:
        """Put this model (same parameters as the one ``state`` was taken from, or other
        intervention ones) into ``state``. A Mesa side already built is dropped and
        built again from the arrays the next time it is read. The records kept are those
        a run to this model's end (:attr:`end_step`) would have: a record taken only
        because the state's model ended there is dropped when this one ends elsewhere."""
        v, a = state.values, state.arrays
        if self._mirror is not None:
            self._mirror.discard()
            self._mirror = None
        for kind, pop in self.populations.items():
            pop.restore(_under(a, f"pop/{kind}/"))
        self.sprouts.restore(_under(a, "sprouts/"))
        self.fields.restore(_under(a, "fields/"))
        self.rng.bit_generator.state = v["rng"]
        version, internal, gauss = v["random"]
        self.random.setstate((version, tuple(internal), gauss))
        self.treatment = Treatment(**v["treatment"])
        for name in COUNTERS:
            setattr(self, name, int(v["counters"][name]))
        set_clock(self, v["steps"])
        times = v["records"]["time"]
        restore_records(self.datacollector, v["records"],
                        [self._records_at(round(t)) for t in times])
        self.running = self.steps < self.end_step

    def _records_at(self, step: int) -> bool:
        """Whether a run to :attr:`end_step` records at ``step`` (``stages.record``)."""
        return step == self.end_step or step % self.steps_per_record == 0

    # ----------------------------------------------------------------- the Mesa side
    @property
    def mirror(self) -> MesaMirror:
        """The Mesa grid and agents standing for the fields and cells, built on first read."""
        if self._mirror is None:
            self.fields.keep_arrays()  # the property layers hold them
            self._mirror = MesaMirror.build(self, self._shape, self.fields, self.populations)
        return self._mirror

    @property
    def mesa_built(self) -> bool:
        """Whether the Mesa side exists (it is built the first time it is read)."""
        return self._mirror is not None

    @property
    def grid(self) -> OrthogonalMooreGrid:
        """Mesa's grid of the tissue: one cell per voxel, one property layer per field."""
        return self.mirror.grid

    @property
    def agents(self):
        """Mesa's set of all agents: one per cell (builds the Mesa side on first read)."""
        self.mirror  # built on first read
        return super().agents

    @property
    def agents_by_type(self):
        """Mesa's agent sets by agent class (builds the Mesa side on first read)."""
        self.mirror  # built on first read
        return super().agents_by_type

    @property
    def agent_types(self) -> list[type]:
        """Mesa's agent classes present (builds the Mesa side on first read)."""
        self.mirror  # built on first read
        return super().agent_types

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
        """Threads that may solve the fields of a step side by side (``threads``, or the
        default's most)."""
        return self.fields.threads

    @property
    def time_min(self) -> float:
        """Simulated time since t=0, minutes."""
        return self.scales.minutes(self.steps)

    @property
    def time_h(self) -> float:
        """Simulated time since t=0, hours."""
        return self.time_min / MIN_PER_HOUR

    def set_end(self, days: float) -> None:
        """End the simulated time at ``days`` after t=0 (rounded to whole model steps):
        sets :attr:`end_step`, and ``running`` to whether the model is short of it."""
        self.end_step = self.scales.steps(days * MIN_PER_DAY)
        self.running = self.steps < self.end_step

    def occurs(self, cell_type: str, name: str, signals, n: int,
               factor: float = 1.0) -> np.ndarray | None:
        """For an event behaviour (a rate, 1/min): per agent, whether the event happens
        within this step, at the rules' rate times ``factor`` (an intervention's cut).
        None, with no random draw, where the rate cannot be above 0 (its base value and
        every increasing rule's saturation are 0) or is 0 for all ``n`` agents; so an
        event switched off leaves the model's random stream as if it did not exist."""
        if not self._possible[(cell_type, name)]:
            return None
        rate = self.behaviour(cell_type, name, signals, n) * factor
        if not (rate > 0).any():
            return None
        return self.rng.random(n) < self.scales.prob(rate)

    def behaviour(self, cell_type: str, name: str, signals, n: int) -> np.ndarray:
        """Rule-modulated value of a behaviour for ``n`` agents (see sim.config.rules)."""
        return self.p.rules.evaluate(cell_type, name, self._base[(cell_type, name)], signals, n)

    # ----------------------------------------------------------------- agents
    def spawn(self, kind: str, x, y, **values) -> np.ndarray:
        """Add cells of population ``kind`` at voxels (x, y), with column ``values``: array
        rows and their Mesa agents (if the Mesa side is built). Returns the new rows."""
        pop = self.populations[kind]
        rows = pop.add(x, y, **values)
        if self._mirror is not None:
            self._mirror.added(kind, rows, x, y)
        return rows

    def discard(self, pop: Population, rows) -> None:
        """Remove rows of a population and their Mesa agents (if built). Removing tumor cells
        renumbers the rows that neutrophils are bound to (:func:`neutrophil.follow_partners`)."""
        renumber = pop.renumbering(rows) if pop.name == tumor.KIND else None
        gone = pop.remove(rows)
        if self._mirror is not None:
            self._mirror.removed(pop.name, gone)
        if renumber is not None:
            neutrophil.follow_partners(self, renumber)

    # ----------------------------------------------------------------- the step
    def step(self) -> None:
        """Advance one model step (``time.dt_min`` minutes): the stages of
        :data:`.stages.STAGES` in order."""
        timer = self.stage_timer
        try:
            for stage in STAGES:
                if timer is None:
                    stage.run(self)
                else:
                    timer(stage, self)
        except BaseException:
            self.fields.abandon()  # solves running beside the cells are waited for
            raise
