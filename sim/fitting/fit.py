"""A whole fit in one folder: check the folder, run (or continue) the ABC, write the outputs.

The folder holds pyabc's history (``history.db``, SQLite) and ``fit.json``, the record of
which targets file (its digest) and which run of the history the folder is for. Running
the same targets file into the same folder again continues that run up to ``[abc]
generations`` (asking for more generations continues it further); a different targets
file is refused before anything runs, and ``overwrite`` starts afresh.
"""

import json
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config.errors import ParameterError
from ..runs.destination import check_out
from ..runs.ensemble import simulate_model
from ..runs.executors import Executor, ProcessExecutor, SerialExecutor, default_workers
from ..runs.output import replace_into, write_json
from ..runs.provenance import provenance
from .abc import HISTORY, AbcRun, db_url, make_sampler, run_abc
from .outputs import (posterior_table, ppc_draws, ppc_summary, render_report,
                      summarise_posterior, write_figures, write_overlay)
from .particle import ParticleModel
from .spec import FitSpec

__all__ = ["OUTPUTS", "RECORD", "FitResult", "check_fit_folder", "run_fit"]

RECORD = "fit.json"
#: what a fit folder holds (--overwrite replaces a folder holding only these)
OUTPUTS = (HISTORY, f"{HISTORY}-journal", RECORD, "posterior.parquet", "ppc.csv",
           "params.toml", "report.md", "figures", "manifest.json")


@dataclass
class FitResult:
    out: Path
    run_id: int
    abc: AbcRun
    posterior: pd.DataFrame
    summary: pd.DataFrame
    ppc: pd.DataFrame
    generations: pd.DataFrame


def _read_record(out: Path) -> dict[str, Any]:
    try:
        record = json.loads((out / RECORD).read_text())
        if not isinstance(record, dict) or "spec_digest" not in record or "run_id" not in record:
            raise ValueError
    except (OSError, UnicodeDecodeError, ValueError):
        raise ParameterError(f"--out {out}: {RECORD} is not a readable fit record; use "
                             "--overwrite or another --out") from None
    return record


def check_fit_folder(spec: FitSpec, out: str | Path, *, overwrite: bool = False) -> int | None:
    """Refuse a folder the fit cannot use; write nothing. Returns the run id to continue
    (same targets file, not ``overwrite``), or None for a new fit."""
    out = Path(out)
    if (out / RECORD).is_file() and not overwrite:
        record = _read_record(out)
        if record["spec_digest"] != spec.digest():
            old = record.get("spec", {})
            new = spec.to_dict()
            changed = sorted(k for k in new if new[k] != old.get(k)) or ["the files it names"]
            raise ParameterError(f"--out {out}: holds a fit of other settings (differs in "
                                 f"{', '.join(changed)}; digest {record['spec_digest']}, now "
                                 f"{spec.digest()}); use another --out, or --overwrite to "
                                 "start afresh")
        if not (out / HISTORY).is_file():
            raise ParameterError(f"--out {out}: {RECORD} names a history, but {HISTORY} is "
                                 "missing; use --overwrite to start afresh")
        check_out(out, resume=True, in_place=True)
        return int(record["run_id"])
    check_out(out, replace=overwrite, in_place=True, ours=OUTPUTS,
              refusal="folder exists, is not empty and is not a fit folder (use --overwrite "
                      "to replace one neutrosim wrote)")
    return None


def _clear(out: Path) -> None:
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _sampler_name(sampler) -> str:
    return type(sampler).__name__


def run_fit(spec: FitSpec, out: str | Path, executor: Executor | None = None, *,
            workers: int | None = None, overwrite: bool = False, progress: bool = True,
            command: str = "", simulate: Callable = simulate_model,
            run_id: "int | None | object" = ...) -> FitResult:
    """Run or continue the fit of ``spec`` in ``out`` and write its outputs.

    Particles run on ``executor`` (a :class:`DaskExecutor` or :class:`ProcessExecutor`
    its owner closes), else on a process pool of ``workers`` owned here (default one per
    core; 1: in this process, reproducibly). ``simulate(RunSpec) -> (table, final)`` is
    each run (default the neutrosim model; tests plant an analytic one). ``run_id``: what
    :func:`check_fit_folder` returned, if the caller checked the folder already.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if run_id is ...:  # not checked by the caller
        run_id = check_fit_folder(spec, out, overwrite=overwrite)
    with ExitStack() as stack:
        if executor is None:
            n = workers or default_workers()
            executor = (stack.enter_context(ProcessExecutor(n)) if n > 1 else SerialExecutor())
        sampler = make_sampler(executor)
        if run_id is None:
            out.mkdir(parents=True, exist_ok=True)
            if overwrite:
                _clear(out)
            # marks the folder as neutrosim's from the start (an interrupted fit can be
            # replaced with --overwrite); rewritten when the fit is done
            write_json(out / "manifest.json", {"command": command, "status": "running",
                                               **provenance()})

        def record(new_id: int) -> None:
            write_json(out / RECORD, {"spec_digest": spec.digest(), "run_id": new_id,
                                      "targets_file": spec.path, "spec": spec.to_dict(),
                                      "spec_text": spec.text})

        abc_run = run_abc(spec, out, sampler, run_id=run_id, progress=progress,
                          simulate=None if simulate is simulate_model else simulate,
                          on_new=record)
        model = ParticleModel(spec, simulate)
        result = write_outputs(spec, out, abc_run, model, executor, sampler=_sampler_name(sampler),
                               command=command, t0=t0)
    return result


def write_outputs(spec: FitSpec, out: Path, abc_run: AbcRun, model: ParticleModel,
                  executor: Executor, *, sampler: str, command: str, t0: float) -> FitResult:
    from pyabc import History

    from ..config.params import load_params

    history = History(db_url(out), _id=abc_run.run_id)
    table = posterior_table(history, spec)
    pops = history.get_all_populations()
    pops = pops[pops["t"] >= 0].reset_index(drop=True)
    summary = summarise_posterior(table, spec)
    draws = ppc_draws(table, spec, model, executor)
    ppc = ppc_summary(draws, spec)
    replace_into(out / "posterior.parquet", lambda p: table.to_parquet(p, index=False))
    replace_into(out / "ppc.csv", lambda p: draws.to_csv(p, index=False))
    n_gen = int(history.max_t + 1)
    write_overlay(out / "params.toml", summary, spec, n_gen)
    load_params(out / "params.toml")  # the overlay loads as `neutrosim run --params` reads it
    figures = write_figures(out / "figures", table, summary, draws, spec)
    meta = {"command": command, "status": "done", "targets_file": spec.path,
            "spec_digest": spec.digest(), "run_id": abc_run.run_id,
            "generations": n_gen, "generations_this_call": abc_run.generations_done - abc_run.generations_before,
            "population": spec.abc.population,
            "simulations_total": int(pops["samples"].sum()) if len(pops) else 0,
            "generation_log": abc_run.log, "sampler": sampler,
            "workers": getattr(executor, "workers", 1), "ppc_draws": len(draws),
            "wall_time_s": round(time.perf_counter() - t0, 2), **provenance()}
    text = render_report(spec, summary, pops, ppc if len(draws) else pd.DataFrame(),
                         figures=figures, meta=meta)
    replace_into(out / "report.md", lambda p: p.write_text(text))
    write_json(out / "manifest.json", meta)
    return FitResult(out, abc_run.run_id, abc_run, table, summary, ppc, pops)
