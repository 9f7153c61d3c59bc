"""``neutrosim calibrate`` on a synthetic dataset with planted values (tests/scrna_synth.py):
the derived values recover what was planted, every input format gives the same result,
bad input writes nothing; and the round trip simulate -> export -> calibrate gives back
what the simulation's own readouts say."""

import json
import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("anndata")
pytest.importorskip("sklearn")

from sim.cli import main  # noqa: E402

from .scrna_synth import (CELL_TYPE_LABELS, Planted, make_dataset, write_10x_h5,  # noqa: E402
                          write_10x_mtx, write_h5ad, write_metadata, write_umi_tables)

MAPPING = f"""cell_type_key = "cell_type"
stage_key = "stage"
sample_key = "mouse"
doublet_key = "pic_pair"
reference_stage = "early"
[cell_types]
{chr(10).join(f'"{label}" = "{t}"' for t, label in CELL_TYPE_LABELS.items())}
[stages]
"early carcinoma" = "early"
"late carcinoma" = "advanced"
"""


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(Planted(cells_per_mouse=3000, seed=4))


@pytest.fixture(scope="module")
def calibrated(dataset, tmp_path_factory):
    """The dataset as an h5ad, calibrated; (folder, derived.json)."""
    root = tmp_path_factory.mktemp("calibrate")
    data = write_h5ad(dataset, root / "cells.h5ad")
    (root / "map.toml").write_text(MAPPING)
    out = root / "calib"
    assert main(["calibrate", str(data), "--mapping", str(root / "map.toml"), "--out",
                 str(out), "--quiet"]) == 0
    return out, json.loads((out / "derived.json").read_text())


def test_composition_is_recovered(dataset, calibrated):
    """Each stage's fraction of each cell type, counting a PIC-seq doublet as one cell of
    each type (the tissue's cells, not the barcodes), within 3 standard errors (mouse
    spread of the planted Dirichlet and multinomial sampling)."""
    _, derived = calibrated
    planted = dataset.planted
    for stage, comp in planted.composition.items():
        extra = comp["neutrophil"] * planted.bound_fraction[stage]  # doublets' tumor cells
        n = len(dataset.obs) / 2
        for t, c in comp.items():
            truth = (c + (extra if t == "tumor" else 0.0)) / (1 + extra)
            se = math.sqrt(truth * (1 - truth) * (1 / 300 + 1 / n) / planted.mice_per_stage)
            got = derived["composition"][stage][t]
            assert abs(got["mean"] - truth) < 3 * se + 1e-3, (stage, t, got, truth)
            assert got["n_samples"] == planted.mice_per_stage and got["sd"] > 0
        assert sum(v["mean"] for v in derived["composition"][stage].values()) == pytest.approx(1)


def test_signal_fold_changes_are_the_planted_ligand_folds(dataset, calibrated):
    """Receptors are flat across stages here, so an axis's fold change from a sender is the
    mean of its pairs' planted ligand folds (each pair weighs ligand x receptor, all equal
    at the reference stage), within 3 of its stated standard errors."""
    from sim.calibration.genesets import load_axes

    _, derived = calibrated
    folds = dataset.planted.ligand_fold
    for axis in load_axes():
        expected = np.mean([folds.get(lig, 1.0) for lig, _ in axis.pairs])
        for sender in axis.senders:
            got = derived["signal_fold_changes"][axis.name][sender]
            assert got["early"]["fold_change"] == pytest.approx(1.0)
            se = got["advanced"]["log2_se"]  # the stated uncertainty must cover the error
            assert 0 < se < 0.3
            assert abs(math.log2(got["advanced"]["fold_change"] / expected)) < 3 * se + 0.05, \
                (axis.name, sender, got, expected)


def test_programme_and_bound_fractions_are_recovered(dataset, calibrated):
    _, derived = calibrated
    planted = dataset.planted
    for prog, by_stage in planted.programme_fraction.items():
        for stage, f in by_stage.items():
            got = derived["programme_fractions"][stage][prog]["mean"]
            assert abs(got - f) < 0.04, (prog, stage, got, f)
    obs = dataset.obs
    for stage, b in planted.bound_fraction.items():
        label = [k for k, v in planted.stages.items() if v == stage][0]
        n = ((obs["stage"] == label) & (obs["cell_type"] == "Neutrophils")).sum()
        got = derived["bound_neutrophil_fraction"][stage]["mean"]
        assert abs(got - b) < 3 * math.sqrt(b * (1 - b) / n) + 0.005, (stage, got, b)


