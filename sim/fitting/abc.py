"""ABC-SMC (pyabc) over the particles of a fit: priors, distance, sampler, the SQLite
history that lets an interrupted fit resume, and a progress line per generation.

* Priors: ``uniform`` -> ``pyabc.RV("uniform", low, high - low)`` on the value;
  ``loguniform`` -> the same on ``log10`` of the value (the particle turns it back), so
  that the perturbation kernel (pyabc's default multivariate normal) moves in relative
  steps across a wide range.
* Distance: ``adaptive`` -> ``AdaptivePNormDistance(p)``: each target's residual divided
  by a scale re-estimated every generation from the spread (median absolute deviation) of
  all simulated outcomes, so targets in different units weigh alike; the targets' ``sd``
  do not weigh it. ``pnorm`` -> ``PNormDistance(p)`` with fixed weights ``1 / sd``: pyabc
  puts the weights inside the power, so the distance is ``(sum |(x - x0) / sd|^p)^(1/p)``
  (for p = 2 the square root of chi-square, i.e. weights 1/sd^2 on squared residuals).
* Epsilon: ``MedianEpsilon`` (pyabc's default): the first threshold is the median
  distance of a calibration sample from the prior (``population`` particles, not stored
  as a generation), then the median distance of the last generation.
* Sampler: one process (``SingleCoreSampler``), the project's process pool
  (:class:`sim.runs.executors.ProcessExecutor`, forkserver workers warmed and pinned to
  one thread, driven through pyabc's ``ConcurrentFutureSampler``), or a Dask client of
  :class:`sim.runs.executors.DaskExecutor` (``DaskDistributedSampler``).
* Randomness: the sampler draws the proposals from numpy's global generator, seeded here
  with ``[abc] seed`` (plus the number of generations already done, on a resume), so a
  single-process fit is reproducible. pyabc's parallel samplers reseed every task from
  the operating system, and which particles are accepted depends on the order they
  finish: a parallel fit is not reproducible (the simulations at given parameters and
  seeds are).
"""

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..runs.executors import DaskExecutor, Executor, ProcessExecutor
from .particle import ParticleModel
from .spec import FitSpec

__all__ = ["make_sampler", "priors", "distance", "build_abc", "run_abc", "AbcRun",
           "HISTORY", "db_url"]

HISTORY = "history.db"


def db_url(out: Path) -> str:
    return f"sqlite:///{Path(out).resolve() / HISTORY}"


def priors(spec: FitSpec):
    import pyabc

    return pyabc.Distribution(**{p.name: pyabc.RV("uniform", lo, hi - lo)
                                 for p in spec.priors for lo, hi in [p.abc_bounds()]})


def distance(spec: FitSpec):
    from pyabc.distance import AdaptivePNormDistance, PNormDistance

    if spec.abc.distance == "adaptive":
        return AdaptivePNormDistance(p=spec.abc.p)
    return PNormDistance(p=spec.abc.p, fixed_weights={t.name: 1.0 / t.sd for t in spec.targets})


def make_sampler(executor: Executor | None):
    """pyabc's sampler over ``executor``: None or one worker -> this process;
    :class:`ProcessExecutor` -> its pool; :class:`DaskExecutor` -> its client."""
    from pyabc.sampler import ConcurrentFutureSampler, DaskDistributedSampler, SingleCoreSampler

    if isinstance(executor, DaskExecutor):
        return DaskDistributedSampler(dask_client=executor.client,
                                      client_max_jobs=executor.workers)
    if isinstance(executor, ProcessExecutor) and executor.workers > 1:
        return ConcurrentFutureSampler(cfuture_executor=executor.futures(),
                                       client_max_jobs=executor.workers)
    return SingleCoreSampler()


def build_abc(spec: FitSpec, sampler, simulate: Callable | None = None):
    import pyabc

    model = ParticleModel(spec) if simulate is None else ParticleModel(spec, simulate)
    return pyabc.ABCSMC(model, priors(spec), distance(spec),
                        population_size=spec.abc.population, sampler=sampler,
                        eps=pyabc.epsilon.MedianEpsilon())


@dataclass
class AbcRun:
    """What :func:`run_abc` did: the history's run id, the generations it holds, and one
    row per generation run in this call."""

    run_id: int
    generations_before: int
    generations_done: int
    log: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def run_abc(spec: FitSpec, out: Path, sampler, *, run_id: int | None = None,
            simulate: Callable | None = None, progress: bool = True,
            on_new: Callable[[int], None] | None = None) -> AbcRun:
    """Run the ABC until the history holds ``[abc] generations`` generations.

    ``run_id`` None: a new run in ``out/history.db`` (``on_new(run_id)`` is called as soon
    as it exists, before any particle runs: the caller records it, so that an interrupted
    first generation can be resumed); else continue that run (``abc.load``) from its last
    generation. Each finished generation is in the history at once, so an
    interrupted fit loses at most the generation it was in.
    """
    t_start = time.perf_counter()
    logging.getLogger("ABC").setLevel(logging.WARNING)  # our own line per generation
    abc = build_abc(spec, sampler, simulate)
    if run_id is None:
        history = abc.new(db_url(out), spec.observed(),
                          meta_info={"neutrosim_spec_digest": spec.digest(),
                                     "targets_file": spec.path})
        before = 0
        if on_new is not None:
            on_new(int(history.id))
    else:
        history = abc.load(db_url(out), run_id)
        before = history.max_t + 1
    result = AbcRun(int(history.id), before, before)
    todo = spec.abc.generations - before
    if todo <= 0:
        return result
    np.random.seed(spec.abc.seed + before)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (lambda _: None)
    if before == 0:
        say(f"neutrosim fit: calibration sample of {spec.abc.population} particles from the "
            "prior (sets the first epsilon" + (" and the distance's scales)" if
                                              spec.abc.distance == "adaptive" else ")"))
    try:
        t = abc.initialize_components_before_run(
            minimum_epsilon=None, max_nr_populations=todo, min_acceptance_rate=0.0,
            max_total_nr_simulations=np.inf, max_walltime=None, min_eps_diff=0.0)
        while True:
            t0 = time.perf_counter()
            ret = abc.run_generation(t=t)
            if not ret["successful"]:
                raise RuntimeError(f"pyabc: generation {t} failed (sample not ok)")
            pops = history.get_all_populations().set_index("t")
            row = {"generation": int(t), "epsilon": float(pops.loc[t, "epsilon"]),
                   "acceptance_rate": float(ret["acceptance_rate"]),
                   "particles": int(pops.loc[t, "particles"]),
                   "simulations": int(pops.loc[t, "samples"]),
                   "wall_s": round(time.perf_counter() - t0, 2)}
            result.log.append(row)
            result.generations_done = t + 1
            say(f"generation {t + 1}/{spec.abc.generations}: epsilon {row['epsilon']:.4g}, "
                f"acceptance {row['acceptance_rate']:.3f} ({row['particles']} of "
                f"{row['simulations']} particles), {row['wall_s']:.1f} s")
            if abc.check_terminate(t=t, acceptance_rate=ret["acceptance_rate"]):
                break
            t += 1
    finally:  # what pyabc's own run() does on leaving, also on Ctrl-C
        history.done()
        abc.sampler.stop()
    result.wall_s = time.perf_counter() - t_start
    return result
