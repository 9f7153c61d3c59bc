"""Parameter sweeps: a TOML spec -> a design of points (SALib) -> keyed runs on the ensemble.

A spec names the factors (parameters with a range, or levels), the design (``grid``,
``lhs``, ``sobol`` (Saltelli's scheme), ``morris``), the number of samples, replicates and
arms per point, days, and the outcomes to analyse. Every (point, arm, replicate) becomes
one :class:`sim.runs.ensemble.RunSpec` with key ``pNNNNN-ARM-rNN``; replicate r uses seed
``seed + r`` at every point and in every arm (common random numbers, so differences
between points and arms are not seed noise). The runs go through
:func:`sim.runs.ensemble.run_ensemble` unchanged: atomic Parquet parts, skip-if-done, failure
records. Each run is :func:`sim.runs.ensemble.simulate_model` (the neutrosim model) unless
:func:`run_sweep` is given another ``simulate``. See ``params/sweeps/`` for examples and
``docs/sweeps.md`` for the format.
"""

import difflib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config.errors import ParameterError
from ..config.params import Params, load_params, read_toml
from ..config.scenarios import check_arms
from ..runs.ensemble import RunSpec, execute_run, plan_ensemble, run_ensemble, simulate_model
from ..runs.executors import Executor
from ..runs.output import write_json
from ..runs.provenance import provenance
from .execution import executor_for, replicate_seeds
from .folders import check_folder, open_folder

__all__ = ["Factor", "SweepSpec", "load_spec", "run_sweep", "read_record", "DESIGNS"]

DESIGNS = ("grid", "lhs", "sobol", "morris")
_SWEEP_KEYS = {"design", "samples", "replicates", "arms", "days", "seed", "outcomes",
               "params", "rules", "set", "levels", "num", "description"}


@dataclass(frozen=True)
class Factor:
    """One swept parameter: a range [low, high] or explicit grid levels."""

    name: str
    low: float
    high: float
    levels: tuple[float, ...] | None = None
    integer: bool = False


@dataclass(frozen=True)
class SweepSpec:
    path: str
    factors: tuple[Factor, ...]
    design: str = "morris"
    samples: int = 4
    replicates: int = 1
    arms: tuple[str, ...] = ("control",)
    days: float | None = None
    seed: int = 1
    outcomes: tuple[str, ...] = ("tumor_cells",)
    params_file: str | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    levels: int = 4      # Morris grid levels
    num: int = 3         # grid points per factor given as a range
    rules_file: str | None = None

    # -- the design -------------------------------------------------------------------
    def problem(self) -> dict[str, Any]:
        """The SALib problem: names and bounds of the factors."""
        return {"num_vars": len(self.factors), "names": [f.name for f in self.factors],
                "bounds": [[f.low, f.high] for f in self.factors]}

    def design_matrix(self) -> np.ndarray:
        """Points (rows) x factors (columns), in SALib's order for the analysis."""
        return self._design.copy()

    @cached_property  # sampled once per spec: the runs, the manifest and the analysis use it
    def _design(self) -> np.ndarray:
        from SALib.sample import latin, morris, sobol

        prob = self.problem()
        if self.design == "grid":
            axes = [f.levels if f.levels is not None else np.linspace(f.low, f.high, self.num)
                    for f in self.factors]
            x = np.array(list(itertools.product(*axes)), dtype=float)
        elif self.design == "lhs":
            x = latin.sample(prob, self.samples, seed=self.seed)
        elif self.design == "sobol":
            x = sobol.sample(prob, self.samples, calc_second_order=False, seed=self.seed)
        else:
            x = morris.sample(prob, self.samples, num_levels=self.levels, seed=self.seed)
        for j, f in enumerate(self.factors):
            if f.integer:
                x[:, j] = np.round(x[:, j])
        return x

    def points(self) -> list[dict[str, float]]:
        x = self.design_matrix()
        return [{f.name: (int(v) if f.integer else float(v)) for f, v in zip(self.factors, row)}
                for row in x]

    def seeds(self) -> list[int]:
        return replicate_seeds(self.seed, self.replicates)

    # -- the runs ---------------------------------------------------------------------
    def base_params(self, arm: str, point: dict[str, float] | None = None) -> Params:
        """The parameters of ``arm`` at ``point``; a bad value is blamed on the spec's key
        that set it."""
        options = [(f"{self.path}: [sweep] set", self.sets)] if self.sets else []
        if self.days is not None:
            options.append((f"{self.path}: [sweep] days = {self.days:g}",
                            {"time.days": self.days}))
        if point:
            options.append(("sweep point", point))
        return load_params(self.params_file, scenario=arm, options=options,
                           rules=self.rules_file)

    def run_specs(self) -> list[RunSpec]:
        """Every (point, arm, replicate) as a keyed run; parameters validated here."""
        specs = []
        arm_params = {arm: self._arm_params(arm) for arm in self.arms}
        for i, point in enumerate(self.points()):
            for arm in self.arms:
                params = self._point_params(arm, point, arm_params[arm])
                for r, seed in enumerate(self.seeds()):
                    specs.append(RunSpec(f"p{i:05d}-{arm}-r{r:02d}", params, seed,
                                         {"point": i, "arm": arm, "replicate": r, **_cols(point)},
                                         days=self.days))
        return specs

    def _arm_params(self, arm: str) -> Params | None:
        """The arm's parameters without a point, or None if they are only valid with one."""
        try:
            return self.base_params(arm)
        except ParameterError:
            return None

    def _point_params(self, arm: str, point: dict[str, float], arm_params: Params | None) -> Params:
        """:meth:`base_params` of ``arm`` at ``point``: the same values and digest, derived from
        the arm's parameters (the files are read once per arm, not once per point)."""
        if arm_params is not None:
            days = {"time.days": self.days} if self.days is not None else {}
            try:
                return arm_params.replace({**point, **days}, origin="sweep point")
            except ParameterError:
                pass  # raised again below, naming the spec's settings as load_params does
        return self.base_params(arm, point)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "design": self.design,
                "samples": self.samples, "replicates": self.replicates, "arms": list(self.arms),
                "days": self.days, "seed": self.seed, "outcomes": list(self.outcomes),
                "params_file": self.params_file, "rules_file": self.rules_file,
                "sets": self.sets, "levels": self.levels,
                "num": self.num,
                "factors": [{"name": f.name, "low": f.low, "high": f.high,
                             "levels": list(f.levels) if f.levels else None,
                             "integer": f.integer} for f in self.factors]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SweepSpec":
        d = dict(d)
        d.pop("model", None)  # which simulation ran: a record of the folder, not of the spec
        factors = tuple(Factor(f["name"], f["low"], f["high"],
                               tuple(f["levels"]) if f.get("levels") else None, f["integer"])
                        for f in d.pop("factors"))
        d["arms"], d["outcomes"] = tuple(d["arms"]), tuple(d["outcomes"])
        return cls(factors=factors, **d)


