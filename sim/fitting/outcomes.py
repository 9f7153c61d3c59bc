"""The outcomes one particle's runs give, by target name, from their recorded time series.

A particle runs every arm x replicate; its tidy table has columns ``arm``, ``replicate``,
``time_h`` and the readouts. Each target reads every run at the recorded time nearest its
``day`` (ties: the earlier) and computes:

``<readout>``                       mean over replicates of the control arm (of the first
                                    arm when control is not simulated)
``<readout>_<arm>``                 mean over replicates of that arm
``<readout>_<arm>_vs_control_pct``  ``100 (mean(arm) / mean(control) - 1)`` over the
                                    replicates present in both arms: the change of the
                                    means of paired replicates, the number the depletion
                                    experiment's ``summary.csv`` reports as ``change_pct``
                                    (:func:`sim.experiments.stats.paired_comparison`).
                                    0 when both means are 0, +-inf when only control's is.
"""

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..experiments.stats import _pct_change
from .spec import Target

__all__ = ["at_nearest_time", "compute_outcomes"]


def at_nearest_time(runs: pd.DataFrame, time_h: float, by=("arm", "replicate")) -> pd.DataFrame:
    """The row of every run at its recorded time nearest ``time_h`` (ties: the earlier)."""
    dist = (runs["time_h"] - time_h).abs()
    order = runs.assign(_d=dist).sort_values(["_d", "time_h"], kind="stable")
    return (order.groupby(list(by), sort=True).head(1).drop(columns="_d")
            .sort_values(list(by)).reset_index(drop=True))


def compute_outcomes(runs: pd.DataFrame, targets: Iterable[Target],
                     arms: tuple[str, ...]) -> dict[str, float]:
    """``{target name: value}`` of a particle's runs (``arms``: the simulated arms, in order)."""
    out: dict[str, float] = {}
    snaps: dict[float, pd.DataFrame] = {}
    level_arm = "control" if "control" in arms else arms[0]
    for t in targets:
        snap = snaps.get(t.day)
        if snap is None:
            snap = snaps[t.day] = at_nearest_time(runs, t.day * 24.0)
        if not t.vs_control:
            values = snap.loc[snap["arm"] == (t.arm or level_arm), t.readout]
            out[t.name] = float(values.mean()) if len(values) else math.nan
            continue
        ref = snap[snap["arm"] == "control"].set_index("replicate")[t.readout]
        trt = snap[snap["arm"] == t.arm].set_index("replicate")[t.readout]
        common = ref.index.intersection(trt.index)
        out[t.name] = percent_change(ref.loc[common].to_numpy(float),
                                     trt.loc[common].to_numpy(float))
    return out


def percent_change(reference: np.ndarray, treated: np.ndarray) -> float:
    """:func:`sim.experiments.stats` change of the means in percent, finite or +-inf."""
    if len(reference) == 0:
        return math.nan
    ref, trt = float(np.mean(reference)), float(np.mean(treated))
    if ref == 0:
        return 0.0 if trt == 0 else math.copysign(math.inf, trt)
    return float(_pct_change(reference, treated))
