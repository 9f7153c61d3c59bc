"""Paired statistics on small synthetic tables whose answers are known in closed form."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from sim.experiments.stats import (
    MIN_WILCOXON_PAIRS,
    describe,
    paired_comparison,
    replicates_for_power,
    summarise,
)
from sim.readouts import at_time

CONTROL = np.array([100.0, 120.0, 90.0, 110.0, 105.0, 95.0, 130.0, 85.0])


def test_describe_mean_sd_and_t_interval():
    d = describe([1.0, 2.0, 3.0, 4.0])
    assert d["n"] == 4 and d["mean"] == 2.5
    assert d["sd"] == pytest.approx(math.sqrt(5 / 3))
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2  # t(0.975, 3) * sd / sqrt(n)
    assert d["ci95_low"] == pytest.approx(2.5 - half)
    assert d["ci95_high"] == pytest.approx(2.5 + half)


def test_exact_halving_gives_minus_50_percent_with_a_degenerate_interval():
    r = paired_comparison(CONTROL, CONTROL * 0.5)
    assert r["change_pct"] == pytest.approx(-50.0)
    # every bootstrap resample of a constant ratio is -50% as well
    assert r["change_ci95_low"] == pytest.approx(-50.0)
    assert r["change_ci95_high"] == pytest.approx(-50.0)
    # all 8 differences negative: the exact two-sided Wilcoxon p is 2 / 2^8
    assert r["p_wilcoxon"] == pytest.approx(2 / 256)
    diff = CONTROL * 0.5 - CONTROL
    assert r["effect_size_dz"] == pytest.approx(diff.mean() / diff.std(ddof=1))


def test_identical_arms_show_no_change_and_p_one():
    r = paired_comparison(CONTROL, CONTROL.copy())
    assert r["change_pct"] == 0.0 and r["p_wilcoxon"] == 1.0 and r["effect_size_dz"] == 0.0
    assert math.isnan(r["n_for_80pct_power"])
    zeros = np.zeros(8)  # e.g. no hypoxic cells yet in either arm: 0/0 is still "no change"
    assert paired_comparison(zeros, zeros)["change_pct"] == 0.0


def test_uniform_shift_is_a_deterministic_effect():
    r = paired_comparison(CONTROL, CONTROL - 10.0)
    assert r["change_pct"] == pytest.approx(100 * (-10.0 / CONTROL.mean()))
    assert r["effect_size_dz"] == -math.inf
    assert r["n_for_80pct_power"] == MIN_WILCOXON_PAIRS


def test_bootstrap_interval_covers_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(3)
    treated = CONTROL * 0.8 + rng.normal(0, 5, CONTROL.size)
    a, b = paired_comparison(CONTROL, treated), paired_comparison(CONTROL, treated)
    assert a == b  # seeded resampling
    assert a["change_ci95_low"] < a["change_pct"] < a["change_ci95_high"]
    assert a["p_wilcoxon"] == pytest.approx(st.wilcoxon(treated, CONTROL).pvalue)


@pytest.mark.parametrize("dz, n", [(0.5, 34), (1.0, 10), (0.2, 199)])
def test_replicates_for_power_match_textbook_paired_t_values(dz, n):
    # Cohen's tables for a two-sided paired t-test, alpha 0.05, power 0.8
    assert replicates_for_power(dz) == n
    assert replicates_for_power(-dz) == n


def test_large_effects_need_the_wilcoxon_minimum():
    assert replicates_for_power(5.5) == MIN_WILCOXON_PAIRS
    assert math.isnan(replicates_for_power(0.0))


def test_unequal_pairs_are_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        paired_comparison([1.0, 2.0], [1.0])


def _table(arms: dict[str, np.ndarray], times=(0.0, 24.0)) -> pd.DataFrame:
    rows = []
    for arm, end in arms.items():
        for r, v in enumerate(end):
            for t in times:
                rows.append({"arm": arm, "replicate": r, "time_h": t,
                             "tumor_cells": CONTROL[r] if t == 0 else v})
    return pd.DataFrame(rows)


def test_at_time_picks_the_last_record_at_or_before():
    runs = _table({"control": CONTROL}, times=(0.0, 6.0, 12.0))
    assert set(at_time(runs, 11.0)["time_h"]) == {6.0}
    assert set(at_time(runs, 12.0)["time_h"]) == {12.0}


def test_summarise_pairs_arms_by_replicate_and_drops_missing_pairs():
    runs = _table({"control": CONTROL, "depletion": CONTROL * 0.5})
    runs = runs[~((runs["arm"] == "depletion") & (runs["replicate"] == 7))]  # a failed run
    s = summarise(runs, {"start": 0.0, "end": 24.0}, readouts={"tumor_cells": ("tumor", "cells")})
    end = s[(s["time_point"] == "end") & (s["arm"] == "depletion")].iloc[0]
    assert end["pairs"] == 7 and end["n"] == 7
    assert end["change_pct"] == pytest.approx(-50.0)
    assert end["p_wilcoxon"] == pytest.approx(2 / 2**7)
    start = s[(s["time_point"] == "start") & (s["arm"] == "depletion")].iloc[0]
    assert start["change_pct"] == 0.0 and start["p_wilcoxon"] == 1.0
    ctrl = s[(s["time_point"] == "end") & (s["arm"] == "control")].iloc[0]
    assert ctrl["mean"] == pytest.approx(CONTROL.mean()) and pd.isna(ctrl["change_pct"])
