"""Calibration's parameter side: stage tables in an overlay, the mapping file, and the
relations from derived single-cell values to parameters (each checked against the model's
own relation or a planted value)."""

import math

import numpy as np
import pytest

from sim.config.errors import ParameterError
from sim.config.params import load_params

EARLY = [("--stage early", {"initial.stage": "early"})]


def _overlay(tmp_path, text):
    path = tmp_path / "calib.toml"
    path.write_text(text)
    return path


def test_stage_tables_apply_to_their_stage_only(tmp_path):
    path = _overlay(tmp_path, """
[tumor]
cycle_rate_per_min = 0.0005
[rules]
"neutrophil.binding.increases" = 0.003
[stage.early.initial]
neutrophils_per_mm2_tumor = 7.0
[stage.advanced.initial]
neutrophils_per_mm2_tumor = 90.0
[stage.advanced.rules]
"neutrophil.secrete_proinvasive.increases" = { value = 1.5, source = "calibrated: x" }
[stage.advanced.rules.macrophage.secrete_chemoattractant]
increases = 4.0
""")
    adv = load_params(path)
    early = load_params(path, options=EARLY)
    assert adv.initial.neutrophils_per_mm2_tumor == 90.0
    assert early.initial.neutrophils_per_mm2_tumor == 7.0
    for p in (adv, early):  # the common values reach both
        assert p.tumor.cycle_rate_per_min == 0.0005
        assert p.rules.saturations()["rules.neutrophil.binding.increases"] == 0.003
    assert adv.rules.saturations()["rules.neutrophil.secrete_proinvasive.increases"] == 1.5
    assert adv.rules.saturations()["rules.macrophage.secrete_chemoattractant.increases"] == 4.0
    default = load_params().rules.saturations()
    assert (early.rules.saturations()["rules.neutrophil.secrete_proinvasive.increases"]
            == default["rules.neutrophil.secrete_proinvasive.increases"])
    # the early preset still sets what the table does not: a small nest, five weeks
    assert early.initial.tumor_radius_um == 100.0 and early.time.days == 35.0
    # --set is above the stage table
    mine = load_params(path, overrides={"initial.neutrophils_per_mm2_tumor": 3.0})
    assert mine.initial.neutrophils_per_mm2_tumor == 3.0


