"""The mapping file of ``neutrosim calibrate``: how a dataset's labels name the model's
cell types and stages, and which metadata columns hold them.

::

    cell_type_key = "cell_type"      # metadata column of cell types
    stage_key = "stage"              # metadata column of disease stage
    sample_key = "mouse"             # metadata column of the biological replicate (optional)
    doublet_key = "pic_pair"         # metadata column naming a PIC-seq doublet's partner type (optional)
    doublet_enrichment = 1.0         # how many times more often doublets were kept than singlets (optional)
    reference_stage = "early"        # the model stage the literature base rates describe
    [cell_types]                     # dataset label -> tumor | neutrophil | macrophage | endothelial | other
    "Epithelial tumor" = "tumor"
    [stages]                         # dataset label -> early | advanced (unlisted labels are ignored)
    "late carcinoma" = "advanced"

Every cell-type label in the data must be mapped (to ``other`` if the model has no such
cell); stage labels not listed are left out (healthy gland, development stages).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config.params import read_toml
from .counts import CalibrationError

__all__ = ["MODEL_TYPES", "MODEL_STAGES", "Mapping", "load_mapping", "label_cells"]

#: the model's cell types, and ``other`` for every cell the model does not have
MODEL_TYPES = ("tumor", "neutrophil", "macrophage", "endothelial", "other")
#: the model's stages (``initial.stage``)
MODEL_STAGES = ("early", "advanced")
_KEYS = {"cell_type_key", "stage_key", "sample_key", "doublet_key", "doublet_enrichment",
         "reference_stage", "cell_types", "stages"}
_REQUIRED = ("cell_type_key", "stage_key", "reference_stage", "cell_types", "stages")


@dataclass(frozen=True)
class Mapping:
    """A validated mapping file (see the module docstring)."""

    path: str
    cell_type_key: str
    stage_key: str
    reference_stage: str
    cell_types: dict[str, str]
    stages: dict[str, str]
    sample_key: str | None = None
    doublet_key: str | None = None
    doublet_enrichment: float = 1.0

    def as_dict(self) -> dict:
        """The mapping as written to provenance.json."""
        return {k: getattr(self, k) for k in ("cell_type_key", "stage_key", "sample_key",
                                               "doublet_key", "doublet_enrichment",
                                               "reference_stage", "cell_types", "stages")}


def _text(path: str, raw: dict, key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise CalibrationError(f"{path}: {key} = {value!r}: expected a non-empty string")
    return value


def _table(path: str, raw: dict, key: str, allowed: tuple[str, ...]) -> dict[str, str]:
    table = raw[key]
    if not isinstance(table, dict) or not table:
        raise CalibrationError(f"{path}: [{key}] must be a table of \"dataset label\" = "
                               f"model name ({' | '.join(allowed)})")
    for label, name in table.items():
        if name not in allowed:
            raise CalibrationError(f"{path}: [{key}] \"{label}\" = {name!r}: allowed "
                                   f"{', '.join(allowed)}")
    return dict(table)


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; one :class:`CalibrationError` naming the file, key
    and value for anything wrong."""
    path = str(path)
    try:
        raw = read_toml(Path(path))
    except CalibrationError:
        raise
    except ValueError as exc:  # ParameterError of the TOML reader: re-raised as ours
        raise CalibrationError(str(exc)) from None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise CalibrationError(f"{path}: unknown key {unknown[0]!r}; allowed: "
                               f"{', '.join(sorted(_KEYS))}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise CalibrationError(f"{path}: missing key {missing[0]!r} (required: "
                               f"{', '.join(_REQUIRED)})")
    stages = _table(path, raw, "stages", MODEL_STAGES)
    reference = _text(path, raw, "reference_stage")
    if reference not in MODEL_STAGES:
        raise CalibrationError(f"{path}: reference_stage = {reference!r}: allowed "
                               f"{', '.join(MODEL_STAGES)}")
    if reference not in stages.values():
        raise CalibrationError(f"{path}: reference_stage = {reference!r}: no label in "
                               f"[stages] maps to it (fold changes are taken against it)")
    enrichment = raw.get("doublet_enrichment", 1.0)
    if (isinstance(enrichment, bool) or not isinstance(enrichment, (int, float))
            or not math.isfinite(enrichment) or enrichment <= 0):
        raise CalibrationError(f"{path}: doublet_enrichment = {enrichment!r}: expected a "
                               "number > 0 (1 = doublets kept as often as singlets)")
    optional = {k: _text(path, raw, k) for k in ("sample_key", "doublet_key") if k in raw}
    return Mapping(path=path, cell_type_key=_text(path, raw, "cell_type_key"),
                   stage_key=_text(path, raw, "stage_key"), reference_stage=reference,
                   cell_types=_table(path, raw, "cell_types", MODEL_TYPES), stages=stages,
                   doublet_enrichment=float(enrichment), **optional)


def label_cells(mapping: Mapping, obs: pd.DataFrame, data: str) -> pd.DataFrame:
    """Per cell of ``obs`` (the dataset ``data``'s metadata): ``type``, ``stage`` and
    ``sample`` in the model's names, and ``partner`` (a doublet's partner type, "" for a
    singlet). Cells of unlisted stages are dropped. Raises :class:`CalibrationError` for
    a key that is not a column, a cell-type label that is not mapped, or no cell in a
    listed stage."""
    keys = [("cell_type_key", mapping.cell_type_key), ("stage_key", mapping.stage_key)]
    keys += [(k, getattr(mapping, k)) for k in ("sample_key", "doublet_key")
             if getattr(mapping, k) is not None]
    for key, column in keys:
        if column not in obs.columns:
            shown = ", ".join(map(repr, list(obs.columns)[:12]))
            raise CalibrationError(f"{mapping.path}: {key} = {column!r} is not a column of "
                                   f"{data}'s cell metadata (columns: {shown})")
    stage = obs[mapping.stage_key].astype(str).map(mapping.stages)
    kept = obs[stage.notna()]
    if kept.empty:
        found = sorted(obs[mapping.stage_key].astype(str).unique())[:8]
        raise CalibrationError(f"{mapping.path}: [stages]: no cell of {data} has a listed "
                               f"stage label (found: {', '.join(map(repr, found))})")
    labels = kept[mapping.cell_type_key].astype(str)
    partner_labels = (kept[mapping.doublet_key].fillna("").astype(str)
                      if mapping.doublet_key else pd.Series("", index=kept.index))
    used = set(labels) | (set(partner_labels) - {"", "nan", "None"})
    unmapped = sorted(used - set(mapping.cell_types))
    if unmapped:
        raise CalibrationError(f"{mapping.path}: [cell_types]: label {unmapped[0]!r} of "
                               f"{data} is not mapped ({len(unmapped)} unmapped: "
                               f"{', '.join(map(repr, unmapped[:6]))}); map each to one of "
                               f"{', '.join(MODEL_TYPES)}")
    partner = partner_labels.map(lambda s: mapping.cell_types.get(s, ""))
    sample = (kept[mapping.sample_key].astype(str) if mapping.sample_key
              else stage[stage.notna()].astype(str))
    out = pd.DataFrame({"type": labels.map(mapping.cell_types), "stage": stage[stage.notna()],
                        "sample": sample, "partner": partner}, index=kept.index)
    return out
