"""Interaction rules as data: signal -> behaviour Hill responses in PhysiCell's grammar.

A row of ``params/rules.csv`` reads "cell type, signal, increases/decreases, behaviour,
saturation value, half-max, Hill power, source". For one behaviour of one cell type the
rules combine as in PhysiCell (multivariate Hill response):

    U = x_up / (1 + x_up),   x_up = sum_i (s_i / h_i) ** n_i    over "increases" rules
    D = x_dn / (1 + x_dn),   x_dn likewise over "decreases" rules
    b = b0 + (b_max - b0) * U
    b = b  + (b_min - b)  * D

with b0 the base value from ``params/default.toml``, b_max the saturation shared by the
increasing rules and b_min the one shared by the decreasing rules. Every rule of a cell
type is evaluated for all its agents at once (numpy arrays).
"""

import csv
import dataclasses
import difflib
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from numba import njit

from .errors import ParameterError, reading
from .field_registry import FIELDS

__all__ = ["Rule", "RuleSet", "SIGNALS", "BEHAVIOURS", "RULE_KEY", "load_rules", "hill"]

#: the first part of the override keys of rule saturations (``rules.CELL.BEHAVIOUR.DIRECTION``)
RULE_KEY = "rules"

#: every cell type senses every field, in the field's unit
FIELD_SIGNALS = {f.name: f.unit for f in FIELDS}

#: signals each cell type can sense: name -> unit
SIGNALS: dict[str, dict[str, str]] = {
    "tumor": {
        **FIELD_SIGNALS,
        "bound_neutrophils": "count (neutrophils bound to this cell)",
        "neutrophil_contact": "count (neutrophils in the 3x3 neighbourhood)",
        "hypoxic": "state (1 hypoxic, 0 not)",
    },
    "neutrophil": {
        **FIELD_SIGNALS,
        "tumor_contact": "count (viable tumor cells in the 3x3 neighbourhood)",
        "activated": "state (1 activated or bound)",
        "bound": "state (1 bound to a tumor cell)",
    },
    "macrophage": {
        **FIELD_SIGNALS,
        "tumor_contact": "count (viable tumor cells in the 3x3 neighbourhood)",
        "activated": "state (1 activated)",
    },
    "endothelial": {
        **FIELD_SIGNALS,
        "neutrophil_contact": "count (neutrophils in the 3x3 neighbourhood)",
    },
}

#: behaviours each cell type uses: name -> (unit, base parameter "section.key", upper bound)
BEHAVIOURS: dict[str, dict[str, tuple[str, str, float]]] = {
    "tumor": {
        "division": ("1/min", "tumor.cycle_rate_per_min", 1.0),
        "necrosis": ("1/min", "tumor.necrosis_rate_per_min", 1.0),
        "migration_speed": ("um/min", "tumor.migration_speed_um_per_min", 100.0),
        "secrete_proangiogenic": ("ng/mL/min", "tumor.secrete_proangiogenic", 1e4),
        "secrete_chemoattractant": ("ng/mL/min", "tumor.secrete_chemoattractant", 1e4),
        "secrete_tumor_signal": ("a.u./min", "tumor.secrete_tumor_signal", 1e4),
        "apoptosis": ("1/min", "tumor.apoptosis_rate_per_min", 1.0),
    },
    "neutrophil": {
        "extravasation": ("1/min per vessel voxel", "neutrophil.extravasation_per_min", 1.0),
        "migration_speed": ("um/min", "neutrophil.migration_speed_um_per_min", 100.0),
        "chemotaxis_bias": ("probability", "neutrophil.chemotaxis_bias", 1.0),
        "binding": ("1/min", "neutrophil.binding_per_min", 10.0),
        "unbinding": ("1/min", "neutrophil.unbinding_per_min", 10.0),
        "activation": ("1/min", "neutrophil.activation_per_min", 10.0),
        "secrete_proangiogenic": ("ng/mL/min", "neutrophil.secrete_proangiogenic", 1e4),
        "secrete_proinvasive": ("ng/mL/min", "neutrophil.secrete_proinvasive", 1e4),
        "kill": ("1/min", "neutrophil.kill_per_min", 10.0),
    },
    "macrophage": {
        "activation": ("1/min", "macrophage.activation_per_min", 10.0),
        "deactivation": ("1/min", "macrophage.deactivation_per_min", 10.0),
        "migration_speed": ("um/min", "macrophage.migration_speed_um_per_min", 100.0),
        "chemotaxis_bias": ("probability", "macrophage.chemotaxis_bias", 1.0),
        "secrete_chemoattractant": ("ng/mL/min", "macrophage.secrete_chemoattractant", 1e4),
        "death": ("1/min", "macrophage.death_rate_per_min", 1.0),
        "extravasation": ("1/min per vessel voxel", "macrophage.extravasation_per_min", 1.0),
    },
    "endothelial": {
        "sprouting": ("1/min", "endothelial.sprouting_per_min", 1.0),
        "tip_speed": ("um/min", "endothelial.tip_speed_um_per_min", 100.0),
    },
}