def _cols(point: dict[str, float]) -> dict[str, float]:
    """Factor values as table columns: dots are not welcome in column names."""
    return {f"x:{k}": v for k, v in point.items()}


def load_spec(path: str | Path, rules: str | Path | None = None) -> SweepSpec:
    """Read and validate a sweep spec; every problem is one ParameterError naming the key.

    ``rules`` (``--rules``) replaces the rules table the spec names (its ``rules`` key,
    relative to the spec) or, without one, ``params/rules.csv``."""
    path = Path(path)
    raw = read_toml(path)
    unknown = set(raw) - {"sweep", "parameters"}
    if unknown:
        raise ParameterError(f"{path}: unknown table(s) {sorted(unknown)}; allowed [sweep], [parameters]")
    sw = _table(raw.get("sweep", {}), f"{path}: [sweep]")
    bad = set(sw) - _SWEEP_KEYS
    if bad:
        raise ParameterError(f"{path}: unknown key(s) in [sweep]: {sorted(bad)}; "
                             f"allowed: {', '.join(sorted(_SWEEP_KEYS))}")
    where = f"{path}: [sweep]"
    design = _choice(sw.get("design"), DESIGNS, f"{where} design")
    samples = _int(sw.get("samples", 4), f"{where} samples", 1)
    replicates = _int(sw.get("replicates", 1), f"{where} replicates", 1)
    levels = _int(sw.get("levels", 4), f"{where} levels", 2)
    num = _int(sw.get("num", 3), f"{where} num", 2)
    seed = _int(sw.get("seed", 1), f"{where} seed", 0)
    days = sw.get("days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float))
                             or not 0 < days < math.inf):
        raise ParameterError(f"{where} days = {days!r}: must be a number > 0")
    arms = _names(sw.get("arms", ["control"]), f"{where} arms", '["control", "depletion"]')
    outcomes = _names(sw.get("outcomes", ["tumor_cells"]), f"{where} outcomes", '["tumor_cells"]')
    sets = _dotted(_table(sw.get("set", {}), f"{where} set"))
    params_file = _file(sw.get("params"), f"{where} params", "TOML overlay", path.parent)
    rules_file = _file(sw.get("rules"), f"{where} rules", "rules CSV", path.parent)
    if rules is not None:
        rules_file = str(Path(rules).resolve())
    description = sw.get("description", "")
    if not isinstance(description, str):
        raise ParameterError(f"{where} description = {description!r}: expected a string")
    parameters = _table(raw.get("parameters", {}), f"{path}: [parameters]")
    factors = _factors(_dotted(parameters, leaf=_FACTOR_KEYS), path, design)
    spec = SweepSpec(str(path), factors, design, samples, replicates, arms,
                     float(days) if days is not None else None, seed, outcomes, params_file,
                     sets, levels, num, rules_file)
    _check(spec, path)
    return spec


