"""Readouts of a model state: named, picklable reporter functions for Mesa's DataCollector.

Each reporter takes the model and returns a number; the experiment readouts mirror the
study's measurements: Ki67-like proliferation index, CD31-like vessel density,
PIC-seq-like neutrophil-tumor pairs. :data:`READOUTS` labels the ones experiments
summarise, and :func:`at_time` reads a table of recorded runs at one time point.
"""

from functools import partial

import numpy as np
import pandas as pd

from .cells import endothelial, macrophage, neutrophil, tumor
from .cells.lattice import box_sum, count_around
from .config.field_registry import FIELD_NAMES

__all__ = ["READOUTS", "REPORTERS", "at_time", "tumor_region"]

#: the tumor region for densities: voxels within this many voxels of a tumor cell (100 um)
REGION_MARGIN_VOX = 5


def _viable(m) -> np.ndarray:
    return tumor.viable(m.tumor)


def tumor_region(m) -> np.ndarray:
    """Voxels within REGION_MARGIN_VOX of any tumor cell (viable or necrotic)."""
    return box_sum(m.tumor.at >= 0, REGION_MARGIN_VOX) > 0


def time_h(m) -> float:
    return m.time_h


def tumor_cells(m) -> int:
    """Viable tumor cells (normoxic + hypoxic; not necrotic or apoptotic)."""
    return int(_viable(m).sum())


def necrotic_cells(m) -> int:
    return int((m.tumor["state"] == tumor.NECROTIC).sum())


def proliferation_index(m) -> float:
    """Ki67-like: fraction of viable tumor cells in cycle (Ki67-positive, not quiescent)."""
    viable = _viable(m)
    if not viable.any():
        return 0.0
    return float(tumor.in_cycle(m.tumor).sum() / viable.sum())


def apoptotic_cells(m) -> int:
    """Tumor cells in apoptosis now (killed by neutrophils or by the base rate)."""
    return int((m.tumor["state"] == tumor.APOPTOTIC).sum())


def tumor_cells_killed(m) -> int:
    """Cumulative count of tumor cells neutrophils have killed since t=0."""
    return m.killed


def hypoxic_fraction(m) -> float:
    viable = _viable(m)
    if not viable.any():
        return 0.0
    return float((m.tumor["state"] == tumor.HYPOXIC).sum() / viable.sum())


def invasive_cells(m) -> int:
    return int(tumor.invasive(m).sum())


def neutrophils(m) -> int:
    return m.neutrophils.n


def neutrophils_recruited(m) -> int:
    """Cumulative count of neutrophils that extravasated since t=0."""
    return m.recruited


def neutrophils_in_tumor(m) -> int:
    nb = m.neutrophils
    return int(tumor_region(m)[nb["x"], nb["y"]].sum())


def neutrophils_in_contact(m) -> int:
    """Neutrophils with a viable tumor cell in their 3x3 neighbourhood."""
    nb = m.neutrophils
    contact = count_around(neutrophil.viable_tumor_map(m), nb["x"], nb["y"])
    return int((contact > 0).sum())


def neutrophil_tumor_pairs(m) -> int:
    """PIC-seq analogue: neutrophils bound to a tumor cell."""
    return int((m.neutrophils["state"] == neutrophil.BOUND).sum())


def educated_neutrophils(m) -> int:
    """Neutrophils the tumor has educated (activated or bound: the pro-tumor niche state)."""
    return int((m.neutrophils["state"] != neutrophil.NAIVE).sum())


def bound_neutrophil_fraction(m) -> float:
    """Neutrophils bound to a tumor cell, as a fraction of all neutrophils (0 without any)."""
    n = m.neutrophils.n
    return neutrophil_tumor_pairs(m) / n if n else 0.0


def _viable_cells(m) -> int:
    """Every viable cell: viable tumor cells, neutrophils, macrophages, endothelial cells."""
    return tumor_cells(m) + m.neutrophils.n + m.macrophages.n + m.endothelial.n


