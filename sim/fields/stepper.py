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

import numpy as np
from numba import njit

from . import lod
from .multigrid import SteadySolver, _mg_solve
from .simd import atomic_fetch_add
from .threads import TaskPool
from .transient import FieldSolver, FieldSpec

__all__ = ["FieldStepper"]


@njit(cache=True, nogil=True)
def _oxygen_terms(c, f, uptake, supply_rate, release, decay, blood):
    """Reaction rate ``c = uptake + supply_rate + decay`` (1/min) and source ``f =
    supply_rate * blood + release`` (mmHg/min) of the oxygen solve (the same IEEE
    operations, in the same order, as numpy's add and multiply)."""
    c1, f1 = c.reshape(-1), f.reshape(-1)
    k1, p1, r1 = uptake.reshape(-1), supply_rate.reshape(-1), release.reshape(-1)
    for i in range(c1.size):
        c1[i] = (k1[i] + p1[i]) + decay
        f1[i] = p1[i] * blood + r1[i]


@njit(cache=True, nogil=True)
def _zero_read(arrays, flat, plan, lo, hi):
    """Zero what ``plan`` lists for the source arrays of slots lo..hi-1 (rows (slot, start,
    stop): the flat indices flat[start:stop], or the whole array if start < 0)."""
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
def _worker(claim, istat, fstat, ox_front, ox_back, ox_c, ox_f, ox_uptake, ox_supply,
            ox_release, ox_decay, ox_blood, mg_hierarchy, mg_settings, fronts, backs, releases,
            uptakes, given, hs, decays, n_subs, diffusive, cxs, cys, slots, flat, plan, u, rx,
            work):
    """Claim and run solves until none are left: solve 0 is oxygen, solve 1 + i transient
    field i. Each writes only its ``back`` buffer and its row of ``istat`` / ``fstat``
    (oxygen: multigrid status, cycles, residual, initial residual; field i: bad sources),
    then zeroes the sources it read as ``plan`` says (``slots``: oxygen's release, uptake
    and supply_rate, then each field's release and uptake; see :func:`_zero_read`).
    ``given[i]``: (release, uptake) of field i were written this step (else skipped as
    zero)."""
    n = 1 + len(fronts)
    while True:
        t = atomic_fetch_add(claim, 0, 1)
        if t >= n:
            return
        if t == 0:
            ox_back[:, :] = ox_front  # the initial guess: the last solution
            _oxygen_terms(ox_c, ox_f, ox_uptake, ox_supply, ox_release, ox_decay, ox_blood)
            status, ncyc, res, res0 = _mg_solve(ox_back, ox_c, ox_f, mg_hierarchy, mg_settings,
                                                0.0, 0)
            istat[0, 0], istat[0, 1] = status, ncyc
            fstat[0, 0], fstat[0, 1] = res, res0
            _zero_read(slots, flat, plan, 0, 3)
            continue
        i = t - 1
        out = backs[i]
        out[:, :] = fronts[i]
        scratch = lod.Scratch(u, rx, work)
        consts = lod.FieldConstants(hs[i], decays[i], n_subs[i], diffusive[i], cxs[i], cys[i])
        if given[i, 0] and given[i, 1]:
            sources = lod.SourceTerms(releases[i], uptakes[i], None, None)
            bad = lod.field_step(scratch, consts, sources, out)
        elif given[i, 0]:
            sources = lod.SourceTerms(releases[i], None, None, None)
            bad = lod.field_step(scratch, consts, sources, out)
        elif given[i, 1]:
            sources = lod.SourceTerms(None, uptakes[i], None, None)
            bad = lod.field_step(scratch, consts, sources, out)
        else:
            bad = lod.field_step(scratch, consts, lod.SourceTerms(None, None, None, None), out)
        istat[t, 0] = bad
        _zero_read(slots, flat, plan, 1 + 2 * t, 3 + 2 * t)


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
    ``sources.supply_rate``, all (nx, ny) float64; ``sources.written(array)`` is None for
    an array left all zero this step (its solve then skips it).

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
        consts = [self._solvers[0].kernel_args(name) for name in self.names]
        self._consts = (np.array([c.h for c in consts]), np.array([c.decay for c in consts]),
                        np.array([c.n_sub for c in consts], np.int64),
                        np.array([c.diffusive for c in consts], np.bool_),
                        tuple(c.cx for c in consts), tuple(c.cy for c in consts))
        self._claim = np.zeros(1, np.int64)
        self._given = np.zeros((len(self.names), 2), np.bool_)
        self._istat = np.zeros((1 + len(self.names), 2), np.int64)
        self._fstat = np.zeros((1, 2))
        self.thread_seconds = [0.0] * self._pool.threads
        self._no_flat, self._no_plan = np.zeros(0, np.int64), np.zeros((0, 3), np.int64)
        self._zeroed = None  # the sources the running solves zero (start's zero_sources)

    @property
    def threads(self) -> int:
        return self._pool.threads

    def advance(self, fields: Mapping[str, np.ndarray], sources) -> None:
        """Every field over one step from ``sources``, in place."""
        self.start(fields, sources)
        self.finish(fields)

    def start(self, fields: Mapping[str, np.ndarray], sources, zero_sources: bool = False) -> None:
        """Start the step's solves on the helper threads (see the module docstring). With
        ``zero_sources`` each solve then zeroes the sources it read, as ``sources.clear()``
        would (``sources`` needs ``zeroing_plan`` and ``forget``; :meth:`finish` calls the
        latter), so the caller need not clear them itself."""
        rel, upt = sources.release, sources.uptake
        arrays = [(f"field {n!r}", fields[n]) for n in ["oxygen", *self.names]]
        arrays += [(f"release of {n!r}", rel[n]) for n in ["oxygen", *self.names]]
        arrays += [(f"uptake of {n!r}", upt[n]) for n in ["oxygen", *self.names]]
        for what, a in arrays + [("supply_rate", sources.supply_rate)]:
            if not (isinstance(a, np.ndarray) and a.dtype == np.float64
                    and a.shape == self._c.shape and a.flags.c_contiguous):
                raise ValueError(f"{what} must be a C-contiguous float64 array of shape "
                                 f"{self._c.shape}")
        for i, name in enumerate(self.names):
            self._given[i] = (sources.written(rel[name]) is not None,
                              sources.written(upt[name]) is not None)
        self._claim[0] = 0
        self._istat[:] = 0
        slots = (rel["oxygen"], upt["oxygen"], sources.supply_rate,
                 *[a for n in self.names for a in (rel[n], upt[n])])
        if zero_sources:
            flat, plan = sources.zeroing_plan(slots)
            self._zeroed = sources
        else:
            flat, plan = self._no_flat, self._no_plan
        common = (self._claim, self._istat, self._fstat, fields["oxygen"], self._back["oxygen"],
                  self._c, self._f, upt["oxygen"], sources.supply_rate, rel["oxygen"], *self._ox,
                  *self.oxygen.kernel_args(), tuple(fields[n] for n in self.names),
                  tuple(self._back[n] for n in self.names), tuple(rel[n] for n in self.names),
                  tuple(upt[n] for n in self.names), self._given, *self._consts, slots, flat,
                  plan)
        self._pool.start([self._task(common)] * self.threads)

    def _task(self, common: tuple):
        def run(k: int) -> None:
            t0 = time.perf_counter()
            _worker(*common, *self._solvers[k].scratch())
            self.thread_seconds[k] += time.perf_counter() - t0
        return run

    def finish(self, fields: Mapping[str, np.ndarray]) -> None:
        """Take a share of the solves still unclaimed, wait for the rest, and copy the
        results into ``fields``. Bad sources raise ValueError (every field left as it
        was); a failed oxygen solve raises or warns as :meth:`SteadySolver.solve` does."""
        self._pool.join()
        self._forget_zeroed()
        for i, name in enumerate(self.names):
            if self._istat[1 + i, 0]:
                raise FieldSolver.bad_sources(name, int(self._istat[1 + i, 0]))
        self.oxygen.outcome(int(self._istat[0, 0]), int(self._istat[0, 1]),
                            float(self._fstat[0, 0]), float(self._fstat[0, 1]))
        for name, back in self._back.items():
            np.copyto(fields[name], back)

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