COLUMNS = [
    "cell_type", "signal", "direction", "behaviour",
    "saturation", "half_max", "hill_power", "source",
]


class RuleError(ParameterError):
    """A malformed rules table (the message names file, row and column)."""


@dataclass(frozen=True)
class Rule:
    cell_type: str
    signal: str
    direction: str  # "increases" | "decreases"
    behaviour: str
    saturation: float
    half_max: float
    hill_power: float
    source: str


def hill(signal: np.ndarray, half_max: float, power: float) -> np.ndarray:
    """Single-signal Hill response s^n / (h^n + s^n) in [0, 1) (0 for s <= 0)."""
    x = (np.maximum(signal, 0.0) / half_max) ** power
    return x / (1.0 + x)


_JIT = dict(cache=True, error_model="numpy")  # numpy error model: loops vectorise


@njit(**_JIT)
def _hill_x(s, half_max, power):
    """(max(s, 0) / h) ** n for one value: repeated squaring for an integer n (for 1, 2, 4
    and 8 the same products as :func:`_add_hill_term`'s straight-line loops), ``**``
    otherwise."""
    v = max(s, 0.0) / half_max
    if power != int(power):
        return v ** power
    r, e = 1.0, int(power)
    while e > 0:
        if e & 1:
            r *= v
        v *= v
        e >>= 1
    return r


@njit(**_JIT)
def _add_hill_term(x, signal, half_max, power):
    """x += (max(s, 0) / h) ** n element-wise.

    The Hill powers of the rules table (1, 2, 4, 8) get straight-line loops that vectorise;
    other powers go through :func:`_hill_x`.
    """
    if power == 1.0:
        for i in range(x.size):
            x[i] += max(signal[i], 0.0) / half_max
    elif power == 2.0:
        for i in range(x.size):
            v = max(signal[i], 0.0) / half_max
            x[i] += v * v
    elif power == 4.0:
        for i in range(x.size):
            v = max(signal[i], 0.0) / half_max
            v *= v
            x[i] += v * v
    elif power == 8.0:
        for i in range(x.size):
            v = max(signal[i], 0.0) / half_max
            v *= v
            v *= v
            x[i] += v * v
    else:
        for i in range(x.size):
            x[i] += _hill_x(signal[i], half_max, power)


@njit(**_JIT)
def _saturate_one(out, signal, half_max, power, saturation):
    """A group of one rule: out += (saturation - out) * x / (1 + x), x the rule's Hill term
    (the same values as :func:`_add_hill_term` into zeros, then :func:`_saturate`)."""
    for i in range(out.size):
        x = _hill_x(signal[i], half_max, power)
        out[i] += (saturation - out[i]) * (x / (1.0 + x))


@njit(**_JIT)
def _saturate(out, x, saturation):
    """out += (saturation - out) * x / (1 + x): one direction of the PhysiCell combination."""
    for i in range(out.size):
        out[i] += (saturation - out[i]) * (x[i] / (1.0 + x[i]))