def _choice(value, allowed, where: str) -> str:
    if value not in allowed:
        raise ParameterError(f"{where} = {value!r}: allowed: {', '.join(allowed)}")
    return value


def _file(value, where: str, what: str, base: Path) -> str | None:
    """A spec's path to a file (relative to the spec's folder ``base``), absolute."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ParameterError(f"{where} = {value!r}: expected the path of a {what} file, "
                             "as a string")
    return str((base / value).resolve())


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ParameterError(f"{where} = {value!r}: expected a table (a [section] of key = value)")
    return value


def _names(value, where: str, example: str) -> tuple[str, ...]:
    """A non-empty list of names; a single string is refused (not read as its letters)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v
                                                           for v in value):
        raise ParameterError(f"{where} = {value!r}: expected a non-empty list of names, "
                             f"e.g. {example}")
    return tuple(value)


_FACTOR_KEYS = frozenset({"low", "high", "levels"})


def _dotted(table: dict, prefix: str = "", leaf: frozenset = frozenset()) -> dict[str, Any]:
    """``{"section.key": value}`` of a TOML table, whether the keys were written quoted
    (``"tumor.cycle_rate_per_min" = 1``) or as TOML's dotted keys, which nest. A table
    holding any of ``leaf``'s keys is a value, not a nesting."""
    flat = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not (set(value) & leaf):
            flat.update(_dotted(value, f"{name}.", leaf))
        else:
            flat[name] = value
    return flat


def _int(value, where: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ParameterError(f"{where} = {value!r}: must be a whole number >= {lo}")
    return value


def _factors(table: dict, path: Path, design: str) -> tuple[Factor, ...]:
    if not table:
        raise ParameterError(f"{path}: [parameters] is empty; name at least one parameter "
                             "with low/high (or levels for a grid)")
    defaults = load_params()
    schema = {**defaults.flat(), **defaults.rules.saturations()}  # rules.CELL.BEHAVIOUR.DIRECTION
    out = []
    for name, spec in table.items():
        where = f"{path}: [parameters] {name}"
        check_parameter_key(name, schema, where)
        if not isinstance(spec, dict):
            raise ParameterError(f"{where}: expected a table like {{low = 1, high = 2}} or {{levels = [...]}}")
        extra = set(spec) - {"low", "high", "levels"}
        if extra:
            raise ParameterError(f"{where}: unknown key(s) {sorted(extra)}; allowed low, high, levels")
        integer = isinstance(schema.get(name), int)
        if "levels" in spec:
            levels = spec["levels"]
            if design != "grid":
                raise ParameterError(f"{where}: levels are for design = 'grid'; give low and high")
            if not isinstance(levels, list) or not levels or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in levels):
                raise ParameterError(f"{where}: levels must be a non-empty list of numbers")
            out.append(Factor(name, float(min(levels)), float(max(levels)),
                              tuple(float(v) for v in levels), integer))
            continue
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (KeyError, TypeError, ValueError):
            raise ParameterError(f"{where}: needs numeric low and high") from None
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ParameterError(f"{where}: empty range low = {low}, high = {high}; need low < high")
        out.append(Factor(name, low, high, None, integer))
    return tuple(out)


def check_parameter_key(name: str, schema, where: str) -> None:
    """ParameterError ``where: unknown parameter`` (with the closest key of ``schema`` as
    a suggestion) unless ``name`` is one of its keys."""
    if name not in schema:
        close = difflib.get_close_matches(name, list(schema), n=1, cutoff=0.6)
        raise ParameterError(f"{where}: unknown parameter" +
                             (f" (did you mean {close[0]}?)" if close else
                              "; see `neutrosim params` for the keys"))


