"""Every field of a model over one model step, each thread in one compiled call.

The step's solves are oxygen (to its quasi-steady state, :mod:`.multigrid`) and the transient
fields (LOD sub-steps, :mod:`.lod`). They do not depend on each other, so threads share
them: each thread runs :func:`_worker` once, which claims solves one at a time from a shared
counter (an atomic add) until none are left, in the order given (oxygen, then the fields
with the most sub-steps: longest first). A thread needs Python's GIL only to enter and to
leave its call; so while the helpers solve, the calling thread can run Python at full
speed (with one call per solve, every hand-over of the GIL cost the caller ~50 us).

Two ways to use a :class:`FieldStepper`:

* ``advance(fields, sources)``: the fields over one step, in place;
* ``start(fields, sources)`` then ``finish(fields)``: the same solves, run by the helper
  threads while the caller does other work (the model's cells of the next step). Between
  the two the solvers read ``fields`` and ``sources`` and write only their own buffers, so
  the caller may read the fields but must not write them or these sources; ``finish``
  takes its share of what is left, waits, and copies the results into ``fields``.

Which thread solves which field changes no result: each solve is the same deterministic
kernel on its own data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

from . import lod
from .multigrid import Hierarchy, Settings, SteadySolver, _mg_solve
from .simd import atomic_fetch_add
from .threads import TaskPool
from .transient import FieldSolver, FieldSpec

__all__ = ["FieldStepper"]


# numba's disk cache pickles these classes by reference in its index files: after one is
# renamed or removed, stale cache files fail to load (AttributeError); delete __pycache__.
class OxygenSolve(NamedTuple):
    """Oxygen's quasi-steady solve of one step, as :func:`_worker` takes it.

    Attributes:
        front: the field at the start of the step (mmHg); the initial guess.
        back: where the solution goes (mmHg).
        c, f: scratch for the solve's reaction rate (1/min) and source (mmHg/min).
        uptake, supply_rate: uptake and vessel supply rates (1/min).
        release: release (mmHg/min).
        decay: background consumption (1/min).
        blood: the value vessels supply toward (mmHg).
        hierarchy, settings: the solver's (:meth:`.SteadySolver.kernel_args`).
    """

    front: np.ndarray
    back: np.ndarray
    c: np.ndarray
    f: np.ndarray
    uptake: np.ndarray
    supply_rate: np.ndarray
    release: np.ndarray
    decay: float
    blood: float
    hierarchy: Hierarchy
    settings: Settings


class TransientFields(NamedTuple):
    """The transient fields of one step, in the order threads take them; each member
    holds one entry per field.

    Attributes:
        consts: :class:`.lod.FieldConstants` of each field.
        fronts: the fields at the start of the step (concentration).
        backs: where the fields' results go (concentration).
        releases: release (concentration/min).
        uptakes: uptake (1/min).
        given: bool (fields, 2): whether (release, uptake) of each field were written
            this step (else they are skipped as zero).
    """

    consts: tuple[lod.FieldConstants, ...]
    fronts: tuple[np.ndarray, ...]
    backs: tuple[np.ndarray, ...]
    releases: tuple[np.ndarray, ...]
    uptakes: tuple[np.ndarray, ...]
    given: np.ndarray


class ZeroingPlan(NamedTuple):
    """The sources each solve zeroes once it has read them (:func:`_zero_read`).

    Attributes:
        slots: the source arrays: oxygen's release, uptake and supply_rate, then each
            transient field's release and uptake.
        flat: int64, flat indices into the slots' arrays.
        plan: int64 (rows, 3), rows (slot, start, stop): zero flat[start:stop] of that
            slot's array, or all of it if start < 0.
    """

    slots: tuple[np.ndarray, ...]
    flat: np.ndarray
    plan: np.ndarray


class StepStatus(NamedTuple):
    """What the threads of one step share besides their data.

    Attributes:
        claim: int64 (1,), the next solve to claim (atomic).
        istat: int64 (1 + fields, 2): row 0, oxygen's multigrid status and cycles; row
            1 + i, field i's count of bad source values.
        fstat: float64 (1, 2): oxygen's final and initial relative residuals.
    """

    claim: np.ndarray
    istat: np.ndarray
    fstat: np.ndarray


@njit(cache=True, nogil=True)
def _oxygen_terms(ox):
    """Reaction rate ``c = uptake + supply_rate + decay`` (1/min) and source ``f =
    supply_rate * blood + release`` (mmHg/min) of the :class:`OxygenSolve` (the same IEEE
    operations, in the same order, as numpy's add and multiply)."""
    decay, blood = ox.decay, ox.blood
    c1, f1 = ox.c.reshape(-1), ox.f.reshape(-1)
    k1, p1, r1 = ox.uptake.reshape(-1), ox.supply_rate.reshape(-1), ox.release.reshape(-1)
    for i in range(c1.size):
        c1[i] = (k1[i] + p1[i]) + decay
        f1[i] = p1[i] * blood + r1[i]


@njit(cache=True, nogil=True)
def _zero_read(zeroing, lo, hi):
    """Zero what the :class:`ZeroingPlan` lists for the source arrays of slots lo..hi-1."""
    arrays, flat, plan = zeroing
    for r in range(plan.shape[0]):
        s = plan[r, 0]
        if lo <= s < hi:
            a = arrays[s].reshape(-1)
            if plan[r, 1] < 0:
                a[:] = 0.0
            else:
                for q in range(plan[r, 1], plan[r, 2]):
                    a[flat[q]] = 0.0


@njit(cache=True, nogil=True)
def _worker(status, oxygen, fields, zeroing, scratch):
    """Claim and run solves until none are left: solve 0 is oxygen (:class:`OxygenSolve`),
    solve 1 + i transient field i (:class:`TransientFields`, in ``scratch``, this thread's
    :class:`.lod.Scratch`). Each writes only its ``back`` buffer and its row of the
    :class:`StepStatus` ``status``, then zeroes the sources it read as ``zeroing`` says
    (:class:`ZeroingPlan`)."""
    claim, istat, fstat = status
    given = fields.given
    n = 1 + len(fields.fronts)
    while True:
        t = atomic_fetch_add(claim, 0, 1)
        if t >= n:
            return
        if t == 0:
            ox = oxygen
            ox.back[:, :] = ox.front  # the initial guess: the last solution
            _oxygen_terms(ox)
            code, ncyc, res, res0 = _mg_solve(ox.back, ox.c, ox.f, ox.hierarchy, ox.settings,
                                              0.0, 0)
            istat[0, 0], istat[0, 1] = code, ncyc
            fstat[0, 0], fstat[0, 1] = res, res0
            _zero_read(zeroing, 0, 3)
            continue
        i = t - 1
        out = fields.backs[i]
        out[:, :] = fields.fronts[i]
        consts = fields.consts[i]
        if given[i, 0] and given[i, 1]:
            sources = lod.SourceTerms(fields.releases[i], fields.uptakes[i], None, None)
            bad = lod.field_step(scratch, consts, sources, out)
        elif given[i, 0]:
            sources = lod.SourceTerms(fields.releases[i], None, None, None)
            bad = lod.field_step(scratch, consts, sources, out)
        elif given[i, 1]:
            sources = lod.SourceTerms(None, fields.uptakes[i], None, None)
            bad = lod.field_step(scratch, consts, sources, out)
        else:
            bad = lod.field_step(scratch, consts, lod.SourceTerms(None, None, None, None), out)
        istat[t, 0] = bad
        _zero_read(zeroing, 1 + 2 * t, 3 + 2 * t)


class FieldStepper:
    """Advances oxygen and the transient fields of one grid by one model step.

    Args:
        shape: grid (nx, ny); dx_um: voxel size (um); dt_min: the model step (min).
        oxygen: the steady solver of oxygen (its diffusion, boundary and tolerance).
        oxygen_decay_per_min: background consumption (1/min); oxygen_blood: the value
            vessels supply toward (mmHg).
        transient: the LOD fields (threads take them after oxygen, most sub-steps first).
        threads: threads that share the solves (the caller and ``threads - 1`` helpers).

    The sources passed per step are read as ``sources.release[name]``,
    ``sources.uptake[name]`` (for oxygen and every transient field) and
    ``sources.supply_rate``, all (nx, ny) float64; an array whose ``id`` is not in
    ``sources.written_ids()`` was left all zero this step (its solve then skips it).

    Attributes:
        thread_seconds: wall time each thread spent in its compiled call, summed over
            calls (s; for benchmarks).
    """

    def __init__(self, shape: tuple[int, int], dx_um: float, dt_min: float, *,
                 oxygen: SteadySolver, oxygen_decay_per_min: float, oxygen_blood: float,
                 transient: Sequence[FieldSpec], threads: int = 1):
        self._pool = TaskPool(threads)
        self._solvers = [FieldSolver(transient, shape, dx_um, dt_min)
                         for _ in range(self._pool.threads)]
        self.oxygen = oxygen
        n_sub = self._solvers[0].n_substeps
        #: the transient fields in the order threads take them: most sub-steps first
        self.names = sorted((spec.name for spec in transient), key=lambda f: -n_sub[f])
        if not self.names:
            raise ValueError("FieldStepper needs at least one transient field")
        self._ox = (float(oxygen_decay_per_min), float(oxygen_blood))
        self._c, self._f = np.zeros(shape), np.zeros(shape)  # oxygen's rate and source
        self._back = {name: np.zeros(shape) for name in ["oxygen", *self.names]}
        self._consts = tuple(self._solvers[0].kernel_args(name) for name in self.names)
        self._given = np.zeros((len(self.names), 2), np.bool_)
        self._status = StepStatus(np.zeros(1, np.int64),
                                  np.zeros((1 + len(self.names), 2), np.int64),
                                  np.zeros((1, 2)))
        self.thread_seconds = [0.0] * self._pool.threads
        self._no_flat, self._no_plan = np.zeros(0, np.int64), np.zeros((0, 3), np.int64)
        self._zeroed = None  # the sources the running solves zero (start's zero_sources)
        self._checked: dict[int, np.ndarray] = {}  # arrays found valid, by id

    @property
    def threads(self) -> int:
        return self._pool.threads

    def advance(self, fields: Mapping[str, np.ndarray], sources,
                threads: int | None = None, swap: bool = False) -> None:
        """Every field over one step from ``sources``, in place (``swap``: see
        :meth:`finish`)."""
        self.start(fields, sources, threads=threads)
        self.finish(fields, swap)

    def start(self, fields: Mapping[str, np.ndarray], sources, zero_sources: bool = False,
              threads: int | None = None) -> None:
        """Start the step's solves on the helper threads (see the module docstring). With
        ``zero_sources`` each solve then zeroes the sources it read, as ``sources.clear()``
        would (``sources`` needs ``zeroing_plan`` and ``forget``; :meth:`finish` calls the
        latter), so the caller need not clear them itself. ``threads``: how many of the
        stepper's threads share the solves (default all; 1: the caller alone, in
        :meth:`finish`)."""
        rel, upt = sources.release, sources.uptake
        self._check_arrays(fields, sources)
        written = sources.written_ids()
        for i, name in enumerate(self.names):
            self._given[i] = (id(rel[name]) in written, id(upt[name]) in written)
        self._status.claim[0] = 0
        self._status.istat[:] = 0
        slots = (rel["oxygen"], upt["oxygen"], sources.supply_rate,
                 *[a for n in self.names for a in (rel[n], upt[n])])
        if zero_sources:
            flat, plan = sources.zeroing_plan(slots)
            self._zeroed = sources
        else:
            flat, plan = self._no_flat, self._no_plan
        oxygen = OxygenSolve(fields["oxygen"], self._back["oxygen"], self._c, self._f,
                             upt["oxygen"], sources.supply_rate, rel["oxygen"], *self._ox,
                             *self.oxygen.kernel_args())
        transient = TransientFields(self._consts, tuple(fields[n] for n in self.names),
                                    tuple(self._back[n] for n in self.names),
                                    tuple(rel[n] for n in self.names),
                                    tuple(upt[n] for n in self.names), self._given)
        common = (self._status, oxygen, transient, ZeroingPlan(slots, flat, plan))
        n = self.threads if threads is None else min(self.threads, threads)
        self._pool.start([self._task(common)] * n)

    def _check_arrays(self, fields: Mapping[str, np.ndarray], sources) -> None:
        """ValueError unless every array the solves read or write is a C-contiguous
        float64 array of the grid's shape (each array object is checked once: the model
        passes the same few every step)."""
        rel, upt = sources.release, sources.uptake
        names = ["oxygen", *self.names]
        arrays = [(f"field {n!r}", fields[n]) for n in names]
        arrays += [(f"release of {n!r}", rel[n]) for n in names]
        arrays += [(f"uptake of {n!r}", upt[n]) for n in names]
        arrays.append(("supply_rate", sources.supply_rate))
        checked = self._checked
        for what, a in arrays:
            if checked.get(id(a)) is a:
                continue
            if not (isinstance(a, np.ndarray) and a.dtype == np.float64
                    and a.shape == self._c.shape and a.flags.c_contiguous):
                raise ValueError(f"{what} must be a C-contiguous float64 array of shape "
                                 f"{self._c.shape}")
            if len(checked) > 256:  # (held, so no id is reused while listed)
                checked.clear()
            checked[id(a)] = a

    def _task(self, common: tuple):
        def run(k: int) -> None:
            t0 = time.perf_counter()
            _worker(*common, self._solvers[k].scratch())
            self.thread_seconds[k] += time.perf_counter() - t0
        return run

    def finish(self, fields: Mapping[str, np.ndarray], swap: bool = False) -> None:
        """Take a share of the solves still unclaimed, wait for the rest, and copy the
        results into ``fields``; with ``swap`` (``fields`` a mutable mapping) put the
        result arrays into ``fields`` instead and keep the arrays they replace as the next
        step's result buffers (no copy). Bad sources raise ValueError (every field left as
        it was); a failed oxygen solve raises or warns as :meth:`SteadySolver.solve` does."""
        self._pool.join()
        self._forget_zeroed()
        istat, fstat = self._status.istat, self._status.fstat
        for i, name in enumerate(self.names):
            if istat[1 + i, 0]:
                raise FieldSolver.bad_sources(name, int(istat[1 + i, 0]))
        self.oxygen.outcome(int(istat[0, 0]), int(istat[0, 1]), float(fstat[0, 0]),
                            float(fstat[0, 1]))
        back = self._back
        if swap:
            for name in back:
                fields[name], back[name] = back[name], fields[name]
        else:
            for name in back:
                np.copyto(fields[name], back[name])

    def abandon(self) -> None:
        """Wait for the solves started and discard them (after an error in between)."""
        try:
            self._pool.join()
        except Exception:  # the error that brought us here is the one to report
            pass
        self._forget_zeroed()

    def _forget_zeroed(self) -> None:
        """The solves are over: the sources they zeroed (start's zero_sources) forget
        their record of writes."""
        if self._zeroed is not None:
            self._zeroed.forget()
            self._zeroed = None