def test_the_folder_holds_an_overlay_the_model_runs(calibrated):
    from sim.config.params import load_params

    out, derived = calibrated
    names = sorted(p.name for p in out.iterdir())
    assert names == ["derived.json", "figures", "manifest.json", "params.toml",
                     "provenance.json", "report.md", "rules.csv"]
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "composition.png", "programmes.png", "signals.png"]
    prov = json.loads((out / "provenance.json").read_text())
    assert all(len(h) == 64 for h in prov["inputs"].values())
    adv = load_params(out / "params.toml")
    early = load_params(out / "params.toml", options=[("", {"initial.stage": "early"})])
    assert adv.initial.neutrophils_per_mm2_tumor > early.initial.neutrophils_per_mm2_tumor
    sat = "rules.neutrophil.secrete_proinvasive.increases"
    fold = derived["signal_fold_changes"]["proinvasive"]["neutrophil"]["advanced"]["fold_change"]
    assert adv.rules.saturations()[sat] == pytest.approx(
        early.rules.saturations()[sat] * fold, rel=1e-5)
    rules = pd.read_csv(out / "rules.csv")
    row = rules[(rules.cell_type == "neutrophil") & (rules.behaviour == "secrete_proinvasive")]
    assert row.source.iloc[0].startswith("calibrated from cells.h5ad (sha256 ")
    assert "cells in 6 samples" in row.source.iloc[0]


def test_every_input_format_gives_the_same_result(dataset, calibrated, tmp_path):
    out_h5ad, derived = calibrated
    (tmp_path / "map.toml").write_text(MAPPING)
    meta = write_metadata(dataset, tmp_path / "meta.tsv")
    tables, tmeta = write_umi_tables(dataset, tmp_path / "tables", batches=3)
    inputs = {"mtx": ([write_10x_mtx(dataset, tmp_path / "tenx")], meta),
              "h5": ([write_10x_h5(dataset, tmp_path / "cells.h5")], meta),
              "tables": (tables, tmeta)}
    for name, (paths, metadata) in inputs.items():
        out = tmp_path / f"calib_{name}"
        assert main(["calibrate", *map(str, paths), "--metadata", str(metadata), "--mapping",
                     str(tmp_path / "map.toml"), "--out", str(out), "--quiet"]) == 0
        got = json.loads((out / "derived.json").read_text())
        assert got == derived, name
        values = [line.split(", source")[0] for line in
                  (out / "params.toml").read_text().splitlines() if "value =" in line]
        assert values == [line.split(", source")[0] for line in
                          (out_h5ad / "params.toml").read_text().splitlines()
                          if "value =" in line]


