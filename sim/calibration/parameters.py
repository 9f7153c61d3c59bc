"""Derived single-cell values -> model parameters: the overlay ``params.toml`` and the
rules table ``rules.csv`` that ``neutrosim calibrate`` writes. Equations in
docs/calibration.md.

What is set, and from what:

* per stage (the overlay's ``[stage.<name>...]`` tables): the starting composition, as
  densities inside the initial tumor relative to its tumor cells
  (``initial.neutrophils_per_mm2_tumor``, ``initial.macrophages_per_mm2_tumor``,
  ``initial.tumor_vessel_density_per_mm2``); and every parameter an axis's sender
  scales, as its literature base value times the sender's fold change against the
  reference stage;
* for all stages: the rates a programme or the doublets set, each from a steady state of
  the model's own rule (``tumor.cycle_rate_per_min`` from the reference stage's cycling
  fraction; the neutrophils' education and binding saturations from the advanced stage,
  where the study finds them bound to tumor cells).

``rules.csv`` is the full rules table at the advanced stage's values (the default stage);
the overlay's stage tables set the rule saturations of each stage, so ``--params`` alone
is enough for either stage.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..config.params import Params, allowed_range
from ..config.rules import BEHAVIOURS, COLUMNS, RULE_KEY
from ..config.units import MIN_PER_DAY, MIN_PER_HOUR
from .counts import CalibrationError

__all__ = ["Calibrated", "calibrate_params", "write_overlay", "write_rules"]

#: the keys a programme may set, and how (see :func:`_programme_rates`)
PROGRAMME_KEYS = ("tumor.cycle_rate_per_min", "rules.neutrophil.activation.increases")
BINDING_KEY = "rules.neutrophil.binding.increases"
DENSITY_KEYS = {"neutrophil": "initial.neutrophils_per_mm2_tumor",
                "endothelial": "initial.tumor_vessel_density_per_mm2",
                "macrophage": "initial.macrophages_per_mm2_tumor"}


@dataclass
class Calibrated:
    """Calibrated values: ``by_stage[stage][key]`` (stage tables) and ``common[key]`` (all
    stages); ``base[key]`` the value each replaces; ``method[key]`` how it was derived;
    ``source`` the data ("calibrated from <file> (sha256 ...), <cells> cells in <samples>
    samples")."""

    by_stage: dict[str, dict[str, float]]
    common: dict[str, float]
    base: dict[str, float]
    method: dict[str, str]
    notes: list[str]
    source: str = ""

    def source_of(self, key: str) -> str:
        """What a calibrated value's ``source`` says: the data, then how."""
        return f"{self.source}, {self.method[key]}"

    def rows(self) -> list[dict]:
        """One row per (key, stage) for the report and provenance."""
        out = [{"key": k, "stage": "all", "base": self.base[k], "calibrated": v,
                "method": self.method[k]} for k, v in self.common.items()]
        for stage, values in self.by_stage.items():
            out += [{"key": k, "stage": stage, "base": self.base[k], "calibrated": v,
                     "method": self.method[k]} for k, v in values.items()]
        return out


def value_of(params: Params, key: str) -> float:
    """A parameter's value by dotted key (``section.key`` or a rule group's saturation)."""
    if key.startswith(f"{RULE_KEY}."):
        sat = params.rules.saturations()
        if key not in sat:
            raise CalibrationError(f"{key} names no group of rows of the rules table")
        return sat[key]
    section, _, name = key.partition(".")
    try:
        return float(getattr(getattr(params, section), name))
    except AttributeError:
        raise CalibrationError(f"{key} is not a model parameter") from None


def _densities(derived, params: Params, stage: str, notes: list) -> dict[str, float]:
    """Densities (1/mm^2) inside the initial tumor that give its tumor cells the stage's
    composition: type / tumor ratio x tumor cells per mm^2 (packing / voxel area); the
    macrophages beyond the residents; each at most one cell per voxel."""
    comp = derived.composition[stage]
    voxel_mm2 = (params.domain.voxel_um / 1000.0) ** 2
    tumor_per_mm2 = params.initial.tumor_packing / voxel_mm2
    out = {}
    for cell, key in DENSITY_KEYS.items():
        value = tumor_per_mm2 * comp[cell]["mean"] / comp["tumor"]["mean"]
        if cell == "macrophage":
            value = max(value - params.initial.macrophages_per_mm2, 0.0)
        if value > 1.0 / voxel_mm2:
            notes.append(f"{stage}: {key} = {value:.4g} exceeds one cell per voxel; set to "
                         f"{1.0 / voxel_mm2:.4g}")
            value = 1.0 / voxel_mm2
        out[key] = value
    return out


def _programme_rates(derived, params: Params, programmes, notes) -> dict[str, tuple[float, str]]:
    """Rates set from programme fractions (steady states of the model's rules)."""
    out = {}
    for prog in programmes:
        if not prog.sets:
            continue
        if prog.sets not in PROGRAMME_KEYS:
            raise CalibrationError(f"programme {prog.name!r}: sets = {prog.sets!r}; allowed: "
                                   f"{', '.join(PROGRAMME_KEYS)} or \"\" (report only)")
        stage = derived.reference_stage if prog.sets.startswith("tumor.") else "advanced"
        frac = derived.programme_fractions.get(stage, {}).get(prog.name, {}).get("mean", math.nan)
        if not 0.0 < frac < 1.0:
            notes.append(f"{prog.sets} not set: the {prog.name} fraction at the {stage} stage "
                         f"is {frac:.3g} (needs 0 < f < 1)")
            continue
        if prog.sets == "tumor.cycle_rate_per_min":
            t_min = params.tumor.ki67_positive_h * MIN_PER_HOUR
            out[prog.sets] = (frac / (t_min * (1.0 - frac)),
                              f"f / (T (1 - f)), f = {frac:.4g} cycling fraction ({prog.name}) "
                              f"at the {stage} stage, T = tumor.ki67_positive_h")
        else:
            life = params.neutrophil.lifespan_activated_day * MIN_PER_DAY
            out[prog.sets] = (frac / ((1.0 - frac) * life),
                              f"f / ((1 - f) L), f = {frac:.4g} educated fraction ({prog.name}) "
                              "at the advanced stage, L = neutrophil.lifespan_activated_day")
    return out


def calibrate_params(derived, params: Params, axes, programmes, source: str) -> Calibrated:
    """The calibrated values of :mod:`this module <.parameters>` from ``derived`` (a
    :class:`.derive.Derived`) on the base ``params``; ``source`` names the data in methods."""
    notes: list[str] = []
    by_stage: dict[str, dict[str, float]] = {s: {} for s in derived.stages}
    method: dict[str, str] = {}
    for stage in derived.stages:
        by_stage[stage].update(_densities(derived, params, stage, notes))
    for cell, key in DENSITY_KEYS.items():
        method[key] = (f"{cell} / tumor cells of the stage's composition x tumor cells per "
                       "mm^2 (initial.tumor_packing / voxel area)"
                       + (" - initial.macrophages_per_mm2" if cell == "macrophage" else ""))
    for axis in axes:
        for sender, key in axis.senders.items():
            base = value_of(params, key)
            for stage in derived.stages:
                fc = derived.signal_fold_changes[axis.name][sender].get(stage, {}).get(
                    "fold_change", math.nan)
                if not math.isfinite(fc):
                    notes.append(f"{key} not set at the {stage} stage: no {axis.name} "
                                 f"fold change for {sender}")
                    continue
                by_stage[stage][key] = base * fc
            method[key] = (f"base x fold change of the {axis.name} axis from {sender} to "
                           f"{axis.receiver} against the {derived.reference_stage} stage")
    common: dict[str, float] = {}
    for key, (value, how) in _programme_rates(derived, params, programmes, notes).items():
        common[key], method[key] = value, how
    bound = (derived.bound_neutrophil_fraction or {}).get("advanced", {}).get("mean", math.nan)
    if derived.bound_neutrophil_fraction is not None:
        if 0.0 < bound < 1.0:
            k_off = params.neutrophil.unbinding_per_min
            common[BINDING_KEY] = k_off * bound / (1.0 - bound)
            method[BINDING_KEY] = (f"k_off b / (1 - b), b = {bound:.4g} bound fraction "
                                   "(neutrophil-tumor doublets) at the advanced stage, k_off = "
                                   "neutrophil.unbinding_per_min")
        else:
            notes.append(f"{BINDING_KEY} not set: the advanced stage's bound fraction is "
                         f"{bound:.3g} (needs 0 < b < 1)")
    for values in (common, *by_stage.values()):
        for key, value in values.items():
            values[key] = _within_range(key, value, notes)
    keys = set(common) | {k for v in by_stage.values() for k in v}
    base = {k: value_of(params, k) for k in keys}
    method = {k: v for k, v in method.items() if k in keys}
    return Calibrated(by_stage, common, base, method, notes, source)


def _within_range(key: str, value: float, notes: list) -> float:
    """``value`` clipped to the key's allowed range (a note says so)."""
    if key.startswith(f"{RULE_KEY}."):
        cell, behaviour = key.split(".")[1:3]
        lo, hi = 0.0, BEHAVIOURS[cell][behaviour][2]
    else:
        lo, hi = allowed_range(key)
    clipped = min(max(value, lo if lo is not None else value), hi if hi is not None else value)
    if clipped != value:
        notes.append(f"{key} = {value:.4g} is outside its allowed range [{lo}, {hi}]; set to "
                     f"{clipped:.4g}")
    return clipped


def _toml_value(value: float, source: str) -> str:
    return f'{{ value = {value:.6g}, source = "{source}" }}'


def _sections(values: dict[str, float], cal: "Calibrated") -> dict[str, list[str]]:
    """``{section: [toml lines]}`` of dotted keys (rule keys under ``rules``)."""
    out: dict[str, list[str]] = {}
    for key, value in sorted(values.items()):
        section, _, name = key.partition(".")
        name = f'"{name}"' if section == RULE_KEY else name
        out.setdefault(section, []).append(f"{name} = {_toml_value(value, cal.source_of(key))}")
    return out


def write_overlay(cal: Calibrated, path: Path, header: str) -> None:
    """The overlay TOML: ``header`` (comment lines), the common values, then one table per
    stage."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()] + [""]
    for section, entries in _sections(cal.common, cal).items():
        lines += [f"[{section}]", *entries, ""]
    for stage, values in cal.by_stage.items():
        for section, entries in _sections(values, cal).items():
            lines += [f"[stage.{stage}.{section}]", *entries, ""]
    path.write_text("\n".join(lines))


def write_rules(cal: Calibrated, params: Params, path: Path, stage: str) -> None:
    """The rules table ``params`` was loaded from, with the saturation of every calibrated
    group at ``stage``'s value (or the common one) and its source saying how; the other
    rows exactly as they were."""
    values = {**cal.common, **cal.by_stage.get(stage, {})}
    values = {k: v for k, v in values.items() if k.startswith(f"{RULE_KEY}.")}
    params.rules.with_saturations(values, lambda key: "calibration")  # checks the keys
    with open(params.rules.path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        key = f"{RULE_KEY}.{row['cell_type']}.{row['behaviour']}.{row['direction']}".replace(" ", "")
        if key in values:
            row["saturation"] = f"{values[key]:.6g}"
            row["source"] = f"{cal.source_of(key)} (the {stage} stage's value)"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