@dataclass(frozen=True)
class _Group:
    """The rules of one direction for one behaviour: shared saturation, (signal, h, n) terms."""

    saturation: float
    terms: tuple[tuple[str, float, float], ...]


@dataclass(frozen=True)
class RuleSet:
    """A validated rules table; evaluates behaviours for whole populations."""

    rules: tuple[Rule, ...]
    path: str = ""

    def for_behaviour(self, cell_type: str, behaviour: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.cell_type == cell_type and r.behaviour == behaviour)

    @cached_property
    def _groups(self) -> dict[tuple[str, str], tuple[_Group, ...]]:
        """(cell type, behaviour) -> its increasing then decreasing group, built once."""
        out: dict[tuple[str, str], tuple[_Group, ...]] = {}
        for key in {(r.cell_type, r.behaviour) for r in self.rules}:
            rules = self.for_behaviour(*key)
            out[key] = tuple(
                _Group(grp[0].saturation, tuple((r.signal, r.half_max, r.hill_power) for r in grp))
                for grp in ([r for r in rules if r.direction == d]
                            for d in ("increases", "decreases"))
                if grp)
        return out

    def max_value(self, cell_type: str, behaviour: str, base: float) -> float:
        """Largest value the behaviour can take (base or an increasing saturation)."""
        ups = [r.saturation for r in self.for_behaviour(cell_type, behaviour)
               if r.direction == "increases"]
        return max([base, *ups])

    def evaluate(
        self,
        cell_type: str,
        behaviour: str,
        base: float,
        signals: Mapping[str, np.ndarray],
        n: int,
    ) -> np.ndarray:
        """Behaviour value for ``n`` agents given their signal arrays (PhysiCell combination)."""
        out = np.empty(n)
        out.fill(base)  # (np.full costs a few microseconds more a call)
        for group in self._groups.get((cell_type, behaviour), ()):
            if len(group.terms) == 1:
                (signal, half_max, power), = group.terms
                _saturate_one(out, np.asarray(signals[signal], dtype=float), half_max, power,
                              group.saturation)
                continue
            x = np.zeros(n)
            for signal, half_max, power in group.terms:
                _add_hill_term(x, np.asarray(signals[signal], dtype=float), half_max, power)
            _saturate(out, x, group.saturation)
        return out

    def to_rows(self) -> list[dict]:
        return [r.__dict__.copy() for r in self.rules]

    def saturations(self) -> dict[str, float]:
        """``{"rules.CELL.BEHAVIOUR.DIRECTION": saturation}``: the value each group of rows
        (one cell type, behaviour and direction) moves its behaviour toward; the keys
        ``--set`` and sweeps use to change a row's saturation."""
        return {f"{RULE_KEY}.{r.cell_type}.{r.behaviour}.{r.direction}": r.saturation
                for r in self.rules}

    def with_saturations(self, values: Mapping[str, Any], where: Callable[[str], str]) -> "RuleSet":
        """A copy with the saturations of :meth:`saturations`' keys in ``values`` replaced;
        ``where(key)`` names the file or option that set a key, for the error message."""
        if not values:
            return self
        known = self.saturations()
        new = {}
        for key, value in values.items():
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise RuleError(f"{where(key)}: {key} names no group of rows in "
                                f"{self.path or 'the rules table'}{hint}; allowed: "
                                f"{', '.join(sorted(known))}")
            cell, behaviour = key.split(".")[1:3]
            unit, _, upper = BEHAVIOURS[cell][behaviour]
            try:
                sat = float(value)
            except (TypeError, ValueError):
                raise RuleError(f"{where(key)}: {key} = {value!r} is not a number") from None
            if not 0.0 <= sat <= upper:
                raise RuleError(f"{where(key)}: {key} = {sat} ({unit}); allowed [0, {upper}]")
            new[key] = sat
        rules = tuple(
            dataclasses.replace(r, saturation=new.get(
                f"{RULE_KEY}.{r.cell_type}.{r.behaviour}.{r.direction}", r.saturation))
            for r in self.rules)
        return RuleSet(rules, self.path)