@pytest.mark.parametrize("break_it, words", [
    (lambda d: d.obs.assign(cell_type=d.obs["cell_type"].replace("Fibroblasts", "Pericytes")),
     ["map.toml", "'Pericytes'", "not mapped"]),
    (lambda d: d.obs.assign(mouse=None).drop(columns="mouse"), ["sample_key", "'mouse'"]),
    (lambda d: d.obs[~((d.obs["stage"] == "late carcinoma")
                       & (d.obs["cell_type"] == "Endothelial"))],
     ["advanced", "no endothelial cells"]),
])
def test_bad_input_gets_one_message_and_writes_nothing(dataset, tmp_path, capsys, break_it,
                                                       words):
    meta = break_it(dataset)
    (tmp_path / "map.toml").write_text(MAPPING)
    meta.to_csv(tmp_path / "meta.tsv", sep="\t", index_label="cell_id")
    tables, _ = write_umi_tables(dataset, tmp_path / "tables", batches=1)
    if len(meta) < len(dataset.obs):  # drop the same cells from the counts
        keep = dataset.obs.index.isin(meta.index)
        table = pd.read_csv(tables[0], sep="\t", index_col=0)
        table.loc[:, keep].to_csv(tables[0], sep="\t", index_label="gene")
    out = tmp_path / "calib"
    code = main(["calibrate", *map(str, tables), "--metadata", str(tmp_path / "meta.tsv"),
                 "--mapping", str(tmp_path / "map.toml"), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("neutrosim: error:") == 1 and "Traceback" not in err
    for w in words:
        assert w in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.toml", "meta.tsv", "tables"]


def test_a_gene_set_absent_from_the_data_is_refused(dataset, tmp_path, capsys):
    data = write_h5ad(dataset, tmp_path / "cells.h5ad")
    (tmp_path / "map.toml").write_text(MAPPING)
    programmes = tmp_path / "programmes.toml"
    programmes.write_text('[ghost]\ncell_type = "tumor"\ngenes = ["NotAGene1", "NotAGene2"]\n')
    code = main(["calibrate", str(data), "--mapping", str(tmp_path / "map.toml"),
                 "--programmes", str(programmes), "--out", str(tmp_path / "calib"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "ghost" in err and "none of its genes" in err
    assert not (tmp_path / "calib").exists()


def test_without_the_extra_the_command_says_what_to_install(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "anndata" else real(name, *a))
    code = main(["calibrate", str(tmp_path / "x.h5ad"), "--mapping", str(tmp_path / "m.toml"),
                 "--out", str(tmp_path / "calib")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'neutrosim[scrna]'" in err and "anndata" in err


# ------------------------------------------------------------------ the round trip
@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A small advanced tumor run for 2 days, its folder and final readouts."""
    root = tmp_path_factory.mktemp("roundtrip")
    run = root / "run"
    assert main(["run", "--days", "2", "--seed", "3", "--grid", "80", "80", "--set",
                 "initial.tumor_radius_um=600", "--out", str(run), "--quiet"]) == 0
    last = pd.read_csv(run / "timeseries.csv").iloc[-1]
    return root, run, last


def _export_and_calibrate(root, run, n, seed, *extra):
    cells = root / f"cells_{n}_{seed}.h5ad"
    assert main(["export", str(run), "--scrna", str(n), "--out-counts", str(cells),
                 "--seed", str(seed), "--quiet", *extra]) == 0
    out = root / f"calib_{n}_{seed}"
    mapping = cells.with_name(cells.name[:-5] + ".mapping.toml")
    assert main(["calibrate", str(cells), "--mapping", str(mapping), "--out", str(out),
                 "--quiet"]) == 0
    return out, json.loads((out / "derived.json").read_text())


def _truth(last):
    n = {"tumor": last.tumor_cells, "neutrophil": last.neutrophils,
         "macrophage": last.macrophages, "endothelial": last.endothelial_cells}
    total = sum(n.values())
    return {t: v / total for t, v in n.items()}, total


def test_round_trip_with_every_cell_gives_the_simulation_back(simulated):
    """A dissociation of every unit of the window: the composition and the bound fraction
    are the simulation's own (a tumor cell bound by two neutrophils counts twice: a few
    cells at most), the cycling fraction is its proliferation index up to the programme
    score's noise; and a run with the calibrated overlay works."""
    root, run, last = simulated
    from sim.export.anndata import read_run
    from sim.export.scrna import capturable

    units = len(capturable(read_run(run), window=True))
    out, derived = _export_and_calibrate(root, run, units, 0, "--window")
    truth, total = _truth(last)
    comp = derived["composition"]["advanced"]
    for t, v in truth.items():
        assert abs(comp[t]["mean"] - v) < 5 / total, (t, comp[t], v)
    assert derived["bound_neutrophil_fraction"]["advanced"]["mean"] == pytest.approx(
        last.bound_neutrophil_fraction, abs=1e-9)
    cycling = derived["programme_fractions"]["advanced"]["tumor_cycling"]["mean"]
    assert abs(cycling - last.proliferation_index) < 0.03, (cycling, last.proliferation_index)
    assert main(["run", "--params", str(out / "params.toml"), "--days", "0.25", "--grid",
                 "80", "80", "--set", "initial.tumor_radius_um=600", "--out",
                 str(root / "run_calibrated"), "--quiet"]) == 0


def test_round_trip_with_a_sample_is_within_sampling_error(simulated):
    root, run, last = simulated
    n = 1500
    _, derived = _export_and_calibrate(root, run, n, 1, "--window")
    truth, _ = _truth(last)
    for t, v in truth.items():
        got = derived["composition"]["advanced"][t]["mean"]
        assert abs(got - v) < 4 * math.sqrt(v * (1 - v) / n), (t, got, v)
    b = last.bound_neutrophil_fraction
    n_neu = n * truth["neutrophil"]
    got = derived["bound_neutrophil_fraction"]["advanced"]["mean"]
    assert abs(got - b) < 4 * math.sqrt(b * (1 - b) / n_neu) + 0.01


@pytest.mark.notebooks
def test_notebook_walks_through_the_round_trip(tmp_path, monkeypatch):
    from .conftest import execute_notebook, images

    outputs = execute_notebook("calibration.ipynb", monkeypatch,
                               NEUTROSIM_CALIB_DIR=str(tmp_path))
    assert len(images(outputs)) == 3  # composition, programmes, signals
    derived = json.loads((tmp_path / "calib" / "derived.json").read_text())
    assert derived["stages"] == ["early", "advanced"]
    assert (tmp_path / "advanced_calibrated" / "timeseries.csv").is_file()


def test_by_default_the_tumor_and_its_margin_are_dissociated(simulated):
    """Every captured cell lies within 100 um of a viable tumor cell (distances computed
    here by brute force), while the window holds cells farther out."""
    import anndata as ad

    root, run, _ = simulated
    cells = root / "tumor_only.h5ad"
    assert main(["export", str(run), "--scrna", "800", "--out-counts", str(cells), "--quiet"]) == 0
    state = np.load(run / "final_state.npz")
    kind, st = state["agent_kind"], state["agent_state"]
    names = list(state["kind_names"])
    viable = (kind == names.index("tumor")) & (st <= 1)
    xy = np.stack([state["agent_x"], state["agent_y"]], 1).astype(float) * float(state["voxel_um"])

    def nearest_tumor_um(agents):
        d = xy[agents, None, :] - xy[None, viable, :]
        return np.sqrt((d ** 2).sum(-1)).min(axis=1)

    got = ad.read_h5ad(cells).obs["sim_agent"].to_numpy()
    assert nearest_tumor_um(got).max() <= 100.0 + 1e-9
    assert nearest_tumor_um(np.arange(len(kind))).max() > 300.0