def _check(spec: SweepSpec, path: Path) -> None:
    """Cross-key checks, and every factor's extremes through the parameter validation."""
    check_arms(spec.arms, f"{path}: [sweep] arms", as_list=True)
    if len(spec.arms) > 1 and "control" not in spec.arms:
        raise ParameterError(f"{path}: [sweep] arms: with several arms one must be 'control' "
                             "(effects are measured against it)")
    from ..readouts import REPORTERS

    bad = [o for o in spec.outcomes if o not in REPORTERS]
    if bad:
        raise ParameterError(f"{path}: [sweep] outcomes: unknown {bad}; allowed: {', '.join(REPORTERS)}")
    if spec.design == "sobol" and spec.samples & (spec.samples - 1):
        raise ParameterError(f"{path}: [sweep] samples = {spec.samples}: Saltelli's scheme needs a "
                             "power of 2 (e.g. 8, 16, 64)")
    for arm in spec.arms:
        for f in spec.factors:
            for v in (f.low, f.high):
                try:
                    spec.base_params(arm, {f.name: int(round(v)) if f.integer else v})
                except ParameterError as exc:
                    raise ParameterError(f"{path}: [parameters] {f.name} range [{f.low}, {f.high}]: {exc}") from None


def outcome_table(spec: SweepSpec, endpoints: pd.DataFrame) -> pd.DataFrame:
    """Per design point: each outcome in the control arm (mean over replicates) and, for
    each treated arm, its effect ``100 (mean_arm / mean_control - 1)`` percent.

    ``endpoints`` has one row per run (columns point, arm, replicate and the outcomes).
    Missing runs leave NaN.
    """
    means = endpoints.groupby(["point", "arm"])[list(spec.outcomes)].mean()
    n_points = len(spec.design_matrix())
    out = pd.DataFrame(index=pd.RangeIndex(n_points, name="point"))
    ctrl = means.xs("control", level="arm") if "control" in spec.arms else None
    for o in spec.outcomes:
        if ctrl is not None:
            out[o] = ctrl[o]
        for arm in spec.arms:
            if arm != "control":
                arm_mean = means.xs(arm, level="arm")[o]
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[f"{o}:{arm}_vs_control_pct"] = 100.0 * (arm_mean / ctrl[o] - 1.0)
    return out


def run_sweep(spec: SweepSpec, out: str | Path, executor: Executor | None = None, *,
              workers: int | None = None, progress: bool = True, command: str = "",
              simulate: Callable = simulate_model):
    """Run every missing run of ``spec`` into ``out`` (re-running continues a sweep).

    Without an ``executor``, a local process pool of ``workers`` (default: one per core)
    runs them. ``simulate(run_spec) -> (table, final or None)`` is what each run evaluates
    (default the neutrosim model; it must be importable by the workers). The folder records
    the spec and the simulation in ``sweep.json``; a different spec or simulation over the
    same folder is refused before anything runs.
    """
    t0 = time.perf_counter()
    out = Path(out)
    specs = spec.run_specs()  # validates every point before anything runs
    record = out / "sweep.json"
    d = spec.to_dict()
    mine = {"path": d.pop("path"), "model": _simulation_name(simulate), **d}
    same = {k: v for k, v in mine.items() if k != "path"}
    if record.is_file():
        theirs = {k: v for k, v in read_record(record).items() if k != "path"}
        if theirs != same:
            changed = sorted(k for k in same if same.get(k) != theirs.get(k))
            raise ParameterError(f"--out {out}: holds a different sweep (differs in {changed}); "
                                 "use another --out")
    check_folder(out, continuing=record.is_file(),
                 refusal="folder exists, is not empty and is not a sweep folder")
    plan = plan_ensemble(specs, out)
    open_folder(out, record.name, {"spec": mine, "spec_text": Path(spec.path).read_text()})
    with executor_for(len(specs), executor, workers) as runner:
        report = run_ensemble(specs, out, runner, plan=plan,
                              task=partial(execute_run, simulate=simulate),
                              progress=progress, desc="sweep runs")
    manifest = {"command": command, "runs_total": len(specs), "runs_this_call": len(report.done),
                "runs_resumed_from_disk": len(report.skipped), "failed": report.failed,
                "design_points": len(spec.design_matrix()), "executor": type(runner).__name__,
                "workers": runner.workers, "wall_time_s": round(time.perf_counter() - t0, 2),
                **provenance()}
    write_json(out / "manifest.json", manifest)
    return report


def read_record(record: Path) -> dict[str, Any]:
    """The spec stored in a sweep folder's ``sweep.json`` (with ``rules_file`` None in a
    record written before specs could name a rules table)."""
    try:
        spec = json.loads(record.read_text())["spec"]
        if not isinstance(spec, dict):
            raise TypeError
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise ParameterError(f"{record}: not a readable sweep record (a key 'spec' holding the "
                             "sweep); use another --out") from None
    return {"rules_file": None, **spec}


def _simulation_name(simulate: Callable) -> str:
    """How ``sweep.json`` names what the runs evaluate: ``neutrosim`` for the model."""
    if simulate is simulate_model:
        return "neutrosim"
    return f"{simulate.__module__}.{getattr(simulate, '__qualname__', repr(simulate))}"