def _number(path: Path, row: int, col: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RuleError(f"{path}: row {row}: {col} = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RuleError(f"{path}: row {row}: {col} = {text!r} must be finite")
    return value


def parse_rule(path: Path, row: int, rec: Mapping[str, str]) -> Rule:
    """One CSV record -> Rule, or a RuleError naming file, row, column and allowed values."""
    cell = rec["cell_type"].strip()
    if cell not in SIGNALS:
        raise RuleError(f"{path}: row {row}: unknown cell_type '{cell}'; allowed: {', '.join(SIGNALS)}")
    signal = rec["signal"].strip()
    if signal not in SIGNALS[cell]:
        raise RuleError(
            f"{path}: row {row}: unknown signal '{signal}' for {cell}; "
            f"allowed: {', '.join(SIGNALS[cell])}"
        )
    direction = rec["direction"].strip()
    if direction not in ("increases", "decreases"):
        raise RuleError(
            f"{path}: row {row}: direction = '{direction}'; allowed: increases, decreases"
        )
    behaviour = rec["behaviour"].strip()
    if behaviour not in BEHAVIOURS[cell]:
        raise RuleError(
            f"{path}: row {row}: unknown behaviour '{behaviour}' for {cell}; "
            f"allowed: {', '.join(BEHAVIOURS[cell])}"
        )
    unit, _, upper = BEHAVIOURS[cell][behaviour]
    sat = _number(path, row, "saturation", rec["saturation"])
    if not 0.0 <= sat <= upper:
        raise RuleError(
            f"{path}: row {row}: saturation = {sat} for {cell} {behaviour} ({unit}); "
            f"allowed [0, {upper}]"
        )
    half = _number(path, row, "half_max", rec["half_max"])
    if half <= 0:
        raise RuleError(f"{path}: row {row}: half_max = {half}; allowed > 0")
    power = _number(path, row, "hill_power", rec["hill_power"])
    if not 0 < power <= 100:
        raise RuleError(f"{path}: row {row}: hill_power = {power}; allowed (0, 100]")
    source = (rec.get("source") or "").strip()
    if not source:
        raise RuleError(f"{path}: row {row}: source is empty; cite it, or write 'assumed'")
    return Rule(cell, signal, direction, behaviour, sat, half, power, source)


def _check_consistency(path: Path, rules: list[Rule]) -> None:
    seen: dict[tuple, int] = {}
    shared: dict[tuple, float] = {}
    for i, r in enumerate(rules, start=2):
        key = (r.cell_type, r.signal, r.direction, r.behaviour)
        if key in seen:
            raise RuleError(f"{path}: row {i} repeats row {seen[key]} ({', '.join(key)})")
        seen[key] = i
        group = (r.cell_type, r.behaviour, r.direction)
        if group in shared and shared[group] != r.saturation:
            raise RuleError(
                f"{path}: row {i}: rules that {r.direction[:-1]} {r.cell_type} {r.behaviour} "
                f"must share one saturation value ({shared[group]} vs {r.saturation})"
            )
        shared.setdefault(group, r.saturation)


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules CSV (header: ``cell_type,signal,...,source``)."""
    path = Path(path)
    with reading(path, "rules file", "a rules CSV file", RuleError):
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or [c.strip() for c in reader.fieldnames] != COLUMNS:
                raise RuleError(
                    f"{path}: header must be {','.join(COLUMNS)}; got {reader.fieldnames}"
                )
            rules = []
            for i, rec in enumerate(reader, start=2):
                if None in rec or any(v is None for v in rec.values()):
                    raise RuleError(f"{path}: row {i}: expected {len(COLUMNS)} columns")
                rules.append(parse_rule(path, i, rec))
    if not rules:
        raise RuleError(f"{path}: holds a header and no rules; without rules there is no "
                        "oxygen-driven necrosis and no effect of any cell on another. To switch "
                        "a rule off, keep its row and set its saturation to the base value of "
                        "its behaviour (see `neutrosim params`)")
    _check_consistency(path, rules)
    return RuleSet(tuple(rules), str(path))
