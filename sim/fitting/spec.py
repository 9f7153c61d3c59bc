"""A fit's targets file (TOML) read and checked into a frozen :class:`FitSpec`.

The file has four tables (format: ``docs/fitting.md``, examples: ``params/targets/``)::

    [simulation]   what one particle runs: stage, grid, days, arms, replicates, seed,
                   params (an overlay file), rules (a rules table), set (key = value)
    [parameters."section.key"]   prior = "uniform" | "loguniform", low, high
    [targets.NAME] value, sd, day, source: an outcome the particle computes
    [abc]          population, generations, distance ("adaptive" | "pnorm"), p, seed,
                   ppc_draws

Every problem is one :class:`~sim.config.errors.ParameterError` naming the file, the key,
the value and what is allowed, raised before anything runs or is written.
"""

import difflib
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.errors import ParameterError
from ..config.params import Params, allowed_range, load_params, read_toml, scenario_names
from ..config.rules import RULE_KEY
from ..experiments.sweep import _dotted, _file, _table, check_parameter_key

__all__ = ["Prior", "Target", "Simulation", "AbcSettings", "FitSpec", "load_spec",
           "PRIORS", "DISTANCES", "outcome_forms"]

PRIORS = ("uniform", "loguniform")
DISTANCES = ("adaptive", "pnorm")
VS_CONTROL = "_vs_control_pct"
_TABLES = ("simulation", "parameters", "targets", "abc")
_SIM_KEYS = ("stage", "grid", "days", "arms", "replicates", "seed", "params", "rules", "set",
             "description")
_PRIOR_KEYS = frozenset({"prior", "low", "high"})
_TARGET_KEYS = ("value", "sd", "day", "source")
_ABC_KEYS = ("population", "generations", "distance", "p", "seed", "ppc_draws")


@dataclass(frozen=True)
class Prior:
    """A fitted parameter's prior: uniform or log-uniform on [low, high] (model units).

    The ABC works on :meth:`to_abc` of the value: the value itself (uniform) or its log10
    (log-uniform, so that the perturbation kernel moves in relative steps)."""

    name: str
    kind: str
    low: float
    high: float
    integer: bool = False

    def abc_bounds(self) -> tuple[float, float]:
        if self.kind == "loguniform":
            return math.log10(self.low), math.log10(self.high)
        return self.low, self.high

    def to_model(self, x: float) -> float | int:
        """A value the ABC proposed (log10 for log-uniform) in the model's units."""
        v = 10.0 ** float(x) if self.kind == "loguniform" else float(x)
        v = min(max(v, self.low), self.high)  # 10**log10(high) can overshoot by an ulp
        return int(round(v)) if self.integer else v


@dataclass(frozen=True)
class Target:
    """One observed outcome: ``readout`` of ``arm`` (None: control, or the first arm),
    as a level or (``vs_control``) as the percent change of ``arm`` against control."""

    name: str
    value: float
    sd: float
    day: float
    source: str
    readout: str
    arm: str | None
    vs_control: bool


@dataclass(frozen=True)
class Simulation:
    """What one particle runs: every arm x replicate, replicate r with seed ``seed + r``."""

    arms: tuple[str, ...]
    replicates: int
    days: float
    seed: int
    stage: str | None = None
    grid: tuple[int, int] | None = None
    params_file: str | None = None
    rules_file: str | None = None
    sets: tuple[tuple[str, Any], ...] = ()
    description: str = ""


@dataclass(frozen=True)
class AbcSettings:
    population: int = 100
    generations: int = 4
    distance: str = "adaptive"
    p: float = 2.0
    seed: int = 1
    ppc_draws: int = 20


