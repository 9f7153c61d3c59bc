"""The depletion experiment: control versus neutrophil-targeting arms, paired by seed.

The in-silico version of the study's key experiment (interfering with neutrophils in mice
with late-stage tumors cut tumor growth, proliferation and vessel formation). Every arm
runs the same replicate seeds (replicate r uses seed ``seed + r``, so any run can be
reproduced with ``neutrosim run --scenario ARM --seed S``); arms differ only from the
treatment start on. Runs go through the ensemble runner (:mod:`sim.runs.ensemble`); this
module builds the specs, then the tables, statistics, figures and report from disk.

Output folder::

    experiment.json        the setup (what --resume continues)
    runs/ final/ failures/ one Parquet part per run, final states of replicate 0, errors
    runs.parquet, runs.csv every time point of every run, tidy
    summary.csv            statistics per arm and readout at treatment start and endpoint
    figures/*.png|svg      growth curves, endpoint panels, final snapshots
    report.md              what was run, the table, the figures, the comparison with the study
    manifest.json          parameters per arm, seeds, versions, git revision, wall time
"""

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..config.errors import ParameterError
from ..config.params import Params, load_params
from ..config.scenarios import check_arms, efficiency_overrides
from ..readouts import READOUTS
from ..runs.ensemble import (
    EnsembleReport,
    RunSpec,
    load_failures,
    load_final,
    load_runs,
    plan_ensemble,
    run_ensemble,
)
from ..runs.executors import Executor
from ..runs.output import replace_into, save_figure, write_json
from ..runs.provenance import provenance
from .execution import executor_for, replicate_seeds
from .folders import check_folder, open_folder
from .stats import summarise

__all__ = ["DepletionSetup", "run_depletion", "analyse", "REFERENCE_ARM"]

REFERENCE_ARM = "control"
DEFAULT_ARMS = ("control", "depletion")


@dataclass(frozen=True)
class DepletionSetup:
    """What the experiment runs. ``None`` means: take the value from the parameters.

    ``efficiency`` replaces the strength of every treated arm's intervention (the
    ``intervention.*`` keys its scenario file sets); ``sets`` are ``section.key=value``
    overrides applied to every arm; ``rules_file`` a rules table replacing
    ``params/rules.csv`` in every arm.
    """

    arms: tuple[str, ...] = DEFAULT_ARMS
    replicates: int = 8
    days: float | None = None
    start_day: float | None = None
    efficiency: float | None = None
    params_file: str | None = None
    sets: tuple[tuple[str, str], ...] = ()
    seed: int = 1
    rules_file: str | None = None
    stage: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "arms", tuple(self.arms))
        object.__setattr__(self, "sets", tuple(tuple(kv) for kv in self.sets))
        check_arms(self.arms, "--arms")
        if len(set(self.arms)) != len(self.arms):
            raise ParameterError(f"--arms {','.join(self.arms)}: an arm is listed twice")
        if REFERENCE_ARM not in self.arms or len(self.arms) < 2:
            raise ParameterError(f"--arms {','.join(self.arms)}: needs '{REFERENCE_ARM}' "
                                 "(the reference) and at least one treated arm")
        if not isinstance(self.replicates, int) or self.replicates < 2:
            raise ParameterError(f"--replicates {self.replicates}: must be a whole number >= 2 "
                                 "(paired statistics need pairs)")
        if self.days is not None and not self.days > 0:
            raise ParameterError(f"--days {self.days}: must be > 0")
        if self.seed < 0:
            raise ParameterError(f"--seed {self.seed}: must be a whole number >= 0")
        if self.efficiency is not None and not 0.0 <= self.efficiency <= 1.0:
            raise ParameterError(f"--efficiency {self.efficiency}: out of range; allowed [0, 1]")

    def seeds(self) -> list[int]:
        """Replicate r uses seed + r in every arm (the pairing)."""
        return replicate_seeds(self.seed, self.replicates)

    def arm_params(self) -> dict[str, Params]:
        """Resolved, validated parameters of every arm (raises before anything runs; a bad
        value is blamed on the option that set it)."""
        out = {}
        for arm in self.arms:
            options = []
            if self.stage is not None:
                options.append((f"--stage {self.stage}", {"initial.stage": self.stage}))
            if self.days is not None:
                options.append((f"--days {self.days:g}", {"time.days": self.days}))
            if self.start_day is not None:
                options.append((f"--start-day {self.start_day:g}",
                                {"intervention.start_day": self.start_day}))
            strengths = efficiency_overrides(arm, self.efficiency) if self.efficiency is not None else {}
            if strengths:
                options.append((f"--efficiency {self.efficiency:g}", strengths))
            out[arm] = load_params(self.params_file, scenario=arm, overrides=dict(self.sets),
                                   options=options, rules=self.rules_file)
        first = out[self.arms[0]]
        if any(p.time.days <= p.intervention.start_day for p in out.values()):
            raise ParameterError(
                f"treatment starts on day {first.intervention.start_day} but the runs end on day "
                f"{first.time.days}: use --days > --start-day")
        return out

    def specs(self, params: dict[str, Params] | None = None) -> list[RunSpec]:
        params = params or self.arm_params()
        return [RunSpec(f"{arm}-r{r:02d}", params[arm], seed,
                        {"arm": arm, "replicate": r}, keep_final=(r == 0))
                for r, seed in enumerate(self.seeds()) for arm in self.arms]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["arms"], d["sets"] = list(self.arms), [list(kv) for kv in self.sets]
        return d

    @classmethod
    def from_dict(cls, d: Any, origin: str) -> "DepletionSetup":
        """The setup stored in a folder's ``experiment.json`` (``origin`` names the file);
        every key is checked for its type, so a damaged record is one clear error."""
        if not isinstance(d, dict):
            raise ParameterError(f"{origin}: 'setup' must be a JSON object, got {d!r}")
        allowed = {f.name for f in fields(cls)}
        unknown = set(d) - allowed
        if unknown:
            raise ParameterError(f"{origin}: unknown setup keys {sorted(unknown)}; "
                                 f"allowed {sorted(allowed)}")
        for key, value in d.items():
            accepts, wanted = _SETUP_TYPES[key]
            if not accepts(value):
                raise ParameterError(f"{origin}: setup.{key} = {value!r}: expected {wanted}")
        return cls(**d)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _optional(accepts):
    return lambda v: v is None or accepts(v)


