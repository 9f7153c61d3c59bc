"""Whole-model behaviour over 21 days: what the study reports must emerge from the rules.

These run full 21-day simulations (marked ``experiment``: left out of ``make test-fast``).
The paired-seed tests run through the depletion experiment itself
(``sim.experiments.depletion``, the ensemble runner and its process pool), so the product
path is what is tested.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from sim import load_params
from sim.cells import tumor
from sim.experiments.depletion import DepletionSetup, run_depletion
from sim.model.model import NeutroModel
from sim.readouts import at_time, tumor_region
from sim.runs.ensemble import RunSpec, load_runs, run_ensemble
from sim.runs.executors import ProcessExecutor

REPLICATES = 8  # 8 paired seeds: the same tissue and draws in every arm
WORKERS = 2
#: recruitment is easy to see on a small window; growth effects need the default one
SMALL = {"domain.nx": 120, "domain.ny": 120, "initial.tumor_radius_um": 250.0}

pytestmark = pytest.mark.experiment  # every test here runs the whole model for 21 days


def _endpoints(tmp_path, arms, overrides=None) -> pd.DataFrame:
    """Endpoint rows of a paired experiment over ``arms`` (seeds 1..8), via ``run_depletion``."""
    sets = tuple((k, str(v)) for k, v in (overrides or {}).items())
    setup = DepletionSetup(arms=tuple(arms), replicates=REPLICATES, sets=sets)
    result = run_depletion(setup, tmp_path / "exp", workers=WORKERS, progress=False)
    assert not result.failures
    runs = load_runs(result.out)
    return at_time(runs, runs["time_h"].max())


def test_control_course_tumor_grows_neutrophils_gather_vessels_seek_hypoxia():
    m = NeutroModel(load_params(), rng=1)
    nx, ny = m.grid.dimensions
    closer = farther = up = down = 0
    while m.time_min < 21 * 1440:
        late = m.time_min >= 18 * 1440
        t = m.tumor
        if late:  # distance of every voxel to the nearest hypoxic tumor cell, before the step
            hyp = t["state"] == tumor.HYPOXIC
            free = np.ones((nx, ny), bool)
            free[t["x"][hyp], t["y"][hyp]] = False
            dist = ndimage.distance_transform_edt(free)
        vegf = m.fields["proangiogenic"].copy()
        n0 = m.endothelial.n
        m.step()
        # each tip step of this step: from (prev_x, prev_y) to (x, y)
        e = m.endothelial
        new = np.arange(n0, e.n)
        new = new[e["moves"][new] >= 1]
        v1, v0 = vegf[e["x"][new], e["y"][new]], vegf[e["prev_x"][new], e["prev_y"][new]]
        up += int((v1 > v0).sum())
        down += int((v1 < v0).sum())
        if late:
            d1 = dist[e["x"][new], e["y"][new]]
            d0 = dist[e["prev_x"][new], e["prev_y"][new]]
            closer += int((d1 < d0).sum())
            farther += int((d1 > d0).sum())
    ts = m.datacollector.get_model_vars_dataframe()
    start, end = ts.iloc[0], ts.iloc[-1]
    assert end["time_h"] == 21 * 24
    assert end["tumor_cells"] > 1.5 * start["tumor_cells"], "the tumor grows"
    assert end["neutrophils_in_tumor"] > 3 * start["neutrophils_in_tumor"], "neutrophils accumulate"
    # and bind tumor cells, well below saturation (so the PIC-seq-like pairs carry
    # information beyond the neutrophil count: 0.22 in this run)
    assert 0.1 < end["bound_neutrophil_fraction"] < 0.6, "and bind tumor cells"
    assert end["neutrophil_tumor_pairs"] == round(end["bound_neutrophil_fraction"] * end["neutrophils"])
    ki67 = ts.set_index("time_h")["proliferation_index"]
    assert 0.18 <= ki67.loc[48:].min() and ki67.max() <= 0.5, \
        "Ki67-like index about 20-50%, as in aggressive mouse mammary carcinomas"
    assert 0.9 < end["perfused_vessel_fraction"] < 1.0, "most sprouts connect, not all yet"
    # in and around it: neutrophil density near the tumor far above the density elsewhere
    region = tumor_region(m)
    nb = m.neutrophils
    n_in = region[nb["x"], nb["y"]].sum()
    assert n_in / region.sum() > 10 * (nb.n - n_in) / (~region).sum()
    # vessels grow up the VEGF gradient (792 tip steps up against 153 down in this run),
    # toward what secretes it: educated neutrophils from the start, and hypoxic tumor
    # cells once the tumor is hypoxic (days 18-21: 128 steps closer to them against 64)
    assert end["endothelial_cells"] > start["endothelial_cells"] + 100, "angiogenesis"
    assert up > 500 and up > 3 * down, (up, down)
    assert closer > 80 and closer > 1.5 * farther, (closer, farther)


def test_depletion_cuts_growth_vessels_and_proliferation_paired_seeds(tmp_path):
    end = _endpoints(tmp_path, ["control", "depletion"])
    wide = end.pivot(index="seed", columns="arm")
    for readout in ("tumor_cells", "vessel_density_per_mm2", "proliferation_index"):
        diff = wide[readout]["depletion"] - wide[readout]["control"]
        assert diff.mean() < 0, f"{readout}: depletion should end lower"
        assert (diff < 0).sum() >= 7, f"{readout}: {diff.to_dict()}"


def test_macrophage_depletion_cuts_neutrophil_recruitment_paired_seeds(tmp_path):
    end = _endpoints(tmp_path, ["control", "macrophage_depletion"], SMALL)
    wide = end.pivot(index="seed", columns="arm")["neutrophils_recruited"]
    assert (wide["macrophage_depletion"] < wide["control"]).all()
    assert wide["macrophage_depletion"].mean() < 0.6 * wide["control"].mean()


DT_READOUTS = ("tumor_cells", "endothelial_cells", "vessel_density_per_mm2", "neutrophils",
               "neutrophil_tumor_pairs", "proliferation_index", "hypoxic_fraction")


def _dt_halving(tmp_path, overrides: dict, seeds: int = 6) -> dict:
    """21-day endpoints at dt = 6 and 3 min over ``seeds`` seeds; per readout the change
    of the mean and the larger of the two seed-to-seed SDs."""
    specs = []
    for dt in (6.0, 3.0):
        p = load_params(overrides={**overrides, "time.dt_min": dt,
                                   "time.warmup_steps": int(120 / dt)})
        specs += [RunSpec(f"dt{dt:g}-s{s}", p, s, {"dt": dt}) for s in range(1, seeds + 1)]
    with ProcessExecutor(WORKERS) as pool:
        report = run_ensemble(specs, tmp_path, pool, progress=False)
    assert not report.failed
    runs = load_runs(tmp_path)
    end = at_time(runs, runs["time_h"].max(), by=("dt", "seed"))
    out = {dt: g.reset_index(drop=True) for dt, g in end.groupby("dt")}
    return {r: (out[3.0][r].mean() - out[6.0][r].mean(), max(out[6.0][r].std(), out[3.0][r].std()))
            for r in DT_READOUTS}


def test_halving_the_time_step_changes_outcomes_less_than_seed_spread(tmp_path):
    """On the reduced window (SMALL); the default tissue is the slow test below."""
    for readout, (change, spread) in _dt_halving(tmp_path, SMALL).items():
        assert abs(change) < spread, (readout, change, spread)


@pytest.mark.slow
def test_halving_the_time_step_on_the_default_tissue(tmp_path):
    """The same on the default 4 x 4 mm tissue (not in make test or CI; how long it takes:
    the README's Development section)."""
    for readout, (change, spread) in _dt_halving(tmp_path, {}).items():
        print(f"{readout}: change {change:+.4g}, seed SD {spread:.4g}")
        assert abs(change) < spread, (readout, change, spread)