@dataclass(frozen=True)
class FitSpec:
    path: str
    text: str
    simulation: Simulation
    priors: tuple[Prior, ...]
    targets: tuple[Target, ...]
    abc: AbcSettings

    # -- what the particles run ----------------------------------------------------------
    def base_params(self, arm: str, values: dict[str, Any] | None = None) -> Params:
        """The parameters of ``arm`` (with ``values`` of the fitted parameters, if given);
        a bad value is blamed on the file's key or on the particle."""
        sim = self.simulation
        where = f"{self.path}: [simulation]"
        options = []
        if sim.sets:
            options.append((f"{where} set", dict(sim.sets)))
        if sim.stage is not None:
            options.append((f"{where} stage = {sim.stage!r}", {"initial.stage": sim.stage}))
        if sim.grid is not None:
            options.append((f"{where} grid = {list(sim.grid)}",
                            {"domain.nx": sim.grid[0], "domain.ny": sim.grid[1]}))
        if sim.days is not None and math.isfinite(sim.days):
            options.append((f"{where} days = {sim.days:g}", {"time.days": sim.days}))
        if values:
            options.append(("fitted parameters", values))
        return load_params(sim.params_file, scenario=arm, options=options, rules=sim.rules_file)

    def seeds(self) -> list[int]:
        from ..experiments.execution import replicate_seeds

        return replicate_seeds(self.simulation.seed, self.simulation.replicates)

    def observed(self) -> dict[str, float]:
        return {t.name: t.value for t in self.targets}

    def prior(self, name: str) -> Prior:
        return next(p for p in self.priors if p.name == name)

    # -- identity -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        s = self.simulation
        return {
            "simulation": {"arms": list(s.arms), "replicates": s.replicates, "days": s.days,
                           "seed": s.seed, "stage": s.stage,
                           "grid": list(s.grid) if s.grid else None,
                           "params_file": s.params_file, "rules_file": s.rules_file,
                           "set": dict(s.sets)},
            "parameters": {p.name: {"prior": p.kind, "low": p.low, "high": p.high,
                                    "integer": p.integer} for p in self.priors},
            "targets": {t.name: {"value": t.value, "sd": t.sd, "day": t.day,
                                 "source": t.source} for t in self.targets},
            "abc": {"population": self.abc.population, "distance": self.abc.distance,
                    "p": self.abc.p, "seed": self.abc.seed},
        }

    def digest(self) -> str:
        """What a resumed fit must share with the one it continues: everything but the
        number of generations (asking for more continues the same fit), the number of
        posterior predictive draws and descriptions; with the content of the files it
        names."""
        blob = self.to_dict()
        for key in ("params_file", "rules_file"):
            f = blob["simulation"][key]
            if f is not None:
                blob["simulation"][key + "_sha256"] = hashlib.sha256(Path(f).read_bytes()).hexdigest()
        text = json.dumps(blob, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def outcome_forms(arms: tuple[str, ...] | None = None) -> str:
    """The names a target may have, for error messages."""
    arms_txt = ", ".join(arms) if arms else "an arm of [simulation] arms"
    return ("<readout> (control arm, or the first arm without control), <readout>_<arm>, "
            f"<readout>_<arm>{VS_CONTROL} (arm: {arms_txt}); readouts: "
            + ", ".join(_readouts()))


def _readouts() -> list[str]:
    from ..readouts import REPORTERS

    return [r for r in REPORTERS if r != "time_h"]


# -- reading ------------------------------------------------------------------------------
def load_spec(path: str | Path) -> FitSpec:
    """Read and check a targets file; every problem is one ParameterError naming the key."""
    path = Path(path)
    raw = read_toml(path)
    text = path.read_text()
    unknown = [k for k in raw if k not in _TABLES]
    if unknown:
        raise ParameterError(f"{path}: unknown table(s) {unknown}; allowed: "
                             + ", ".join(f"[{t}]" for t in _TABLES))
    for table in ("simulation", "parameters", "targets"):
        if table not in raw:
            raise ParameterError(f"{path}: [{table}] is missing; see docs/fitting.md")
    sim = _simulation(_table(raw["simulation"], f"{path}: [simulation]"), path)
    priors = _priors(_table(raw["parameters"], f"{path}: [parameters]"), path)
    targets = _targets(_table(raw["targets"], f"{path}: [targets]"), path, sim)
    abc = _abc(_table(raw.get("abc", {}), f"{path}: [abc]"), path)
    spec = FitSpec(str(path), text, sim, priors, targets, abc)
    _check_params(spec, path)
    return spec


def _keys(table: dict, allowed, where: str) -> None:
    bad = [k for k in table if k not in allowed]
    if bad:
        raise ParameterError(f"{where}: unknown key(s) {bad}; allowed: {', '.join(allowed)}")


def _number(value, where: str, *, lo: float | None = None, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ParameterError(f"{where} = {value!r}: expected a finite number")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ParameterError(f"{where} = {value!r}: must be {'>' if lo_open else '>='} {lo:g}")
    return float(value)


def _whole(value, where: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ParameterError(f"{where} = {value!r}: must be a whole number >= {lo}")
    return value


def _simulation(t: dict, path: Path) -> Simulation:
    where = f"{path}: [simulation]"
    _keys(t, _SIM_KEYS, where)
    arms = t.get("arms", ["control"])
    if not isinstance(arms, list) or not arms or not all(isinstance(a, str) and a for a in arms):
        raise ParameterError(f"{where} arms = {arms!r}: expected a non-empty list of scenario "
                             'names, e.g. ["control", "depletion"]')
    known = scenario_names()
    bad = [a for a in arms if a not in known]
    if bad:
        raise ParameterError(f"{where} arms = {arms!r}: unknown arm(s) {bad}; allowed: "
                             f"{', '.join(known)}")
    if len(set(arms)) != len(arms):
        raise ParameterError(f"{where} arms = {arms!r}: an arm appears twice")
    stage = t.get("stage")
    if stage is not None and stage not in ("early", "advanced"):
        raise ParameterError(f"{where} stage = {stage!r}: allowed: early, advanced")
    grid = t.get("grid")
    if grid is not None:
        if (not isinstance(grid, list) or len(grid) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in grid)):
            raise ParameterError(f"{where} grid = {grid!r}: expected two whole numbers "
                                 "[NX, NY] (voxels)")
        grid = (grid[0], grid[1])
    days = t.get("days")
    if days is not None:
        days = _number(days, f"{where} days", lo=0, lo_open=True)
    description = t.get("description", "")
    if not isinstance(description, str):
        raise ParameterError(f"{where} description = {description!r}: expected a string")
    sets = _dotted(_table(t.get("set", {}), f"{where} set"))
    sim = Simulation(tuple(arms), _whole(t.get("replicates", 1), f"{where} replicates", 1),
                     days if days is not None else math.nan,
                     _whole(t.get("seed", 1), f"{where} seed", 0), stage, grid,
                     _file(t.get("params"), f"{where} params", "TOML overlay", path.parent),
                     _file(t.get("rules"), f"{where} rules", "rules CSV", path.parent),
                     tuple(sorted(sets.items())), description)
    if days is None:  # the parameters' own time.days (after params and set)
        from dataclasses import replace

        probe = FitSpec(str(path), "", sim, (), (), AbcSettings())
        sim = replace(sim, days=float(probe.base_params(arms[0]).time.days))
    return sim


def _schema() -> dict[str, Any]:
    defaults = load_params()
    return {**defaults.flat(), **defaults.rules.saturations()}


def _bounds(name: str) -> tuple[float | None, float | None, str]:
    """The allowed range of parameter ``name`` (rule saturations: [0, the behaviour's
    upper bound]) and how it is written in a message."""
    if name.startswith(f"{RULE_KEY}."):
        from ..config.rules import BEHAVIOURS

        cell, behaviour = name.split(".")[1:3]
        unit, _, upper = BEHAVIOURS[cell][behaviour]
        return 0.0, upper, f"[0, {upper:g}] ({unit})"
    lo, hi = allowed_range(name)
    section, _, key = name.partition(".")
    from ..config.params import _SECTIONS

    open_lo = _SECTIONS[section].__dataclass_fields__[key].metadata.get("lo_open", False)
    text = f"{'(' if open_lo else '['}{'-inf' if lo is None else f'{lo:g}'}, " \
           f"{'inf' if hi is None else f'{hi:g}'}]"
    return lo, hi, text


def _priors(table: dict, path: Path) -> tuple[Prior, ...]:
    flat = _dotted(table, leaf=_PRIOR_KEYS)
    if not flat:
        raise ParameterError(f'{path}: [parameters] is empty; give at least one, e.g. '
                             '[parameters."neutrophil.circulating_supply"] with prior, low, high')
    schema = _schema()
    out = []
    for name, spec in flat.items():
        where = f'{path}: [parameters."{name}"]'
        check_parameter_key(name, schema, where)
        value = schema[name]
        if isinstance(value, str):
            raise ParameterError(f"{where}: {name} = {value!r} is a choice, not a number; "
                                 "only numeric parameters can be fitted")
        if not isinstance(spec, dict):
            raise ParameterError(f"{where} = {spec!r}: expected a table with prior, low, high")
        _keys(spec, ("prior", "low", "high"), where)
        kind = spec.get("prior")
        if kind not in PRIORS:
            raise ParameterError(f"{where} prior = {kind!r}: allowed: {', '.join(PRIORS)}")
        if "low" not in spec or "high" not in spec:
            raise ParameterError(f"{where}: needs low and high (the prior's bounds)")
        low = _number(spec["low"], f"{where} low")
        high = _number(spec["high"], f"{where} high")
        if not low < high:
            raise ParameterError(f"{where}: low = {low:g}, high = {high:g}: an empty or "
                                 "inverted prior; need low < high")
        if kind == "loguniform" and low <= 0:
            raise ParameterError(f"{where} low = {low:g}: a log-uniform prior needs low > 0")
        lo, hi, text = _bounds(name)
        for key, v in (("low", low), ("high", high)):
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ParameterError(f"{where} {key} = {v:g}: outside {name}'s allowed "
                                     f"range {text}")
        out.append(Prior(name, kind, low, high, integer=isinstance(value, int)
                         and not isinstance(value, bool)))
    return tuple(out)


def _parse_target(name: str, arms: tuple[str, ...]) -> tuple[str, str | None, bool] | None:
    """(readout, arm, vs_control) of a target name, or None if it names no outcome."""
    readouts = _readouts()
    vs = name.endswith(VS_CONTROL)
    stem = name[: -len(VS_CONTROL)] if vs else name
    if not vs and stem in readouts:
        return stem, None, False
    for arm in sorted(scenario_names(), key=len, reverse=True):
        if stem.endswith(f"_{arm}") and stem[: -len(arm) - 1] in readouts:
            return stem[: -len(arm) - 1], arm, vs
    return None


def _targets(table: dict, path: Path, sim: Simulation) -> tuple[Target, ...]:
    if not table:
        raise ParameterError(f"{path}: [targets] is empty; give at least one, e.g. "
                             "[targets.tumor_cells_depletion_vs_control_pct] with value and sd")
    out = []
    for name, spec in table.items():
        where = f"{path}: [targets.{name}]"
        parsed = _parse_target(name, sim.arms)
        if parsed is None:
            close = difflib.get_close_matches(name, _candidates(sim.arms), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ParameterError(f"{where}: not an outcome the fit computes{hint}; allowed "
                                 f"forms: {outcome_forms(sim.arms)}")
        readout, arm, vs = parsed
        if arm is not None and arm not in sim.arms:
            raise ParameterError(f"{where}: arm {arm!r} is not simulated; [simulation] arms = "
                                 f"{list(sim.arms)}")
        if vs and "control" not in sim.arms:
            raise ParameterError(f"{where}: a change against control needs 'control' in "
                                 f"[simulation] arms = {list(sim.arms)}")
        if vs and arm == "control":
            raise ParameterError(f"{where}: control against itself is always 0%; name a "
                                 "treated arm")
        if not isinstance(spec, dict):
            raise ParameterError(f"{where} = {spec!r}: expected a table with value, sd, day, "
                                 "source")
        _keys(spec, _TARGET_KEYS, where)
        if "value" not in spec or "sd" not in spec:
            raise ParameterError(f"{where}: needs value and sd")
        value = _number(spec["value"], f"{where} value")
        sd = _number(spec["sd"], f"{where} sd")
        if sd <= 0:
            raise ParameterError(f"{where} sd = {sd:g}: must be > 0 (the target's uncertainty)")
        day = _number(spec.get("day", sim.days), f"{where} day", lo=0)
        if day > sim.days + 1e-9:
            raise ParameterError(f"{where} day = {day:g}: beyond the simulated days "
                                 f"([simulation] days = {sim.days:g}); allowed [0, {sim.days:g}]")
        source = spec.get("source", "")
        if not isinstance(source, str):
            raise ParameterError(f"{where} source = {source!r}: expected a string")
        out.append(Target(name, value, sd, day, source, readout, arm, vs))
    return tuple(out)


def _candidates(arms) -> list[str]:
    names = _readouts()
    return names + [f"{r}_{a}" for r in names for a in arms] + \
        [f"{r}_{a}{VS_CONTROL}" for r in names for a in arms if a != "control"]


def _abc(t: dict, path: Path) -> AbcSettings:
    where = f"{path}: [abc]"
    _keys(t, _ABC_KEYS, where)
    d = AbcSettings()
    distance = t.get("distance", d.distance)
    if distance not in DISTANCES:
        raise ParameterError(f"{where} distance = {distance!r}: allowed: {', '.join(DISTANCES)}")
    p = _number(t.get("p", d.p), f"{where} p", lo=1)
    return AbcSettings(_whole(t.get("population", d.population), f"{where} population", 1),
                       _whole(t.get("generations", d.generations), f"{where} generations", 1),
                       distance, p, _whole(t.get("seed", d.seed), f"{where} seed", 0),
                       _whole(t.get("ppc_draws", d.ppc_draws), f"{where} ppc_draws", 0))


def _check_params(spec: FitSpec, path: Path) -> None:
    """Every arm's parameters, and each prior's bounds through the model's own checks
    (cross-parameter limits included), before any particle runs."""
    for arm in spec.simulation.arms:
        spec.base_params(arm)
        for p in spec.priors:
            for key, v in (("low", p.low), ("high", p.high)):
                try:
                    spec.base_params(arm, {p.name: int(round(v)) if p.integer else v})
                except ParameterError as exc:
                    raise ParameterError(f'{path}: [parameters."{p.name}"] {key} = {v:g} '
                                         f"(arm {arm}): {exc}") from None