def _text(v) -> bool:
    return isinstance(v, str)


#: setup key -> (accepts a value from experiment.json, what it expects, in words)
_SETUP_TYPES = {
    "arms": (lambda v: isinstance(v, (list, tuple)) and all(isinstance(a, str) for a in v),
             "a list of scenario names"),
    "replicates": (_whole, "a whole number"),
    "days": (_optional(_number), "a number or null"),
    "start_day": (_optional(_number), "a number or null"),
    "efficiency": (_optional(_number), "a number or null"),
    "params_file": (_optional(_text), "a path (string) or null"),
    "rules_file": (_optional(_text), "a path (string) or null"),
    "stage": (_optional(_text), "a stage name or null"),
    "sets": (lambda v: isinstance(v, (list, tuple)) and all(
        isinstance(kv, (list, tuple)) and len(kv) == 2 and all(isinstance(x, str) for x in kv)
        for kv in v), 'a list of ["section.key", "value"] pairs'),
    "seed": (_whole, "a whole number"),
}


@dataclass
class ExperimentResult:
    out: Path
    ensemble: EnsembleReport
    summary: pd.DataFrame
    failures: dict[str, dict] = field(default_factory=dict)


def read_setup(out: Path) -> "DepletionSetup":
    """The setup recorded in ``out/experiment.json`` (what ``--resume`` continues)."""
    path = Path(out) / "experiment.json"
    if not path.is_file():
        raise ParameterError(f"--resume: {path} not found (is {out} a depletion results folder?)")
    try:
        setup = json.loads(path.read_text())["setup"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ParameterError(f"{path}: not a readable experiment record "
                             f"({type(exc).__name__}: {exc})") from None
    return DepletionSetup.from_dict(setup, str(path))


def run_depletion(
    setup: DepletionSetup,
    out: str | Path,
    *,
    workers: int | None = None,
    resume: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
    command: str = "",
    branch: bool = True,
) -> ExperimentResult:
    """Run every missing run of ``setup`` into ``out``, then write tables, figures, report.

    Everything is validated before the first run starts, and before anything in ``out``
    changes. Without ``resume`` the folder must be new or empty; with it, finished runs are
    kept (they must have been made with this setup's parameters and seeds) and only the
    missing ones run. With ``branch`` the arms of a replicate share the days before the
    intervention starts: simulated once, each arm continues from a saved state
    (:func:`sim.runs.ensemble.branch_groups`); the results are bit for bit the same.
    """
    t0 = time.perf_counter()
    params = setup.arm_params()
    specs = setup.specs(params)
    out = check_folder(out, continuing=resume, refusal="folder exists and is not empty "
                       "(use --resume to finish it, or another --out)")
    plan = plan_ensemble(specs, out)  # refuses a resume whose runs would differ
    open_folder(out, "experiment.json", {"setup": setup.to_dict(), "command": command})
    with executor_for(len(specs), executor, workers) as runner:
        report = run_ensemble(specs, out, runner, plan=plan, progress=progress,
                              desc="depletion runs", branch=branch)
    summary = analyse(out, setup, params, wall_s=time.perf_counter() - t0, ensemble=report,
                      command=command, progress=progress)
    return ExperimentResult(out, report, summary, load_failures(out))


def analyse(
    out: str | Path,
    setup: DepletionSetup | None = None,
    params: dict[str, Params] | None = None,
    *,
    wall_s: float | None = None,
    ensemble: EnsembleReport | None = None,
    command: str = "",
    progress: bool = False,
) -> pd.DataFrame:
    """Tables, statistics, figures, report and manifest from the runs in ``out``."""
    from ..plots import experiment as ef
    from .report import render_report

    out = Path(out)
    setup = setup or read_setup(out)
    params = params or setup.arm_params()
    keys = [s.key for s in setup.specs(params)]
    runs = load_runs(out, keys)
    if runs.empty:
        raise ParameterError(f"{out}: no finished runs to analyse")
    runs["arm"] = pd.Categorical(runs["arm"], categories=list(setup.arms), ordered=True)
    runs = runs.sort_values(["arm", "replicate", "time_h"], kind="stable").reset_index(drop=True)
    runs["arm"] = runs["arm"].astype(str)
    replace_into(out / "runs.parquet", lambda p: runs.to_parquet(p, index=False))
    replace_into(out / "runs.csv", lambda p: runs.to_csv(p, index=False))

    treated = next(a for a in setup.arms if a != REFERENCE_ARM)
    start_h = params[treated].intervention.start_day * 24.0
    # the intervention acts within the step that ends at start_h, so the record at start_h
    # is already treated: "treatment start" is the last record before it
    before_h = float(runs.loc[runs["time_h"] < start_h, "time_h"].max())
    end_h = float(runs["time_h"].max())
    summary = summarise(runs, {"treatment_start": before_h, "endpoint": end_h},
                        reference=REFERENCE_ARM, arms=list(setup.arms))
    replace_into(out / "summary.csv", lambda p: summary.to_csv(p, index=False))

    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    finals = {arm: load_final(out, f"{arm}-r00") for arm in setup.arms}
    figures = {
        "growth_curves": ef.growth_curves(runs, start_h / 24.0, arms=list(setup.arms)),
        "endpoint_panels": ef.endpoint_panels(runs, end_h, arms=list(setup.arms)),
        "final_snapshots": ef.snapshots({a: s for a, s in finals.items() if s is not None},
                                        seed=setup.seed),
    }
    for name, fig in figures.items():
        save_figure(fig, figdir / name)
    failures = load_failures(out)
    manifest = _manifest(setup, params, runs, failures, wall_s, ensemble, command)
    write_json(out / "manifest.json", manifest)
    text = render_report(setup, params, summary, manifest, figures=list(figures))
    replace_into(out / "report.md", lambda p: p.write_text(text))
    return summary


def _manifest(setup, params, runs, failures, wall_s, ensemble, command) -> dict[str, Any]:
    done = runs.groupby("arm")["replicate"].nunique().to_dict()
    return {
        "experiment": "depletion",
        "command": command,
        "setup": setup.to_dict(),
        "seeds": setup.seeds(),
        "arms": {arm: {"scenario": p.scenario, "params_digest": p.digest(),
                       "intervention": asdict(p.intervention),
                       "replicates_finished": int(done.get(arm, 0))}
                 for arm, p in params.items()},
        "parameters": {arm: p.to_dict() for arm, p in params.items()},
        "rules": params[REFERENCE_ARM].rules.to_rows(),
        "parameter_sources": list(params[REFERENCE_ARM].sources),
        "failures": {k: v["error"] for k, v in failures.items()},
        "runs_this_call": len(ensemble.done) if ensemble else None,
        "runs_resumed_from_disk": len(ensemble.skipped) if ensemble else None,
        "wall_time_s": round(wall_s, 1) if wall_s is not None else None,
        **provenance(),
    }


def main_summary(result: ExperimentResult, setup: DepletionSetup) -> str:
    """A few lines for the terminal: the endpoint change of the headline readouts."""
    s = result.summary
    end = s[(s["time_point"] == "endpoint") & (s["arm"] != REFERENCE_ARM)]
    lines = [f"wrote {result.out}/ ({len(result.ensemble.done)} runs now, "
             f"{len(result.ensemble.skipped)} from disk, {len(result.failures)} failed)"]
    for arm in [a for a in setup.arms if a != REFERENCE_ARM]:
        parts = []
        for col in ("tumor_cells", "proliferation_index", "vessel_density_per_mm2"):
            r = end[(end["arm"] == arm) & (end["readout"] == col)]
            if not r.empty:
                r = r.iloc[0]
                parts.append(f"{READOUTS[col][0].split(' (')[0]} {r['change_pct']:+.0f}% "
                             f"(p={r['p_wilcoxon']:.3g})")
        lines.append(f"  {arm} vs control at endpoint: " + ", ".join(parts))
    if result.failures:
        lines.append(f"  failed runs: {', '.join(result.failures)} (see failures/; --resume retries)")
    return "\n".join(lines)
