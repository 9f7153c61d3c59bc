"""Paired statistics of arms against a reference arm, from a tidy table of runs.

Replicate ``r`` of every arm uses the same seed, so the tissue and every random draw up to
the treatment start are identical across arms: arms are compared replicate by replicate.
Per arm and readout at a time point: mean, SD and a t-based 95% confidence interval; per
treated arm against the reference: the change of the mean in percent with a paired
bootstrap 95% CI (scipy), the Wilcoxon signed-rank p-value (scipy, two-sided, exact for
small n), the paired effect size d_z = mean(diff) / SD(diff), and the replicates a paired
t-test needs to detect that effect with 80% power at alpha 0.05 (statsmodels), never
fewer than the 6 pairs the exact Wilcoxon test needs to reach p < 0.05 at all.
"""

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from ..readouts import READOUTS, at_time

__all__ = ["describe", "paired_comparison", "replicates_for_power", "summarise"]

ALPHA = 0.05
POWER = 0.8
N_BOOT = 10_000
#: with fewer pairs the exact two-sided Wilcoxon p-value cannot fall below 0.05 (2 / 2^5)
MIN_WILCOXON_PAIRS = 6


def describe(values) -> dict[str, float]:
    """n, mean, SD and t-based 95% CI of the mean."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    sd = float(x.std(ddof=1)) if n > 1 else math.nan
    if n > 1:
        half = stats.t.ppf(1 - ALPHA / 2, n - 1) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    else:
        lo = hi = math.nan
    return {"n": n, "mean": mean, "sd": sd, "ci95_low": lo, "ci95_high": hi}


def _pct_change(reference, treated, axis=-1):
    ref = np.mean(reference, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * (np.mean(treated, axis=axis) / ref - 1.0)


def paired_comparison(reference, treated, *, seed: int = 0) -> dict[str, float]:
    """Treated against reference, paired by position (replicate r with replicate r).

    Returns change_pct (of the means) with its paired bootstrap 95% CI (percentile,
    10,000 resamples, seeded), p_wilcoxon, effect_size_dz and n_for_80pct_power.
    Identical pairs (all differences zero) give a change of 0, p = 1 and no effect.
    """
    ref = np.asarray(reference, dtype=float)
    trt = np.asarray(treated, dtype=float)
    if ref.shape != trt.shape:
        raise ValueError(f"paired samples differ in length: {ref.shape} vs {trt.shape}")
    n = len(ref)
    diff = trt - ref
    out = {"change_pct": float(_pct_change(ref, trt)), "change_ci95_low": math.nan,
           "change_ci95_high": math.nan, "p_wilcoxon": math.nan, "effect_size_dz": math.nan,
           "n_for_80pct_power": math.nan}
    if n < 2:
        return out
    if not np.any(diff):  # identical pairs (e.g. before treatment): no change, even at 0/0
        return {**out, "change_pct": 0.0, "change_ci95_low": 0.0, "change_ci95_high": 0.0,
                "p_wilcoxon": 1.0, "effect_size_dz": 0.0}
    if ref.mean() != 0:
        boot = stats.bootstrap((ref, trt), _pct_change, paired=True, vectorized=True,
                               n_resamples=N_BOOT, confidence_level=1 - ALPHA,
                               method="percentile", rng=np.random.default_rng(seed))
        out["change_ci95_low"] = float(boot.confidence_interval.low)
        out["change_ci95_high"] = float(boot.confidence_interval.high)
    out["p_wilcoxon"] = float(stats.wilcoxon(trt, ref, alternative="two-sided").pvalue)
    sd = diff.std(ddof=1)
    if sd > 0:
        dz = float(diff.mean() / sd)
        out["effect_size_dz"] = dz
        out["n_for_80pct_power"] = replicates_for_power(dz)
    else:  # every pair moved by the same amount: a deterministic shift
        out["effect_size_dz"] = math.copysign(math.inf, diff.mean())
        out["n_for_80pct_power"] = float(MIN_WILCOXON_PAIRS)
    return out


def replicates_for_power(dz: float, max_n: int = 10_000) -> float:
    """Pairs needed to detect a paired effect d_z with 80% power at two-sided alpha 0.05.

    The power is that of a paired t-test (statsmodels), scanned over n = 2..max_n (its
    root finder, and the non-central t it evaluates, fail for the very large effects a
    simulation can show: those n are skipped). The answer is at least
    ``MIN_WILCOXON_PAIRS``, below which the exact Wilcoxon test cannot reach p < 0.05.
    NaN when no n up to ``max_n`` suffices or there is no effect.
    """
    from statsmodels.stats.power import TTestPower

    if dz == 0 or np.isnan(dz):
        return math.nan
    if np.isinf(dz):
        return float(MIN_WILCOXON_PAIRS)
    n = np.arange(2, max_n + 1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        power = TTestPower().power(effect_size=abs(dz), nobs=n, alpha=ALPHA,
                                   alternative="two-sided")
    enough = np.flatnonzero(np.isfinite(power) & (power >= POWER))
    return float(max(n[enough[0]], MIN_WILCOXON_PAIRS)) if enough.size else math.nan


def summarise(
    runs: pd.DataFrame,
    times: dict[str, float],
    *,
    reference: str = "control",
    readouts: dict[str, tuple[str, str]] | None = None,
    arms: list[str] | None = None,
) -> pd.DataFrame:
    """Summary rows (time point, arm, readout) at each named time in ``times`` (hours).

    ``runs`` is tidy: columns ``arm``, ``replicate``, ``time_h`` and the readouts. Arms are
    paired with the reference arm on ``replicate``; replicates missing from either arm
    (failed runs) are left out of that comparison.
    """
    readouts = READOUTS if readouts is None else readouts
    arms = list(dict.fromkeys(runs["arm"])) if arms is None else arms
    rows = []
    for label, t in times.items():
        snap = at_time(runs, t)
        wide = {arm: snap[snap["arm"] == arm].set_index("replicate") for arm in arms}
        for arm in arms:
            for col, (name, unit) in readouts.items():
                row = {"time_point": label, "time_h": t, "arm": arm, "readout": col,
                       "label": name, "unit": unit, **describe(wide[arm][col])}
                if arm != reference and reference in wide:
                    common = wide[arm].index.intersection(wide[reference].index)
                    row["pairs"] = len(common)
                    row.update(paired_comparison(wide[reference].loc[common, col],
                                                 wide[arm].loc[common, col]))
                rows.append(row)
    return pd.DataFrame(rows)