@pytest.mark.parametrize("text, words", [
    ("[stage.late.initial]\nneutrophils_per_mm2_tumor = 1.0\n", ["stage.late", "unknown stage", "early"]),
    ("[stage.early.initial]\nstage = \"advanced\"\n", ["stage.early", "cannot set initial.stage"]),
    ("[stage.early.initial]\nneutrophils_per_mm2_tumor = -1.0\n", ["[stage.early]", "out of range"]),
    ("[stage.early.tumor]\nnonsense = 1.0\n", ["[stage.early]", "tumor.nonsense"]),
    ("[rules]\n\"neutrophil.flying.increases\" = 1.0\n", ["calib.toml", "neutrophil.flying.increases"]),
])
def test_bad_stage_tables_are_refused_naming_the_file(tmp_path, text, words):
    path = _overlay(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        load_params(path, options=EARLY)
    message = str(err.value)
    assert "calib.toml" in message
    for w in words:
        assert w in message, message


def test_macrophages_inside_the_tumor_at_the_planted_density(empty_model):
    """``initial.macrophages_per_mm2_tumor`` adds that density inside the initial tumor,
    beyond the residents (0 draws nothing: the default tissue is as before)."""
    base = empty_model(seed=3)
    extra = empty_model(seed=3, **{"initial.macrophages_per_mm2_tumor": 500.0})
    p = extra.p
    voxel_mm2 = (p.domain.voxel_um / 1000) ** 2
    from sim.model.tissue import tumor_disc

    disc = tumor_disc(p.domain.nx, p.domain.ny, p.initial.tumor_radius_um / p.domain.voxel_um)
    expected = 500.0 * voxel_mm2 * disc.sum()
    added = extra.macrophages.n - base.macrophages.n
    assert abs(added - expected) < 4 * math.sqrt(expected) + 4 * math.sqrt(base.macrophages.n)
    mx, my = extra.macrophages["x"], extra.macrophages["y"]
    inside = disc[mx, my].sum() - disc[base.macrophages["x"], base.macrophages["y"]].sum()
    assert inside > 0.9 * added


# ------------------------------------------------------------------ the mapping file
MAP = """cell_type_key = "ct"
stage_key = "st"
sample_key = "mouse"
reference_stage = "early"
[cell_types]
T = "tumor"
N = "neutrophil"
M = "macrophage"
E = "endothelial"
F = "other"
[stages]
e = "early"
a = "advanced"
"""


def _mapping(tmp_path, text=MAP):
    from sim.calibration.mapping import load_mapping

    path = tmp_path / "map.toml"
    path.write_text(text)
    return load_mapping(path)


def _obs(n=4):
    import pandas as pd

    rows = [{"ct": t, "st": s, "mouse": f"{s}{k}"} for s in ("e", "a", "healthy")
            for t in "TNMEF" for k in range(n)]
    return pd.DataFrame(rows, index=[f"c{i}" for i in range(len(rows))])


def test_mapping_labels_cells_and_drops_unlisted_stages(tmp_path):
    from sim.calibration.mapping import label_cells

    cells = label_cells(_mapping(tmp_path), _obs(), "data.h5ad")
    assert set(cells["stage"]) == {"early", "advanced"}  # "healthy" is not listed
    assert len(cells) == 2 * 5 * 4
    assert set(cells["type"]) == {"tumor", "neutrophil", "macrophage", "endothelial", "other"}
    assert (cells["partner"] == "").all()


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace('stage_key = "st"\n', ""), ["map.toml", "missing key", "stage_key"]),
    (lambda t: 'colour = "red"\n' + t, ["map.toml", "unknown key", "colour"]),
    (lambda t: t.replace('F = "other"', 'F = "fibroblast"'), ["map.toml", "fibroblast", "allowed"]),
    (lambda t: t.replace('reference_stage = "early"', 'reference_stage = "late"'),
     ["map.toml", "reference_stage", "late"]),
    (lambda t: t.replace('\ne = "early"\n', "\n"), ["map.toml", "reference_stage", "no label"]),
    (lambda t: t.replace('reference_stage', 'doublet_enrichment = 0\nreference_stage'),
     ["map.toml", "doublet_enrichment", "> 0"]),
])
def test_bad_mapping_files_get_one_clear_error(tmp_path, edit, words):
    from sim.calibration.counts import CalibrationError

    with pytest.raises(CalibrationError) as err:
        _mapping(tmp_path, edit(MAP))
    for w in words:
        assert w in str(err.value), str(err.value)


@pytest.mark.parametrize("change, words", [
    (lambda o: o.assign(ct=o["ct"].replace("F", "Fibro")), ["[cell_types]", "'Fibro'", "not mapped"]),
    (lambda o: o.drop(columns="mouse"), ["sample_key", "'mouse'", "not a column"]),
    (lambda o: o[~((o["st"] == "a") & (o["ct"] == "N"))], ["advanced", "no neutrophil"]),
    (lambda o: o[o["st"] == "healthy"], ["[stages]", "no cell", "listed stage"]),
])
def test_data_the_mapping_does_not_fit_gets_one_clear_error(tmp_path, change, words):
    import types

    from sim.calibration.counts import CalibrationError
    from sim.calibration.derive import derive
    from sim.calibration.mapping import label_cells

    mapping = _mapping(tmp_path)
    obs = change(_obs())
    with pytest.raises(CalibrationError) as err:
        cells = label_cells(mapping, obs, "data.h5ad")
        counts = types.SimpleNamespace(obs=obs, library_size=np.full(len(obs), 100.0),
                                       genes=(), counts=np.zeros((len(obs), 0)), missing=())
        derive(counts, cells, (), (), mapping)
    for w in words:
        assert w in str(err.value), str(err.value)


