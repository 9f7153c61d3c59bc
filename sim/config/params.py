"""Typed, frozen, validated model parameters and their TOML sources.

The values, units, meanings and sources live in ``params/default.toml`` (shipped inside
the package); this module holds the schema: the type and allowed range of every key.
Loading merges the defaults, an optional scenario, an optional overlay file and
``key=value`` overrides, in that order, and rejects bad input with one
:class:`ParameterError` naming the file, key, value and allowed range.
"""

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import ParameterError, reading
from .field_registry import BOUNDARIES
from .numbers import whole_number
from .rules import RULE_KEY, Rule, RuleSet, load_rules
from .units import MIN_PER_DAY, MIN_PER_HOUR, Scales

__all__ = [
    "ParameterError",
    "Params",
    "load_params",
    "params_dir",
    "scenario_names",
    "scenario_interventions",
    "scenario_description",
    "describe",
    "read_toml",
]


def _rng(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Any:
    """A dataclass field carrying its allowed closed range [lo, hi] (lo open if asked)."""
    return field(metadata={"lo": lo, "hi": hi, "lo_open": lo_open})


def _choice(*allowed: str) -> Any:
    """A dataclass field (a ``str``) that must be one of ``allowed``."""
    return field(metadata={"choices": allowed})


@dataclass(frozen=True)
class Domain:
    nx: int = _rng(20, 4000)
    ny: int = _rng(20, 4000)
    voxel_um: float = _rng(5.0, 50.0)


@dataclass(frozen=True)
class Time:
    dt_min: float = _rng(0.5, 30.0)
    days: float = _rng(0.0, 365.0, lo_open=True)
    record_every_h: float = _rng(0.1, 24.0 * 30)
    warmup_steps: int = _rng(0, 10_000)
    source_lag_steps: int = _rng(0, 1)


@dataclass(frozen=True)
class Initial:
    stage: str = _choice("advanced", "early")
    tumor_radius_um: float = _rng(0.0, 1e5, lo_open=True)
    tumor_packing: float = _rng(0.0, 1.0)
    host_vessels: int = _rng(0, 200)
    tumor_vessel_density_per_mm2: float = _rng(0.0, 2500.0)
    tumor_vessel_length_um: float = _rng(0.0, 1e5, lo_open=True)
    vessel_wiggle: float = _rng(0.0, 1.0)
    macrophages_per_mm2: float = _rng(0.0, 2500.0)
    macrophages_per_mm2_tumor: float = _rng(0.0, 2500.0)
    neutrophils_per_mm2_tumor: float = _rng(0.0, 2500.0)


@dataclass(frozen=True)
class FieldParams:
    diffusion_um2_per_min: float = _rng(0.0, 1e7)
    decay_per_min: float = _rng(0.0, 100.0)


@dataclass(frozen=True)
class TransientField(FieldParams):
    max_substep_min: float = _rng(0.0, 1e3, lo_open=True)
    boundary: str = _choice(*BOUNDARIES)


@dataclass(frozen=True)
class Oxygen(FieldParams):
    decay_per_min: float = _rng(0.0, 100.0, lo_open=True)  # > 0: the steady solve needs it
    boundary_mmHg: float = _rng(0.0, 760.0)
    blood_mmHg: float = _rng(0.0, 760.0)
    vessel_supply_per_min: float = _rng(0.0, 1e4)
    tumor_uptake_per_min: float = _rng(0.0, 1e4)
    immune_uptake_per_min: float = _rng(0.0, 1e4)


@dataclass(frozen=True)
class Chemoattractant(TransientField):
    neutrophil_uptake_per_min: float = _rng(0.0, 1e4)


@dataclass(frozen=True)
class Proangiogenic(TransientField):
    endothelial_uptake_per_min: float = _rng(0.0, 1e4)


@dataclass(frozen=True)
class Proinvasive(TransientField):
    pass


@dataclass(frozen=True)
class TumorSignal(TransientField):
    pass


@dataclass(frozen=True)
class Tumor:
    cycle_rate_per_min: float = _rng(0.0, 1.0)
    hypoxic_threshold_mmHg: float = _rng(0.0, 760.0)
    proliferation_threshold_mmHg: float = _rng(0.0, 760.0)
    proliferation_saturation_mmHg: float = _rng(0.0, 760.0)
    volume_um3: float = _rng(0.0, 1e5, lo_open=True)
    ki67_positive_h: float = _rng(0.0, 1e3, lo_open=True)
    necrosis_rate_per_min: float = _rng(0.0, 1.0)
    migration_speed_um_per_min: float = _rng(0.0, 100.0)
    secrete_proangiogenic: float = _rng(0.0, 1e4)
    secrete_chemoattractant: float = _rng(0.0, 1e4)
    secrete_tumor_signal: float = _rng(0.0, 1e4)
    push_distance_um: float = _rng(0.0, 200.0)
    invasive_neighbours_max: int = _rng(0, 7)
    apoptosis_rate_per_min: float = _rng(0.0, 1.0)
    apoptosis_duration_h: float = _rng(0.0, 1e3, lo_open=True)


@dataclass(frozen=True)
class Neutrophil:
    circulating_supply: float = _rng(0.0, 100.0)
    extravasation_per_min: float = _rng(0.0, 1.0)
    migration_speed_um_per_min: float = _rng(0.0, 100.0)
    persistence_min: float = _rng(0.0, 1e3)
    chemotaxis_bias: float = _rng(0.0, 1.0)
    binding_per_min: float = _rng(0.0, 10.0)
    unbinding_per_min: float = _rng(0.0, 10.0)
    activation_per_min: float = _rng(0.0, 10.0)
    lifespan_naive_day: float = _rng(0.0, 100.0, lo_open=True)
    lifespan_activated_day: float = _rng(0.0, 100.0, lo_open=True)
    lifespan_shape: float = _rng(0.1, 1e4)
    secrete_proangiogenic: float = _rng(0.0, 1e4)
    secrete_proinvasive: float = _rng(0.0, 1e4)
    kill_per_min: float = _rng(0.0, 10.0)


@dataclass(frozen=True)
class Macrophage:
    activation_per_min: float = _rng(0.0, 10.0)
    deactivation_per_min: float = _rng(0.0, 10.0)
    migration_speed_um_per_min: float = _rng(0.0, 100.0)
    chemotaxis_bias: float = _rng(0.0, 1.0)
    persistence_min: float = _rng(0.0, 1e3)
    secrete_chemoattractant: float = _rng(0.0, 1e4)
    death_rate_per_min: float = _rng(0.0, 1.0)
    extravasation_per_min: float = _rng(0.0, 1.0)


@dataclass(frozen=True)
class Endothelial:
    sprouting_per_min: float = _rng(0.0, 1.0)
    sprout_threshold_ng_ml: float = _rng(0.0, 1e4)
    tip_spacing_um: float = _rng(0.0, 1e4)
    tip_speed_um_per_min: float = _rng(0.0, 100.0)
    tip_gradient_bias: float = _rng(0.0, 1.0)
    perfusion: str = _choice("immediate", "anastomosis")
    regression_after_h: float = _rng(0.0, 1e4)


@dataclass(frozen=True)
class Intervention:
    start_day: float = _rng(0.0, 365.0)
    neutrophil_depletion: float = _rng(0.0, 1.0)
    cxcr2_inhibition: float = _rng(0.0, 1.0)
    macrophage_depletion: float = _rng(0.0, 1.0)
    contact_blockade: float = _rng(0.0, 1.0)


@dataclass(frozen=True)
class Params:
    """All model parameters (physical units), plus the rules table and provenance."""

    domain: Domain
    time: Time
    initial: Initial
    oxygen: Oxygen
    chemoattractant: Chemoattractant
    proangiogenic: Proangiogenic
    proinvasive: Proinvasive
    tumor_signal: TumorSignal
    tumor: Tumor
    neutrophil: Neutrophil
    macrophage: Macrophage
    endothelial: Endothelial
    intervention: Intervention
    rules: RuleSet
    scenario: str = "control"
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Flat sections of plain values (no rules), e.g. for a manifest or a hash."""
        return {
            f.name: dataclasses.asdict(getattr(self, f.name))
            for f in fields(self)
            if f.name not in ("rules", "scenario", "sources")
        }

    def flat(self) -> dict[str, Any]:
        """``{"section.key": value}`` for every parameter."""
        return {f"{s}.{k}": v for s, d in self.to_dict().items() for k, v in d.items()}

    def digest(self) -> str:
        """Short hash of every resolved value, the rules and the scenario (not provenance).

        Two runs with equal digests and seeds are the same simulation; ensembles use it to
        recognise finished runs when they resume.
        """
        blob = json.dumps({"parameters": self.to_dict(), "rules": self.rules.to_rows(),
                           "scenario": self.scenario}, sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, overrides: Mapping[str, Any], origin: str = "override") -> "Params":
        """A new Params with dotted-key overrides applied and validated."""
        stage = overrides.get("initial.stage", overrides.get("initial__stage", self.initial.stage))
        if stage != self.initial.stage:
            raise ParameterError(f"{origin}: initial.stage = {stage!r}: a stage is chosen when "
                                 "the parameters are loaded (--stage, a params file, "
                                 "load_params(overrides=...)), not changed afterwards")
        raw = {s: dict(d) for s, d in self.to_dict().items()}
        origins: dict[str, str] = {}
        _merge_flat(raw, overrides, origin, origins)
        return _build(raw, self.rules, self.scenario, self.sources + (origin,), origins)


_SECTIONS: dict[str, type] = {
    f.name: f.type
    for f in fields(Params)
    if f.name not in ("rules", "scenario", "sources")
}


def params_dir() -> Path:
    """Folder holding default.toml, rules.csv and scenarios/ (installed or checkout)."""
    packaged = resources.files("sim") / "_defaults"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "params"
    if checkout.is_dir():
        return checkout
    raise ParameterError(f"default parameters not found in {packaged} or {checkout}")


def scenario_names() -> list[str]:
    """Names of the scenarios shipped in params/scenarios/."""
    return sorted(p.stem for p in (params_dir() / "scenarios").glob("*.toml"))


def scenario_file(name: str) -> Path:
    """The file of the shipped scenario ``name``. Only the names of
    :func:`scenario_names` are scenarios: a path is refused (a user's own values go in an
    overlay file, ``--params``, applied on top of a scenario)."""
    names = scenario_names()
    if name not in names:
        hint = (" (a scenario is a name, not a file: give your own values with --params FILE)"
                if any(c in str(name) for c in "/\\.") else "")
        raise ParameterError(f"unknown scenario '{name}'; allowed: {', '.join(names)}{hint}")
    return params_dir() / "scenarios" / f"{name}.toml"


def scenario_interventions(name: str) -> list[str]:
    """The ``intervention.*`` efficiency keys a scenario sets (empty for control)."""
    path = scenario_file(name)
    keys = read_toml(path).get("intervention", {})
    return [f"intervention.{k}" for k in keys if k != "start_day"]


def scenario_description(name: str) -> str:
    """The one-sentence ``description`` at the top of a scenario file."""
    path = scenario_file(name)
    return read_toml(path).get("description", "")


def read_toml(path: Path) -> dict[str, Any]:
    """A user's TOML file as a dict; any reason it cannot be read is one ParameterError."""
    with reading(path):
        try:
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ParameterError(f"{path}: not valid TOML: {exc}") from None


def _unwrap(value: Any) -> Any:
    """Accept both plain values and documented ``{value = ..., unit = ...}`` tables."""
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def allowed_range(dotted: str) -> tuple[float | None, float | None]:
    """The closed range ``(lo, hi)`` declared for a numeric key ``section.key`` (None: no
    bound on that side)."""
    section, _, key = dotted.partition(".")
    meta = _SECTIONS[section].__dataclass_fields__[key].metadata
    return meta["lo"], meta["hi"]


def _allowed_keys(section: str) -> list[str]:
    return [f.name for f in fields(_SECTIONS[section])]


def _merge_tree(raw: dict, tree: Mapping[str, Any], origin: str, origins: dict) -> None:
    for section, entries in tree.items():
        if section == RULE_KEY and isinstance(entries, dict):
            _merge_flat(raw, {f"{RULE_KEY}.{k}": v for k, v in _dotted(entries)}, origin,
                        origins)
            continue
        if section not in _SECTIONS:
            raise ParameterError(
                f"{origin}: unknown section [{section}]; allowed: {', '.join(_SECTIONS)}"
            )
        if not isinstance(entries, dict):
            raise ParameterError(f"{origin}: [{section}] must be a table of key = value")
        for key, value in entries.items():
            _set(raw, section, key, _unwrap(value), origin, origins)


def _dotted(tree: Mapping[str, Any], prefix: str = ""):
    """(dotted key, value) pairs of a nested table: ``[rules]`` may give a rule group's
    saturation as ``"neutrophil.binding.increases" = 0.004`` or as nested tables."""
    for key, value in tree.items():
        if isinstance(value, dict) and "value" not in value:
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _unwrap(value)


def _stage_tables(tree: dict, origin: str) -> dict[str, dict]:
    """Remove and return an overlay's ``[stage.<name>...]`` tables: values that apply
    only when the run's ``initial.stage`` is ``<name>`` (what ``neutrosim calibrate``
    writes, one table per stage it calibrated)."""
    staged = tree.pop(STAGE_TABLE, {})
    allowed = _SECTIONS["initial"].__dataclass_fields__["stage"].metadata["choices"]
    if not isinstance(staged, dict):
        raise ParameterError(f"{origin}: [{STAGE_TABLE}] must hold one table per stage "
                             f"({', '.join(allowed)})")
    for name, sub in staged.items():
        if name not in allowed:
            raise ParameterError(f"{origin}: [{STAGE_TABLE}.{name}]: unknown stage {name!r}; "
                                 f"allowed: {', '.join(allowed)}")
        if not isinstance(sub, dict) or "stage" in sub.get("initial", {}):
            raise ParameterError(f"{origin}: [{STAGE_TABLE}.{name}] must hold tables of "
                                 "key = value, and cannot set initial.stage")
    return staged


def _merge_flat(raw: dict, overrides: Mapping[str, Any], origin: str, origins: dict) -> None:
    for dotted, value in overrides.items():
        section, _, key = dotted.replace("__", ".").partition(".")
        if section == RULE_KEY:  # a rule group's saturation, applied to the rules in _build
            raw.setdefault(RULE_KEY, {})[f"{RULE_KEY}.{key}"] = value
            origins[f"{RULE_KEY}.{key}"] = origin
            continue
        if not key:
            raise ParameterError(f"{origin}: key '{dotted}' must be 'section.key'")
        if section not in _SECTIONS:
            raise ParameterError(
                f"{origin}: unknown section in '{dotted}'; allowed: {', '.join(_SECTIONS)}"
            )
        _set(raw, section, key, value, origin, origins)


def _set(raw: dict, section: str, key: str, value: Any, origin: str, origins: dict) -> None:
    """Store one value and remember which file or option set it (``origins``), so that a
    bad value is blamed on the source it came from, not on the last one applied."""
    if key not in _allowed_keys(section):
        raise ParameterError(
            f"{origin}: unknown key '{section}.{key}'; "
            f"allowed in [{section}]: {', '.join(_allowed_keys(section))}"
        )
    raw.setdefault(section, {})[key] = value
    origins[f"{section}.{key}"] = origin


def _coerce(section: str, f: dataclasses.Field, value: Any, origin: str) -> Any:
    """Check type and range of one value; return it as the declared type."""
    name = f"{section}.{f.name}"
    want = f.type
    if want is str:
        allowed = f.metadata["choices"]
        if value not in allowed:
            raise ParameterError(
                f"{origin}: {name} = {value!r}: allowed {', '.join(map(repr, allowed))}"
            )
        return value
    if want is int:
        try:
            value = whole_number(value)
        except ValueError:
            raise ParameterError(f"{origin}: {name} = {value!r}: expected a whole number") from None
    else:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ParameterError(f"{origin}: {name} = {value!r}: expected a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{origin}: {name} = {value!r}: expected a number, "
                                 f"got {type(value).__name__}")
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ParameterError(f"{origin}: {name} = {value!r}: must be finite")
    lo, hi, lo_open = f.metadata["lo"], f.metadata["hi"], f.metadata["lo_open"]
    bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
    bad_hi = hi is not None and value > hi
    if bad_lo or bad_hi:
        bracket = "(" if lo_open else "["
        raise ParameterError(
            f"{origin}: {name} = {value!r} is out of range; allowed {bracket}{lo}, {hi}]"
        )
    return value


def _build(
    raw: dict, rules: RuleSet, scenario: str, sources: tuple[str, ...], origins: dict
) -> Params:
    fallback = sources[-1] if sources else "parameters"

    rank = {s: i for i, s in enumerate(sources)}

    def where(*keys: str) -> str:
        """The source applied last among those that set ``keys`` (the one to blame)."""
        named = [origins.get(k, fallback) for k in keys]
        return max(named, key=lambda s: rank.get(s, len(sources)))

    sections = {}
    for section, cls in _SECTIONS.items():
        entries = raw.get(section, {})
        missing = [f.name for f in fields(cls) if f.name not in entries]
        if missing:
            raise ParameterError(
                f"{fallback}: [{section}] is missing {', '.join(missing)} (defaults incomplete)"
            )
        sections[section] = cls(**{
            f.name: _coerce(section, f, entries[f.name], where(f"{section}.{f.name}"))
            for f in fields(cls)
        })
    rules = rules.with_saturations(raw.get(RULE_KEY, {}), where)
    params = Params(**sections, rules=rules, scenario=scenario, sources=sources)
    _check_numerics(params, where)
    return params


def _check_numerics(p: Params, where: Callable[..., str]) -> None:
    """Cross-parameter limits of the numerics, checked before anything runs.

    ``where(*keys)`` names the files or options that set the keys a message is about.
    """
    dt, dx = p.time.dt_min, p.domain.voxel_um
    if Scales(dx, dt).steps(p.time.days * MIN_PER_DAY) < 1:
        raise ParameterError(
            f"{where('time.days', 'time.dt_min')}: time.days = {p.time.days} is shorter than "
            f"one model step (time.dt_min = {dt} min)"
        )
    steps_per_record = p.time.record_every_h * MIN_PER_HOUR / dt
    if abs(steps_per_record - round(steps_per_record)) > 1e-9:
        raise ParameterError(
            f"{where('time.record_every_h', 'time.dt_min')}: "
            f"time.record_every_h = {p.time.record_every_h} is not a whole number "
            f"of model steps (time.dt_min = {dt} min)"
        )
    speeds = {  # what moves tumor and tip cells: base values, and the rules' saturations
        "tumor.migration_speed_um_per_min": p.tumor.migration_speed_um_per_min,
        "endothelial.tip_speed_um_per_min": p.endothelial.tip_speed_um_per_min,
    }
    rule_speeds = {
        ("tumor", "migration_speed"): p.rules.max_value("tumor", "migration_speed", 0.0),
        ("endothelial", "tip_speed"): p.rules.max_value("endothelial", "tip_speed", 0.0),
    }
    fastest = max(*speeds.values(), *rule_speeds.values())
    if fastest * dt > dx:
        (cell, behaviour), by_rule = max(rule_speeds.items(), key=lambda kv: kv[1])
        default_rules = Path(p.rules.path) == params_dir() / "rules.csv"
        if (by_rule == fastest and by_rule > max(speeds.values()) and p.rules.path
                and not default_rules):
            raise ParameterError(  # the user's rules file set the speed that is too fast
                f"{p.rules.path}: the {cell} {behaviour} rule saturates at {by_rule} um/min, "
                f"too fast for time.dt_min = {dt}: tumor and tip cells move at most one voxel "
                f"per step ({by_rule} um/min x {dt} min > {dx} um); allowed saturation "
                f"<= {dx / dt:.3g} um/min at this time step"
            )
        raise ParameterError(
            f"{where('time.dt_min', *speeds)}: "
            f"time.dt_min = {dt} is too long: tumor and tip cells move at most one "
            f"voxel per step, but {fastest} um/min x {dt} min > {dx} um; "
            f"allowed dt_min <= {dx / fastest:.3g}"
        )
    lo, hi = p.tumor.proliferation_threshold_mmHg, p.tumor.proliferation_saturation_mmHg
    if hi <= lo:
        keys = ("tumor.proliferation_threshold_mmHg", "tumor.proliferation_saturation_mmHg")
        raise ParameterError(
            f"{where(*keys)}: tumor.proliferation_saturation_mmHg = {hi} must be above "
            f"tumor.proliferation_threshold_mmHg = {lo} (cycle entry scales linearly between them)"
        )
    if p.tumor.volume_um3 > dx ** 3:
        raise ParameterError(
            f"{where('tumor.volume_um3', 'domain.voxel_um')}: tumor.volume_um3 = "
            f"{p.tumor.volume_um3} exceeds the voxel's volume ({dx} um)^3 = {dx ** 3:g} um^3; "
            f"allowed volume_um3 <= {dx ** 3:g}"
        )
    radius_vox = p.initial.tumor_radius_um / dx
    if 2 * radius_vox + 4 > min(p.domain.nx, p.domain.ny):
        raise ParameterError(
            f"{where('domain.nx', 'domain.ny', 'initial.tumor_radius_um')}: "
            f"domain {p.domain.nx}x{p.domain.ny} voxels is too small for "
            f"initial.tumor_radius_um = {p.initial.tumor_radius_um} "
            f"(needs at least {math.ceil(2 * radius_vox + 4)} voxels across)"
        )


def load_params(
    path: str | Path | None = None,
    *,
    scenario: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    rules: str | Path | None = None,
    options: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Params:
    """Defaults <- scenario <- overlay file <- ``{"section.key": value}`` overrides <-
    ``options``, pairs of (label, overrides) such as ``("--grid 60 60", {...})``.

    ``rules`` replaces the default rules table (a CSV in the grammar of params/rules.csv).
    Raises :class:`ParameterError` with file, key, value and allowed range on bad input,
    naming the file or option that set the bad value.
    """
    base = params_dir()
    default_file = base / "default.toml"
    raw: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}
    _merge_tree(raw, read_toml(default_file), str(default_file), origins)
    sources = [str(default_file)]
    name = scenario or "control"
    scen_file = scenario_file(name)
    scen = read_toml(scen_file)
    scen.pop("description", None)
    _merge_tree(raw, scen, str(scen_file), origins)
    sources.append(str(scen_file))
    staged: dict[str, dict] = {}
    if path is not None:
        path = Path(path)
        tree = read_toml(path)
        staged = _stage_tables(tree, str(path))
        _merge_tree(raw, tree, str(path), origins)
        sources.append(str(path))
    if overrides:
        setting = "--set " + " ".join(f"{k}={v}" for k, v in overrides.items())
        _merge_flat(raw, overrides, setting, origins)
        sources.append(setting)
    for label, values in options:
        _merge_flat(raw, values, label, origins)
        sources.append(label)
    chosen = raw.get("initial", {}).get("stage", "advanced")
    if chosen in staged:  # beneath --set and options, above the file's other values
        label = f"{path} [{STAGE_TABLE}.{chosen}]"
        later = set(sources[sources.index(str(path)) + 1:])
        sub: dict = {}
        sub_origins: dict = {}
        _merge_tree(sub, staged[chosen], label, sub_origins)
        for dotted, origin in sub_origins.items():
            if origins.get(dotted) not in later:
                section, _, key = dotted.partition(".")
                stored = dotted if section == RULE_KEY else key  # (see _merge_flat)
                raw.setdefault(section, {})[stored] = sub[section][stored]
                origins[dotted] = origin
        sources.insert(sources.index(str(path)) + 1, label)
    stage = _apply_stage(raw, origins, str(default_file))
    if stage is not None:
        sources.insert(1, stage)
    rules_file = Path(rules) if rules is not None else base / "rules.csv"
    ruleset = load_rules(rules_file)
    return _build(raw, ruleset, name, tuple(sources), origins)


def params_from_record(parameters: Mapping[str, Mapping[str, Any]], rules: Sequence[Mapping[str, Any]],
                       scenario: str, sources: Sequence[str] = (), rules_path: str = "") -> Params:
    """The parameters a record holds (a checkpoint's header): ``parameters`` as
    :meth:`Params.to_dict` gives them, ``rules`` as :meth:`RuleSet.to_rows`, the scenario's
    name, the sources and the rules file; validated as loaded ones are."""
    ruleset = RuleSet(tuple(Rule(**row) for row in rules), rules_path)
    raw = {section: dict(values) for section, values in parameters.items()}
    return _build(raw, ruleset, scenario, tuple(sources), {})


#: the overlay table whose sub-tables apply to one stage only: ``[stage.early.tumor]``
STAGE_TABLE = "stage"


def stage_file(name: str) -> Path:
    """The preset of stage ``name`` (``params/stages/<name>.toml``)."""
    return params_dir() / "stages" / f"{name}.toml"


def _apply_stage(raw: dict, origins: dict, default_origin: str) -> str | None:
    """The preset of the chosen ``initial.stage``, beneath everything the user gave: each
    of its keys that is still at its default takes the preset's value. Returns the
    preset's path (None for a stage that has none)."""
    stage = raw.get("initial", {}).get("stage", "advanced")
    path = stage_file(stage) if isinstance(stage, str) else None
    if path is None or not path.is_file():
        return None  # an unknown stage is refused with the allowed ones when it is checked
    preset = read_toml(path)
    preset.pop("description", None)
    for section, entries in preset.items():
        for key, value in entries.items():
            if origins.get(f"{section}.{key}", default_origin) == default_origin:
                _set(raw, section, key, _unwrap(value), str(path), origins)
    return str(path)


def describe() -> list[dict[str, Any]]:
    """Rows of key, value, unit, meaning, source from default.toml (for docs and checks)."""
    path = params_dir() / "default.toml"
    rows = []
    for section, entries in read_toml(path).items():
        for key, spec in entries.items():
            rows.append({"key": f"{section}.{key}", **spec})
    return rows
