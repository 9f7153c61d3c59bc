"""The tissue's fields as one object: the model's only entry into :mod:`sim.fields`.

A :class:`FieldSystem` is a read-only mapping from field name to its (nx, ny) array (the
arrays the cells read in place, in the units of :mod:`sim.config.field_registry`: look
them up afresh each step, since a step ends by swapping in the solvers' result arrays
unless :meth:`FieldSystem.keep_arrays` was called), plus
the sources the cells write this step and the solvers that advance the fields from them:
oxygen to its quasi-steady state (:mod:`.multigrid`), the other fields by LOD sub-steps
(:mod:`.lod`), side by side on a few threads (:mod:`.stepper`). A model step is::

    sources = fields.begin_step()   # lag 1: the last step's sources start solving
    ...                             # cells read fields[name] and write into sources
    fields.end_step()               # lag 1: wait and take the results; lag 0: solve now

With ``time.source_lag_steps = 1`` the fields over a step are solved from the sources of
the step before, on helper threads while the cells act; with 0 from the step's own
sources, after the cells (docs/numerics.md, "Coupling of cells and fields").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from ..config.field_registry import FIELD_NAMES, field_info, transient_names
from ..config.threads import field_threads
from .multigrid import SteadySolver
from .sources import Sources
from .stepper import FieldStepper
from .threads import ThreadChooser
from .transient import FieldSpec

__all__ = ["FieldSystem"]


class FieldSystem(Mapping):
    """The fields of one model, their sources and their solvers.

    Args:
        params: resolved parameters (:class:`sim.config.params.Params`): the grid, the
            time step, each field's section and ``time.source_lag_steps``.
        arrays: the field arrays at the start by name ((nx, ny) float64, C-contiguous),
            one per field of the registry.
        threads: threads that solve the fields of a step. Default
            (:func:`sim.config.threads.field_threads`): up to that many, step by step all
            of them or the caller alone, whichever steps faster on this machine now
            (:class:`.threads.ThreadChooser`); a number: exactly that many. Results do not
            depend on it.

    Attributes:
        sources: the :class:`.Sources` the cells write this step.
        oxygen_solver: the multigrid solver of oxygen (its tolerance, its outcome).
        chooser: the :class:`.threads.ThreadChooser` of the default thread setting (None
            when ``threads`` was given or one thread is all there is).
        specs: the :class:`.FieldSpec` of each transient field, by name.
    """

    def __init__(self, params, arrays: Mapping[str, np.ndarray], *, threads: int | None = None):
        missing = [name for name in FIELD_NAMES if name not in arrays]
        if missing:
            raise ValueError(f"FieldSystem: no array for field(s) {', '.join(missing)}")
        p = params
        shape = (p.domain.nx, p.domain.ny)
        self._arrays = {name: arrays[name] for name in FIELD_NAMES}
        ox = p.oxygen
        self.oxygen_solver = SteadySolver(shape, p.domain.voxel_um, ox.diffusion_um2_per_min,
                                          "dirichlet", ox.boundary_mmHg,
                                          tol=field_info("oxygen").tolerance)
        transient = [FieldSpec(name=name,
                               diffusion_um2_per_min=section.diffusion_um2_per_min,
                               decay_per_min=section.decay_per_min,
                               boundary=section.boundary,
                               boundary_value=0.0,  # dirichlet: the surrounding tissue holds none
                               max_substep_min=section.max_substep_min)
                     for name, section in ((n, getattr(p, n)) for n in transient_names())]
        self.specs = {spec.name: spec for spec in transient}
        self._stepper = FieldStepper(shape, p.domain.voxel_um, p.time.dt_min,
                                     oxygen=self.oxygen_solver,
                                     oxygen_decay_per_min=ox.decay_per_min,
                                     oxygen_blood=ox.blood_mmHg, transient=transient,
                                     threads=field_threads(threads))
        n = self._stepper.threads
        self.chooser = ThreadChooser(n) if threads is None and n > 1 else None
        self._step_threads: int | None = None  # this step's threads (None: all)
        self._began = 0.0  # when this step's solves started (perf_counter, s)
        self._swap = True  # results swapped in at the end of a step, not copied
        self.lag = p.time.source_lag_steps
        self.sources = Sources.zeros(shape)
        # lag 1: the step before's sources, read by the solves while the cells write
        self._pending = Sources.zeros(shape) if self.lag else None
        self._solving = False  # solves started by begin_step and not yet ended

    # ------------------------------------------------------------------ the mapping
    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    @property
    def threads(self) -> int:
        """Threads that solve the fields of a step side by side."""
        return self._stepper.threads

    @property
    def pending(self) -> Sources | None:
        """With lag 1, the sources the next step's solves read (those the cells wrote in
        the step before); None with lag 0."""
        return self._pending

    @property
    def thread_seconds(self) -> list[float]:
        """Wall time each solving thread spent in compiled solves, summed (s)."""
        return self._stepper.thread_seconds

    def keep_arrays(self) -> None:
        """From now on, results are copied into the same arrays at the end of each step
        instead of swapped in, so holders of the arrays (Mesa's property layers) see every
        step."""
        self._swap = False

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        """What the next steps read, between two steps: a copy of every field
        (``field/<name>``) and, with lag 1, the pending sources the next step's solves
        read (``pending/<array>``: :meth:`.Sources.state`). This step's own sources are
        not state: the next step clears them before anything reads them. The thread
        setting (``chooser``) is not state either: results do not depend on it."""
        if self._solving:
            raise RuntimeError("FieldSystem.state: a step is being solved")
        out = {f"field/{name}": a.copy() for name, a in self._arrays.items()}
        if self._pending is not None:
            out.update({f"pending/{k}": a for k, a in self._pending.state().items()})
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """The fields and pending sources of ``state`` (as :meth:`state` gives it), copied
        into the arrays in place (so holders of the arrays see them)."""
        if self._solving:
            raise RuntimeError("FieldSystem.restore: a step is being solved")
        for name, a in self._arrays.items():
            np.copyto(a, state[f"field/{name}"])
        pending = {k.removeprefix("pending/"): v for k, v in state.items()
                   if k.startswith("pending/")}
        if self._pending is not None:
            self._pending.restore(pending)
        elif pending:
            raise ValueError("FieldSystem.restore: pending sources given, but "
                             "time.source_lag_steps = 0 holds none")
        self.sources.clear()

    # ------------------------------------------------------------------ stepping
    def warm_up(self, write_sources: Callable[[Sources], None], steps: int) -> None:
        """Settle the fields around the cells as they are: ``steps`` times, the sources
        ``write_sources(sources)`` writes, solved at once; then (lag 1) the first step's
        pending sources from them too."""
        for _ in range(steps):
            write_sources(self.sources.clear())
            self._stepper.advance(self._arrays, self.sources, swap=self._swap)
        if self.lag:
            write_sources(self._pending.clear())

    def begin_step(self) -> Sources:
        """Start a step: clear and return :attr:`sources` for the cells to write; with lag
        1, start solving the step before's sources on the helper threads (the cells may
        read the fields meanwhile, not write them)."""
        src = self.sources.clear()
        if self.chooser is not None:
            self._step_threads = self.chooser.next()
            self._began = time.perf_counter()
        if self.lag:
            self._stepper.start(self._arrays, self._pending, zero_sources=True,
                                threads=self._step_threads)
            self._solving = True
        return src

    def end_step(self) -> None:
        """End a step: the fields over it, in place (lag 1: the solves started by
        :meth:`begin_step`; lag 0: from this step's sources)."""
        if self.lag:
            self._solving = False
            self._stepper.finish(self._arrays, self._swap)
            self.sources, self._pending = self._pending, self.sources
        else:
            self._stepper.advance(self._arrays, self.sources, threads=self._step_threads,
                                  swap=self._swap)
        if self.chooser is not None:  # what the threads setting changes: begin to end
            self.chooser.took(time.perf_counter() - self._began)

    def abandon(self) -> None:
        """After an error between :meth:`begin_step` and :meth:`end_step`: wait for the
        solves started and drop them (the fields stay as they were)."""
        if self._solving:
            self._solving = False
            self._stepper.abandon()
