"""Ensembles of keyed runs: each spec -> :func:`sim.run_one` -> one Parquet part, resumable.

An ensemble is a list of :class:`RunSpec` (a key, the resolved parameters, a seed, and
labels such as arm and replicate). :func:`run_ensemble` sends the runs not yet done to an
executor (:mod:`sim.runs.executors`), and this process writes each result the moment it
arrives, atomically (temporary file, then rename)::

    DIR/runs/<key>.parquet     the run's time series, one row per time point, with its
                               labels, seed and parameter digest as columns
    DIR/final/<key>.npz        its final state (fields and agents), if the spec asks
    DIR/failures/<key>.json    the error and traceback of a run that raised

A part on disk is the record that a run finished. Running the same ensemble over the same
folder again skips those keys (their digest must match) and retries failures, so an
interrupted ensemble resumes without losing or duplicating a run. The depletion
experiment and the sweeps share this runner; only the list of specs differs.
"""

import json
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..config.errors import ParameterError
from ..config.params import Params
from .executors import Executor, SerialExecutor
from .output import replace_into, write_json
from .temporaries import remove_stale

__all__ = ["RunSpec", "RunOutcome", "EnsembleReport", "EnsemblePlan", "plan_ensemble",
           "run_ensemble", "execute_run", "simulate_model", "branch_day", "branch_groups",
           "execute_group", "simulate_branches",
           "finished_keys", "load_runs", "load_final", "load_failures"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
_META = b"neutrosim"


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One simulation of an ensemble.

    ``key`` names the run's files (letters, digits and ``_.=+-``); ``labels`` become
    columns of its table (e.g. ``arm``, ``replicate``); ``keep_final`` also stores the
    final state.
    """

    key: str
    params: Params
    seed: int
    labels: Mapping[str, Any] = field(default_factory=dict)
    days: float | None = None
    keep_final: bool = False

    def __post_init__(self):
        if not _KEY.match(self.key):
            raise ParameterError(f"run key {self.key!r}: use letters, digits and _.=+- only")

    @cached_property  # asked for by the skip check, the worker and the table: hash once
    def digest(self) -> str:
        """Digest of the parameters (:meth:`sim.config.params.Params.digest`)."""
        return self.params.digest()


@dataclass
class RunOutcome:
    """What a worker sends back: a table and maybe a final state, or an error."""

    key: str
    digest: str
    table: pd.DataFrame | None = None
    final: dict[str, np.ndarray] | None = None
    error: str | None = None
    traceback: str | None = None
    wall_s: float = 0.0
    host: str = ""


@dataclass
class EnsembleReport:
    """Keys that ran now, were already on disk, or failed (key -> error message)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


def simulate_model(spec: RunSpec) -> tuple[pd.DataFrame, dict[str, np.ndarray] | None]:
    """The neutrosim model: :func:`sim.run_one` of the spec's parameters and seed, on one
    thread (ensembles run in parallel across runs: one per core)."""
    from .run import run_one

    result = run_one(spec.params, spec.seed, days=spec.days, threads=1)
    return result.timeseries, (result.final if spec.keep_final else None)


def branch_day(specs: list[RunSpec]) -> float | None:
    """The day up to which the runs ``specs`` are one and the same run, or None: when they
    share seed and days, and their parameters differ only in ``intervention.*``, that is
    the earliest intervention start among them (if it lies inside the run)."""
    if len(specs) < 2:
        return None
    first = specs[0]

    def trunk(spec: RunSpec):
        d = spec.params.to_dict()
        d.pop("intervention", None)
        return json.dumps(d, sort_keys=True), json.dumps(spec.params.rules.to_rows())

    if any(s.seed != first.seed or s.days != first.days or trunk(s) != trunk(first)
           for s in specs[1:]):
        return None
    day = min(s.params.intervention.start_day for s in specs)
    days = first.days if first.days is not None else first.params.time.days
    return day if 0 < day < days else None


def branch_groups(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """``specs`` grouped into runs that can share their start (:func:`branch_day`): same
    seed, days and parameters but for ``intervention.*``; in the order first seen."""
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        d = spec.params.to_dict()
        d.pop("intervention", None)
        key = (spec.seed, spec.days, json.dumps(d, sort_keys=True),
               json.dumps(spec.params.rules.to_rows()))
        groups.setdefault(key, []).append(spec)
    out: list[list[RunSpec]] = []
    for group in groups.values():
        if branch_day(group) is not None:
            out.append(group)
        else:
            out.extend([spec] for spec in group)
    return out


def simulate_branches(specs: list[RunSpec]) -> list[tuple[pd.DataFrame, dict | None]]:
    """The neutrosim model for runs that share their start (:func:`branch_day`), on one
    thread: the shared days once, then each run from there
    (:func:`sim.runs.run.run_branches`); bit for bit each :func:`simulate_model`."""
    from .run import run_branches

    results = run_branches([s.params for s in specs], specs[0].seed,
                           branch_day=branch_day(specs), days=specs[0].days, threads=1)
    return [(r.timeseries, r.final if s.keep_final else None) for r, s in zip(results, specs)]


def execute_group(specs: list[RunSpec]) -> list[RunOutcome]:
    """Run a group of :func:`branch_groups`: one run as :func:`execute_run`; several
    sharing their start through :func:`simulate_branches` (an error fails each of them)."""
    if len(specs) == 1:
        return [execute_run(specs[0])]
    host = f"{socket.gethostname()}:{os.getpid()}"
    t0 = time.perf_counter()
    try:
        results = simulate_branches(specs)
    except Exception as exc:  # recorded, not raised, as execute_run does
        error, tb = f"{type(exc).__name__}: {exc}", traceback.format_exc()
        return [RunOutcome(s.key, s.digest, error=error, traceback=tb, host=host) for s in specs]
    wall = (time.perf_counter() - t0) / len(specs)
    outcomes = []
    for spec, (table, final) in zip(specs, results):
        front = {**spec.labels, "seed": spec.seed, "params_digest": spec.digest}
        for i, (name, value) in enumerate(front.items()):
            table.insert(i, name, value)
        outcomes.append(RunOutcome(spec.key, spec.digest, table, final, wall_s=wall, host=host))
    return outcomes


def execute_run(spec: RunSpec, simulate: Callable = simulate_model) -> RunOutcome:
    """Run one spec; the table gets the spec's labels, seed and digest as leading columns.

    ``simulate(spec) -> (table, final or None)`` is what the run evaluates (the neutrosim
    model by default; a sweep may be given another, e.g. a test function with known
    results). An exception becomes a failure record instead of propagating.
    """
    out = RunOutcome(spec.key, spec.digest, host=f"{socket.gethostname()}:{os.getpid()}")
    t0 = time.perf_counter()
    try:
        table, final = simulate(spec)
        front = {**spec.labels, "seed": spec.seed, "params_digest": spec.digest}
        for i, (name, value) in enumerate(front.items()):
            table.insert(i, name, value)
        out.table, out.final = table, final
    except Exception as exc:  # recorded, not raised: one bad run must not stop the others
        out.error = f"{type(exc).__name__}: {exc}"
        out.traceback = traceback.format_exc()
    out.wall_s = time.perf_counter() - t0
    return out


@dataclass
class EnsemblePlan:
    """What :func:`run_ensemble` will do in a folder: the specs still to run, and the keys
    whose finished parts are kept."""

    todo: list[RunSpec]
    skipped: list[str]


def plan_ensemble(specs: Iterable[RunSpec], out: str | Path) -> EnsemblePlan:
    """Check ``specs`` against the parts already in ``out/runs/``; write nothing.

    Raises :class:`ParameterError` if keys repeat, or a finished part was made with other
    parameters or another seed (so an experiment is never silently continued with different
    settings), or a part cannot be read.
    """
    out = Path(out)
    specs = list(specs)
    _check_keys(specs)
    done = _finished(out)
    todo, skipped = [], []
    for spec in specs:
        if spec.key not in done:
            todo.append(spec)
            continue
        digest, seed = done[spec.key]
        part = out / "runs" / f"{spec.key}.parquet"
        if digest != spec.digest:
            raise ParameterError(f"{part}: made with different parameters (digest {digest}, "
                                 f"now {spec.digest}); a folder is continued only with the "
                                 "settings it was started with: leave out what changed, or "
                                 "use another output folder")
        if seed != spec.seed:
            raise ParameterError(f"{part}: made with seed {seed}, now {spec.seed}; a folder is "
                                 "continued only with the settings it was started with: leave "
                                 "out what changed, or use another output folder")
        skipped.append(spec.key)
    return EnsemblePlan(todo, skipped)


def run_ensemble(
    specs: Iterable[RunSpec],
    out: str | Path,
    executor: Executor | None = None,
    *,
    plan: EnsemblePlan | None = None,
    task: Callable[[RunSpec], RunOutcome] = execute_run,
    progress: bool = True,
    desc: str = "runs",
    branch: bool = False,
) -> EnsembleReport:
    """Run every spec whose part is not yet in ``out/runs/``; write each as it finishes.

    ``plan`` is :func:`plan_ensemble` of the same specs and folder when the caller checked
    them already (before writing anything of its own); without it they are checked here,
    before anything runs. ``task`` is the function executed per spec (tests substitute one
    that fails on purpose). ``branch``: runs that differ only in their intervention (the
    arms of one replicate) share the days before it, simulated once
    (:func:`branch_groups`, :func:`execute_group`; the neutrosim model only, ``task``
    unused); results are bit for bit the same.
    """
    t0 = time.perf_counter()
    out = Path(out)
    plan = plan if plan is not None else plan_ensemble(specs, out)
    report = EnsembleReport(skipped=list(plan.skipped))
    for sub in ("runs", "final", "failures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        remove_stale(out / sub)
    executor = executor or SerialExecutor()
    todo = plan.todo
    bar = _bar(len(todo), desc, executor.workers) if progress and todo else None
    if branch:
        results = ((g, outs, exc) for g, outs, exc in
                   executor.imap_unordered(execute_group, branch_groups(todo)))
    else:
        results = (([spec], [outcome], exc) for spec, outcome, exc in
                   executor.imap_unordered(task, todo))
    for group, outcomes, exc in results:
        if exc is not None:  # raised outside the task's own guard (or the worker died)
            outcomes = [RunOutcome(spec.key, spec.digest, error=f"{type(exc).__name__}: {exc}",
                                   traceback="".join(traceback.format_exception(exc)))
                        for spec in group]
        for spec, outcome in zip(group, outcomes):
            if outcome.error is None:
                _write_outcome(out, outcome, spec.seed)
                report.done.append(outcome.key)
            else:
                _write_failure(out, outcome)
                report.failed[outcome.key] = outcome.error
            if bar is not None:
                bar.update(1)
                if report.failed:
                    bar.set_postfix_str(f"{len(report.failed)} failed", refresh=False)
    if bar is not None:
        bar.close()
    report.wall_s = time.perf_counter() - t0
    return report


def _check_keys(specs: list[RunSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.key in seen:
            raise ParameterError(f"run key {spec.key!r} appears twice in the ensemble")
        seen.add(spec.key)


def _bar(total: int, desc: str, workers: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="run", desc=f"{desc} ({workers} worker{'s' * (workers > 1)})",
                file=sys.stderr, dynamic_ncols=True, smoothing=0.0)


def _write_outcome(out: Path, o: RunOutcome, seed: int) -> None:
    if o.final is not None:  # the state first: a part on disk means the run is complete
        replace_into(out / "final" / f"{o.key}.npz", lambda p: _save_npz(p, o.final))
    table = pa.Table.from_pandas(o.table, preserve_index=False)
    meta = {"key": o.key, "digest": o.digest, "seed": int(seed), "wall_s": round(o.wall_s, 3), "host": o.host}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           _META: json.dumps(meta).encode()})
    replace_into(out / "runs" / f"{o.key}.parquet", lambda p: pq.write_table(table, p))
    (out / "failures" / f"{o.key}.json").unlink(missing_ok=True)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object: numpy would append ".npz" to a path
        np.savez_compressed(fh, **arrays)


def _write_failure(out: Path, o: RunOutcome) -> None:
    record = {"key": o.key, "digest": o.digest, "error": o.error, "traceback": o.traceback,
              "wall_s": round(o.wall_s, 3), "host": o.host}
    write_json(out / "failures" / f"{o.key}.json", record)


def part_meta(path: Path) -> dict[str, Any]:
    """The key, digest, wall time and host stored in a part's Parquet metadata."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(_META, b"{}"))


def finished_keys(out: str | Path) -> dict[str, str]:
    """``{key: digest}`` of every run part in ``out/runs/``."""
    return {key: digest for key, (digest, _) in _finished(out).items()}


def _finished(out: str | Path) -> dict[str, tuple[str, int | None]]:
    """``{key: (digest, seed)}`` of every run part in ``out/runs/``; a part that cannot be
    read is one ParameterError naming it."""
    folder = Path(out) / "runs"
    if not folder.is_dir():
        return {}
    done = {}
    for path in sorted(folder.glob("*.parquet")):
        try:
            meta = part_meta(path)
            seed = meta.get("seed")
            if seed is None:  # a part written before the seed was in its metadata
                seed = int(pq.read_table(path, columns=["seed"])["seed"][0].as_py())
        except (OSError, ValueError, KeyError, IndexError, pa.ArrowException) as exc:
            raise ParameterError(f"{path}: not a readable run part ({type(exc).__name__}); "
                                 "remove it and that run is done again") from None
        done[path.stem] = (meta.get("digest", ""), seed)
    return done


def load_runs(out: str | Path, keys: Iterable[str] | None = None,
              columns: list[str] | None = None) -> pd.DataFrame:
    """One tidy table of the finished runs (all, or only ``keys``), read from disk."""
    folder = Path(out) / "runs"
    paths = sorted(folder.glob("*.parquet")) if keys is None else [folder / f"{k}.parquet" for k in keys]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        return pd.DataFrame(columns=columns)
    return pd.concat([pq.read_table(p, columns=columns).to_pandas() for p in paths],
                     ignore_index=True)


def load_final(out: str | Path, key: str) -> dict[str, np.ndarray] | None:
    """The stored final state of run ``key``, or None."""
    path = Path(out) / "final" / f"{key}.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def load_failures(out: str | Path) -> dict[str, dict[str, Any]]:
    """``{key: failure record}`` of the runs that raised and have not since succeeded."""
    folder = Path(out) / "failures"
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
