"""One simulation run: ``run_one(params, seed) -> RunResult``, and writing it to a folder.

Every caller (the CLI, experiments, sweeps, the browser view, tests) goes through
:func:`run_one`; :func:`resume_one` continues a run saved in a checkpoint
(:mod:`.checkpoint`). Output folders are written into a temporary sibling and renamed into
place only when complete, so an interrupted or failed run leaves nothing half-written.
"""

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..config.errors import ParameterError
from ..config.params import Params, load_params
from ..config.units import MIN_PER_DAY, Scales
from .output import write_atomic, write_npz
from .provenance import provenance
from .snapshot import final_state
from .temporaries import remove_stale

if TYPE_CHECKING:
    from .checkpoint import CheckpointPlan

__all__ = ["RUN_FILES", "RunResult", "build_model", "run_one", "resume_one", "run_branches"]

#: the files of a run's output folder (:meth:`RunResult.write`)
RUN_FILES = ("timeseries.csv", "timeseries.parquet", "final_state.npz", "final_state.png",
             "manifest.json")


@dataclass
class RunResult:
    """What one run produced: the time series, the final state and its provenance."""

    timeseries: pd.DataFrame
    final: dict[str, np.ndarray]
    params: Params
    seed: int
    wall_s: float
    meta: dict[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        p = self.params
        return {
            "seed": self.seed,
            "scenario": p.scenario,
            "parameters": p.to_dict(),
            "rules": p.rules.to_rows(),
            "rules_file": p.rules.path,
            "parameter_sources": list(p.sources),
            "wall_time_s": round(self.wall_s, 3),
            **provenance(),
            **self.meta,
        }

    def write(self, out: str | Path, *, overwrite: bool = False) -> Path:
        """Write :data:`RUN_FILES` into ``out`` (whole or not at all; an existing folder
        with files is replaced only with ``overwrite``, if it is a run folder)."""
        from ..plots.state import plot_final_state

        def fill(tmp: Path) -> None:
            self.timeseries.to_csv(tmp / "timeseries.csv", index=False)
            self.timeseries.to_parquet(tmp / "timeseries.parquet", index=False)
            # stored, not deflated: deflating the float fields saves a tenth of the bytes and
            # costs about twenty times as long as writing them; no time stamps (same arrays,
            # same bytes)
            write_npz(tmp / "final_state.npz", self.final, compress=False)
            stage = self.params.initial.stage
            fig = plot_final_state(self.final, title=f"{self.params.scenario}, {stage} stage, "
                                                     f"seed {self.seed}")
            fig.savefig(tmp / "final_state.png", dpi=130)
            with open(tmp / "manifest.json", "w") as fh:
                json.dump(self.manifest(), fh, indent=2, default=str)

        return write_atomic(Path(out), fill, overwrite=overwrite, ours=RUN_FILES)


def build_model(params: Params | None = None, seed: int = 0, threads: int | None = None):
    """The model of one run at t=0: what :func:`run_one` steps, and what the browser view
    steps interactively (same parameters, same seed, same results; ``threads``: see
    :class:`sim.model.NeutroModel`)."""
    from ..model.model import NeutroModel

    return NeutroModel(params if params is not None else load_params(), rng=int(seed),
                       threads=threads)


def run_one(
    params: Params | None = None,
    seed: int = 0,
    *,
    days: float | None = None,
    progress: bool = False,
    threads: int | None = None,
    checkpoints: "CheckpointPlan | None" = None,
) -> RunResult:
    """Simulate ``days`` (default ``params.time.days``) and return tables and final state.

    The time series holds t=0, every ``time.record_every_h`` and the end (``days``, to
    the nearest model step).

    The same ``params`` and ``seed`` give bit-identical results, whatever ``threads`` (the
    threads solving the fields; default ``NUMBA_NUM_THREADS``, else the cores).
    ``checkpoints``: where and how often to save the model's state on the way
    (:class:`~sim.runs.checkpoint.CheckpointPlan`; :func:`resume_one` continues one).
    """
    params = params if params is not None else load_params()
    days = params.time.days if days is None else days
    if not (days > 0 and Scales(params.domain.voxel_um, params.time.dt_min).steps(
            days * MIN_PER_DAY) >= 1):
        raise ParameterError(f"days = {days}: must be at least one model step "
                             f"(time.dt_min = {params.time.dt_min} min)")
    every = checkpoints.every_steps(params) if checkpoints is not None else None
    t0 = time.perf_counter()
    model = build_model(params, seed, threads)  # nobody reads the Mesa side: never built
    model.set_end(days)  # the last time point is recorded at ``days``
    meta = {"days": days, "steps": model.end_step}
    return _run_to_end(model, params, int(seed), t0, meta, progress, checkpoints, every)


def resume_one(checkpoint, *, days: float | None = None, progress: bool = False,
               threads: int | None = None,
               checkpoints: "CheckpointPlan | None" = None) -> RunResult:
    """Continue the run saved in ``checkpoint`` (a path, its bytes, or a
    :class:`~sim.runs.checkpoint.Checkpoint`) to ``days`` (default the checkpoint's
    ``time.days``), with its parameters and random state: the result is bit for bit that
    of the run uninterrupted (its time series too: the records up to the checkpoint
    travel in it). ``checkpoints``: as for :func:`run_one`."""
    from .checkpoint import load_checkpoint, read_checkpoint

    t0 = time.perf_counter()
    ck = checkpoint if not isinstance(checkpoint, (str, Path, bytes)) else read_checkpoint(checkpoint)
    model = load_checkpoint(ck, days=days, threads=threads)
    params = model.p
    every = checkpoints.every_steps(params) if checkpoints is not None else None
    meta = {"days": params.time.days, "steps": model.end_step,
            "resumed_from": {"checkpoint": str(ck.path or ck.label), "sha256": ck.sha256,
                             "step": ck.step, "time_h": ck.time_h}}
    return _run_to_end(model, params, ck.seed, t0, meta, progress, checkpoints, every)


def run_branches(arms: list[Params], seed: int, *, branch_day: float,
                 days: float | None = None, threads: int | None = None) -> list[RunResult]:
    """Runs of the parameter sets ``arms`` (which differ only in ``intervention.*``, with
    no intervention before ``branch_day``) and one ``seed``, sharing the model steps
    before the one that reaches ``branch_day`` (that step applies the intervention): they
    are simulated once, saved in memory (:func:`~sim.runs.checkpoint.checkpoint_bytes`)
    and each arm continues from there. Each result is bit for bit that of :func:`run_one`
    of the arm (its time series too); its ``wall_s`` counts the shared stretch once, in
    the first arm."""
    from .checkpoint import checkpoint_bytes, load_checkpoint, model_steps, read_checkpoint

    t0 = time.perf_counter()
    first = arms[0]
    days = first.time.days if days is None else days
    shared_steps = model_steps(first, branch_day * MIN_PER_DAY) - 1
    if shared_steps < 1:  # nothing to share
        return [run_one(p, seed, days=days, threads=threads) for p in arms]
    trunk = build_model(first, seed, threads)
    trunk.set_end(shared_steps * first.time.dt_min / MIN_PER_DAY)
    while trunk.running:
        trunk.step()
    shared = read_checkpoint(checkpoint_bytes(trunk))
    del trunk
    results = []
    for params in arms:
        model = load_checkpoint(shared, params=params, days=days, threads=threads)
        meta = {"days": days, "steps": model.end_step,
                "shared_with_arms": {"steps": shared.step, "intervention_start_day": branch_day}}
        results.append(_run_to_end(model, params, int(seed), t0, meta, False, None, None))
        t0 = time.perf_counter()
    return results


def _run_to_end(model, params: Params, seed: int, t0: float, meta: dict[str, Any],
                progress: bool, checkpoints: "CheckpointPlan | None",
                every: int | None) -> RunResult:
    """Step ``model`` to its end (writing the checkpoints due) and gather its result."""
    start = model.steps
    n_steps = model.end_step - start
    if checkpoints is not None:
        checkpoints.folder.mkdir(parents=True, exist_ok=True)
        remove_stale(checkpoints.folder)
        meta["checkpoints"] = {"every_days": checkpoints.every_days,
                               "folder": str(checkpoints.folder)}
    bar = _progress_bar(n_steps, model.scales.dt_min) if progress else None
    for _ in range(n_steps):
        model.step()
        if every is not None and checkpoints.due(model, every):
            checkpoints.write(model)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    ts = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    meta.update({"field_threads": model.field_threads,
                 "field_threads_steps": _thread_steps(model, model.steps - start)})
    return RunResult(ts, final_state(model), params, seed, time.perf_counter() - t0, meta=meta)


def _thread_steps(model, steps: int) -> dict[str, int]:
    """Steps of this process (``steps`` of them) whose fields were solved on each number
    of threads ({"2": 4900, "1": 140})."""
    chooser = model.fields.chooser
    if chooser is None:
        return {str(model.field_threads): int(steps)}
    return {str(k): int(v) for k, v in chooser.steps_on.items()}


def _progress_bar(n_steps: int, dt_min: float) -> "_DayBar":
    return _DayBar(n_steps, MIN_PER_DAY / dt_min)


class _DayBar:
    """tqdm bar over steps: simulated days, days per wall-clock minute, and the time left.

    Its clock (elapsed, rate, time left) starts when the first step ends: on the first run
    after an install that step compiles numba's kernels (seconds to minutes), and a rate
    timed over it would make the first estimate of the time left many times too long.
    Until then the bar shows no rate.
    """

    def __init__(self, n_steps: int, steps_per_day: float):
        from tqdm.auto import tqdm

        self.steps_per_day = steps_per_day
        self.t0: float | None = None  # perf_counter() when the first step ended, s
        self.n0 = 0  # steps done then
        self.bar = tqdm(total=n_steps, unit="step", file=sys.stderr, dynamic_ncols=True,
                        desc="simulating", mininterval=0.5)
        self.bar.set_postfix_str("first step (compiles numba kernels on a first run)")

    def update(self, k: int) -> None:
        if self.t0 is None:  # the first step(s): restart the clock without them
            self.bar.set_postfix_str("", refresh=False)
            self.bar.reset()
            self.bar.update(k)
            self.t0, self.n0 = time.perf_counter(), self.bar.n
            return
        self.bar.update(k)
        if self.bar.n % 40 == 0:
            day = self.bar.n / self.steps_per_day
            minutes = (time.perf_counter() - self.t0) / 60.0
            rate = (self.bar.n - self.n0) / self.steps_per_day / max(minutes, 1e-9)
            self.bar.set_postfix_str(f"day {day:.1f}, {rate:.1f} sim-days/min", refresh=False)

    def close(self) -> None:
        self.bar.close()
