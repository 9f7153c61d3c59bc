"""Disease stages: the early preset sits beneath everything the user gives, and a run from
an early lesion shows the study's shift as the disease advances: neutrophils arrive, take
a growing share of the microenvironment and bind tumor cells. That shift is not written
into the rules: without the chemokine sources no neutrophil ever arrives."""

import numpy as np
import pytest

from sim.config.errors import ParameterError
from sim.config.params import load_params, params_dir, stage_file
from sim.runs.run import run_one


def test_the_early_preset_applies_beneath_the_users_values(tmp_path):
    early = load_params(overrides={"initial.stage": "early"})
    advanced = load_params()
    assert advanced.initial.stage == "advanced" and advanced.initial.tumor_radius_um == 500.0
    assert (early.initial.tumor_radius_um, early.initial.tumor_vessel_density_per_mm2,
            early.initial.neutrophils_per_mm2_tumor, early.time.days) == (100.0, 0.0, 5.0, 35.0)
    assert str(stage_file("early")) in early.sources
    (tmp_path / "mine.toml").write_text("[initial]\nstage = \"early\"\ntumor_radius_um = 150.0\n")
    mine = load_params(tmp_path / "mine.toml", overrides={"time.days": 10})
    assert (mine.initial.tumor_radius_um, mine.time.days) == (150.0, 10.0)  # the user's win
    assert mine.initial.neutrophils_per_mm2_tumor == 5.0  # the preset's, where not given
    assert early.digest() != advanced.digest()
    with pytest.raises(ParameterError, match="a stage is chosen when the parameters are loaded"):
        advanced.replace({"initial.stage": "early"})
    with pytest.raises(ParameterError, match="initial.stage = 'late': allowed 'advanced', 'early'"):
        load_params(overrides={"initial.stage": "late"})
    assert (params_dir() / "stages" / "advanced.toml").is_file()


@pytest.mark.experiment
def test_from_an_early_lesion_neutrophils_arrive_bind_and_take_over_the_microenvironment(tmp_path):
    """28 days from an early lesion on a 3 x 3 mm window, with the default rules and with
    the neutrophil chemokine switched off (the macrophage row and tumor secretion)."""
    early = {"initial.stage": "early", "domain.nx": 150, "domain.ny": 150, "time.days": 28}
    table = (params_dir() / "rules.csv").read_text().replace(
        "macrophage,activated,increases,secrete_chemoattractant,10,",
        "macrophage,activated,increases,secrete_chemoattractant,0,")
    assert "secrete_chemoattractant,0," in table
    (tmp_path / "no_chemokine.csv").write_text(table)
    runs = {
        "default": load_params(overrides=early),
        "no chemokine": load_params(overrides={**early, "tumor.secrete_chemoattractant": 0.0},
                                    rules=tmp_path / "no_chemokine.csv"),
    }
    ts = {name: run_one(p, 1, threads=2).timeseries.set_index("time_h") for name, p in runs.items()}
    d = ts["default"]
    share = d["neutrophil_share_of_microenvironment"].loc[[0.0, 192.0, 384.0, 672.0]].to_numpy()
    assert share[0] == 0 and np.all(np.diff(share) > 0) and share[-1] > 0.2
    pairs = d["neutrophil_tumor_pairs"].loc[[0.0, 192.0, 384.0, 672.0]].to_numpy()
    assert pairs[0] == 0 and np.all(np.diff(pairs) > 0)
    micro = d["neutrophils"] + d["macrophages"] + d["endothelial_cells"]
    neutrophils_and_vessels = (d["neutrophils"] + d["endothelial_cells"]) / micro
    # together they take a growing share (0.76 -> 0.80 here: the neutrophils' rise; the
    # vessels grow only from about day 18, once the lesion is hypoxic, and macrophages are
    # recruited too, so the vessels' own share falls: see the README, Stages)
    assert neutrophils_and_vessels.iloc[-1] > neutrophils_and_vessels.iloc[0] + 0.02
    assert d["endothelial_cells"].iloc[-1] > d["endothelial_cells"].iloc[0]
    off = ts["no chemokine"]
    assert off["neutrophils"].max() == 0 and off["neutrophil_tumor_pairs"].max() == 0