# ------------------------------------------------------------------ derived -> parameters
def _derived(comp_adv, comp_early, fc=2.0, cycling=0.25, educated=0.6, bound=0.3):
    from sim.calibration.derive import Derived

    stat = lambda v: {"mean": v, "sd": 0.0, "n_samples": 3}  # noqa: E731
    types_ = ("tumor", "neutrophil", "macrophage", "endothelial", "other")
    comp = {s: {t: stat(v) for t, v in zip(types_, c)}
            for s, c in (("advanced", comp_adv), ("early", comp_early))}
    from sim.calibration.genesets import load_axes

    folds = {a.name: {snd: {"early": {"fold_change": 1.0, "log2_se": 0.0},
                            "advanced": {"fold_change": fc, "log2_se": 0.1}}
                      for snd in a.senders} for a in load_axes()}
    return Derived(
        stages=["early", "advanced"], reference_stage="early", cells={}, samples={},
        composition=comp, signal_strengths={}, signal_fold_changes=folds,
        programme_fractions={"early": {"tumor_cycling": stat(cycling)},
                             "advanced": {"tumor_cycling": stat(0.5),
                                          "neutrophil_activated": stat(educated)}},
        programme_fit={}, bound_neutrophil_fraction={"advanced": stat(bound),
                                                     "early": stat(0.01)},
        pairs_used={}, genes_missing=[])


def test_parameters_follow_the_stated_relations():
    from sim.calibration.genesets import load_axes, load_programmes
    from sim.calibration.parameters import calibrate_params

    p = load_params()
    d = _derived([0.5, 0.1, 0.05, 0.05, 0.3], [0.8, 0.02, 0.05, 0.03, 0.1])
    cal = calibrate_params(d, p, load_axes(), load_programmes(), "planted")
    rho = p.initial.tumor_packing / (p.domain.voxel_um / 1000) ** 2
    adv, early = cal.by_stage["advanced"], cal.by_stage["early"]
    assert adv["initial.neutrophils_per_mm2_tumor"] == pytest.approx(rho * 0.1 / 0.5)
    assert early["initial.tumor_vessel_density_per_mm2"] == pytest.approx(rho * 0.03 / 0.8)
    assert adv["initial.macrophages_per_mm2_tumor"] == pytest.approx(
        rho * 0.05 / 0.5 - p.initial.macrophages_per_mm2)
    assert adv["tumor.secrete_chemoattractant"] == pytest.approx(2 * p.tumor.secrete_chemoattractant)
    assert early["tumor.secrete_chemoattractant"] == p.tumor.secrete_chemoattractant
    sat = p.rules.saturations()
    assert adv["rules.neutrophil.secrete_proinvasive.increases"] == pytest.approx(
        2 * sat["rules.neutrophil.secrete_proinvasive.increases"])
    # the cycle rate is the model's own steady state (start_cycles) read backwards
    r = cal.common["tumor.cycle_rate_per_min"]
    T = p.tumor.ki67_positive_h * 60
    assert T * r / (1 + T * r) == pytest.approx(0.25)
    # education: educated / naive = a L at steady state
    a = cal.common["rules.neutrophil.activation.increases"]
    L = p.neutrophil.lifespan_activated_day * 1440
    assert a * L / (1 + a * L) == pytest.approx(0.6)
    # binding equilibrium: k_on / (k_on + k_off) = b
    k_on = cal.common["rules.neutrophil.binding.increases"]
    assert k_on / (k_on + p.neutrophil.unbinding_per_min) == pytest.approx(0.3)


def test_densities_beyond_one_cell_a_voxel_are_capped_with_a_note():
    from sim.calibration.genesets import load_axes, load_programmes
    from sim.calibration.parameters import calibrate_params

    p = load_params()
    d = _derived([0.1, 0.6, 0.1, 0.1, 0.1], [0.8, 0.02, 0.05, 0.03, 0.1])
    cal = calibrate_params(d, p, load_axes(), load_programmes(), "planted")
    cap = 1 / (p.domain.voxel_um / 1000) ** 2
    assert cal.by_stage["advanced"]["initial.neutrophils_per_mm2_tumor"] == cap
    assert any("neutrophils_per_mm2_tumor" in n and "one cell per voxel" in n for n in cal.notes)