def neutrophil_fraction(m) -> float:
    """Neutrophils as a fraction of all viable cells (scRNA-seq-like composition)."""
    total = _viable_cells(m)
    return m.neutrophils.n / total if total else 0.0


def endothelial_fraction(m) -> float:
    """Endothelial cells as a fraction of all viable cells."""
    total = _viable_cells(m)
    return m.endothelial.n / total if total else 0.0


def neutrophil_share_of_microenvironment(m) -> float:
    """Neutrophils / (neutrophils + macrophages + endothelial cells): the non-tumor cells
    the model holds (0 without any)."""
    micro = m.neutrophils.n + m.macrophages.n + m.endothelial.n
    return m.neutrophils.n / micro if micro else 0.0


def macrophages(m) -> int:
    return m.macrophages.n


def macrophages_recruited(m) -> int:
    """Cumulative count of macrophages that entered from the blood since t=0 (0 while
    macrophage recruitment is off)."""
    return m.macrophages_recruited


def activated_macrophages(m) -> int:
    return int((m.macrophages["state"] == macrophage.ACTIVATED).sum())


def endothelial_cells(m) -> int:
    return m.endothelial.n


def tip_cells(m) -> int:
    return int((m.endothelial["state"] == endothelial.TIP).sum())


def perfused_vessel_fraction(m) -> float:
    """Perfused endothelial cells / all endothelial cells (1 with ``endothelial.perfusion``
    "immediate"; 0 without vessels)."""
    n = m.endothelial.n
    return float(endothelial.perfused(m).sum() / n) if n else 0.0


def vessel_density_per_mm2(m) -> float:
    """CD31-like: vessel voxels (20 um segments) per mm^2 of the tumor region."""
    region = tumor_region(m)
    area = region.sum() * m.scales.voxel_area_mm2
    if area == 0:
        return 0.0
    e = m.endothelial
    return float(region[e["x"], e["y"]].sum() / area)


def field_mean(m, name: str) -> float:
    """Mean of a field over the grid (its unit: :mod:`sim.config.field_registry`)."""
    return float(m.fields[name].mean())


REPORTERS = {
    f.__name__: f
    for f in (
        time_h, tumor_cells, proliferation_index, hypoxic_fraction, necrotic_cells,
        apoptotic_cells, tumor_cells_killed,
        invasive_cells, neutrophils, neutrophils_recruited, neutrophils_in_tumor, neutrophils_in_contact,
        neutrophil_tumor_pairs, bound_neutrophil_fraction, educated_neutrophils, macrophages,
        macrophages_recruited, activated_macrophages, endothelial_cells, tip_cells,
        perfused_vessel_fraction, vessel_density_per_mm2,
        neutrophil_fraction, endothelial_fraction, neutrophil_share_of_microenvironment,
    )
}
REPORTERS.update({f"mean_{name}": partial(field_mean, name=name) for name in FIELD_NAMES})

#: the readouts experiments summarise by default: column -> (label, unit)
READOUTS = {
    "tumor_cells": ("viable tumor cells", "cells"),
    "proliferation_index": ("proliferation index (Ki67-like)", "fraction"),
    "vessel_density_per_mm2": ("vessel density (CD31-like)", "1/mm^2"),
    "neutrophils_in_tumor": ("neutrophils in the tumor", "cells"),
    "neutrophil_tumor_pairs": ("neutrophil-tumor pairs (PIC-seq-like)", "pairs"),
    "invasive_cells": ("invasive tumor cells", "cells"),
    "hypoxic_fraction": ("hypoxic fraction of viable tumor cells", "fraction"),
}


def at_time(runs: pd.DataFrame, time_h: float, by=("arm", "replicate")) -> pd.DataFrame:
    """The row of every run at the last recorded time <= ``time_h``."""
    rows = runs[runs["time_h"] <= time_h + 1e-9]
    idx = rows.groupby(list(by), sort=True)["time_h"].idxmax()
    return rows.loc[idx.values].reset_index(drop=True)
