"""Whole-model behaviour over 21 days: what the study reports must emerge from the rules.

These run full simulations (about a minute each on 2 cores); the paired-seed tests use a
process pool, one run per worker.
"""

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from sim import load_params, run_one

SEEDS = range(1, 9)  # 8 paired seeds: the same tissue and draws in every arm
WORKERS = min(2, os.cpu_count() or 1)
#: recruitment is easy to see on a small window; growth effects need the default one
SMALL = {"domain.nx": 120, "domain.ny": 120, "initial.tumor_radius_um": 250.0}


def _endpoint(job):
    scenario, seed, overrides = job
    r = run_one(load_params(scenario=scenario, overrides=overrides), seed)
    row = r.timeseries.iloc[-1].to_dict()
    row.update(scenario=scenario, seed=seed)
    return row


def _arms(scenarios, overrides=None) -> pd.DataFrame:
    jobs = [(s, seed, overrides or {}) for seed in SEEDS for s in scenarios]
    with ProcessPoolExecutor(WORKERS) as pool:
        return pd.DataFrame(list(pool.map(_endpoint, jobs)))


def test_control_course_tumor_grows_neutrophils_gather_vessels_seek_hypoxia():
    r = run_one(load_params(), 1)
    ts, final = r.timeseries, r.final
    start, end = ts.iloc[0], ts.iloc[-1]
    assert end["time_h"] == 21 * 24
    assert end["tumor_cells"] > 1.5 * start["tumor_cells"], "the tumor grows"
    assert end["neutrophils_in_tumor"] > 3 * start["neutrophils_in_tumor"], "neutrophils accumulate"
    assert end["neutrophil_tumor_pairs"] > 0.3 * end["neutrophils"], "and bind tumor cells"
    # in and around it: neutrophil density in the tumor region far above the density elsewhere
    kind, x, y, st = (final[k] for k in ("agent_kind", "agent_x", "agent_y", "agent_state"))
    nx, ny = final["field_oxygen"].shape
    tumor_mask = np.zeros((nx, ny), bool)
    tumor_mask[x[kind == 0], y[kind == 0]] = True
    region = ndimage.binary_dilation(tumor_mask, iterations=5)
    neut = kind == 1
    n_in = region[x[neut], y[neut]].sum()
    n_out = neut.sum() - n_in
    density_in = n_in / region.sum()
    density_out = n_out / (~region).sum()
    assert density_in > 10 * density_out
    # vessels grow toward hypoxic regions: new vessel segments lie closer to hypoxic cells
    # than the vessels present at t=0 do
    hyp = np.zeros((nx, ny), bool)
    hyp[x[(kind == 0) & (st == 1)], y[(kind == 0) & (st == 1)]] = True
    dist = ndimage.distance_transform_edt(~hyp)
    e = kind == 3
    n_old = int(ts.iloc[0]["endothelial_cells"])
    ex, ey = x[e], y[e]  # rows in order of creation: the first n_old are the t=0 vessels
    assert len(ex) > n_old + 100, "angiogenesis adds vessel"
    assert dist[ex[n_old:], ey[n_old:]].mean() < 0.7 * dist[ex[:n_old], ey[:n_old]].mean()


def test_depletion_cuts_growth_vessels_and_proliferation_paired_seeds():
    df = _arms(["control", "depletion"])
    wide = df.pivot(index="seed", columns="scenario")
    for readout in ("tumor_cells", "vessel_density_per_mm2", "proliferation_index"):
        diff = wide[readout]["depletion"] - wide[readout]["control"]
        assert diff.mean() < 0, f"{readout}: depletion should end lower"
        assert (diff < 0).sum() >= 7, f"{readout}: {diff.to_dict()}"


def test_macrophage_depletion_cuts_neutrophil_recruitment_paired_seeds():
    df = _arms(["control", "macrophage_depletion"], SMALL)
    wide = df.pivot(index="seed", columns="scenario")["neutrophils_recruited"]
    assert (wide["macrophage_depletion"] < wide["control"]).all()
    assert wide["macrophage_depletion"].mean() < 0.6 * wide["control"].mean()


def test_halving_the_time_step_changes_outcomes_less_than_seed_spread():
    seeds = range(1, 7)
    out = {}
    for dt in (6.0, 3.0):
        over = {**SMALL, "time.dt_min": dt, "time.warmup_steps": int(120 / dt)}
        jobs = [("control", s, over) for s in seeds]
        with ProcessPoolExecutor(WORKERS) as pool:
            out[dt] = pd.DataFrame(list(pool.map(_endpoint, jobs)))
    for readout in ("tumor_cells", "endothelial_cells", "neutrophils", "neutrophil_tumor_pairs",
                    "proliferation_index", "hypoxic_fraction"):
        a, b = out[6.0][readout], out[3.0][readout]
        spread = max(a.std(), b.std())
        assert abs(a.mean() - b.mean()) < spread, (readout, a.mean(), b.mean(), spread)
