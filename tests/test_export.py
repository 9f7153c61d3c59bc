"""neutrosim export: a run folder as AnnData, and the virtual single-cell experiment on it.

One small run (60 x 60 voxels, 12 h, many neutrophils so that some are bound) is shared by
every test.
"""

import argparse
import tomllib

import numpy as np
import pytest

anndata = pytest.importorskip("anndata")

from sim.config.params import load_params, params_dir  # noqa: E402
from sim.export import scrna  # noqa: E402
from sim.export.anndata import read_run, to_anndata  # noqa: E402
from sim.export.command import add_parser, main  # noqa: E402
from sim.runs.run import run_one  # noqa: E402

SMALL_RUN = {"domain.nx": 60, "domain.ny": 60, "initial.tumor_radius_um": 300.0,
             "initial.neutrophils_per_mm2_tumor": 300.0}
SEED = 5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(params, RunResult, folder) of the shared small run."""
    params = load_params(overrides=SMALL_RUN)
    result = run_one(params, SEED, days=0.5)
    folder = tmp_path_factory.mktemp("export") / "run"
    result.write(folder)
    return params, result, folder


@pytest.fixture(scope="module")
def agents(run):
    return to_anndata(read_run(run[2]))


@pytest.fixture(scope="module")
def cells(run):
    """A virtual experiment of 80% of the capturable cells."""
    r = read_run(run[2])
    n = int(0.8 * len(scrna.capturable(r)))
    return scrna.virtual_experiment(r, n, seed=11)


def export(*argv: str) -> int:
    """``neutrosim export`` with these arguments, through :func:`main`."""
    parser = argparse.ArgumentParser(prog="neutrosim")
    add_parser(parser.add_subparsers())
    return main(parser.parse_args(["export", *argv]))


def kinds(final) -> np.ndarray:
    return np.array([str(k) for k in final["kind_names"]])[final["agent_kind"]]


# --- final_state.npz --------------------------------------------------------------------

def test_bound_neutrophils_point_at_a_touching_tumor_cell(run):
    f = run[1].final
    kind = kinds(f)
    neut = np.flatnonzero(kind == "neutrophils")
    partner = f["neutrophil_partner"]
    assert partner.dtype == np.int64 and len(partner) == len(neut)
    bound = f["agent_state"][neut] == 2
    assert bound.sum() >= 5  # the run has bonds to check
    assert (partner[~bound] == -1).all()
    held = partner[bound]
    assert (kind[held] == "tumor").all()
    chebyshev = np.maximum(np.abs(f["agent_x"][held] - f["agent_x"][neut[bound]]),
                           np.abs(f["agent_y"][held] - f["agent_y"][neut[bound]]))
    assert (chebyshev <= 1).all()


def test_tumor_in_cycle_matches_the_ki67_readout(run):
    f, last = run[1].final, run[1].timeseries.iloc[-1]
    in_cycle = f["tumor_in_cycle"]
    assert in_cycle.dtype == bool and len(in_cycle) == (kinds(f) == "tumor").sum()
    assert in_cycle.sum() > 0
    assert in_cycle.sum() == round(last["proliferation_index"] * last["tumor_cells"])


# --- AnnData of the agents ----------------------------------------------------------------

def test_counts_per_cell_type_and_state_equal_the_final_state(run, agents):
    f = run[1].final
    got = agents.obs.groupby(["cell_type", "state"], observed=True).size()
    names = {"tumor": "tumor", "neutrophils": "neutrophil", "macrophages": "macrophage",
             "endothelial": "endothelial"}
    for k, kind in enumerate(f["kind_names"]):
        states = str(f["state_names"][k]).split(",")
        counts = np.bincount(f["agent_state"][f["agent_kind"] == k], minlength=len(states))
        for s, c in zip(states, counts):
            assert got.get((names[str(kind)], s), 0) == c, (kind, s)
    assert agents.n_obs == len(f["agent_kind"])
    assert agents.obs["in_cycle"].sum() == f["tumor_in_cycle"].sum()
    assert agents.obs["perfused"].sum() == f["vessel_perfused"].sum()
    assert agents.obs["invasive"].sum() == f["invasive"].sum()
    assert (agents.obs["time"] == float(f["time_h"])).all()


def test_positions_are_voxel_centres_in_um(run, agents):
    f, voxel = run[1].final, run[0].domain.voxel_um
    xy = agents.obsm["spatial"]
    np.testing.assert_array_equal(xy[:, 0], (f["agent_x"] + 0.5) * voxel)
    np.testing.assert_array_equal(xy[:, 1], (f["agent_y"] + 0.5) * voxel)
    assert 0 < xy.min() and xy.max() < run[0].domain.nx * voxel


def test_bonds_are_symmetric_and_are_the_bound_neutrophils(run, agents):
    f = run[1].final
    bonds = agents.obsp["bonds"]
    assert (bonds != bonds.T).nnz == 0
    neut = np.flatnonzero(kinds(f) == "neutrophils")
    holder = neut[f["neutrophil_partner"] >= 0]
    expected = {(int(a), int(b)) for a, b in zip(holder, f["neutrophil_partner"][holder - neut[0]])}
    rows, cols = bonds.nonzero()
    got = {(int(a), int(b)) for a, b in zip(rows, cols) if agents.obs["cell_type"].iloc[a] == "neutrophil"}
    assert got == expected and len(expected) == (agents.obs["state"] == "bound").sum()
    assert "bonds" in agents.uns


def test_x_holds_the_fields_at_each_cell(run, agents):
    f = run[1].final
    assert list(agents.var_names) == ["oxygen", "chemoattractant", "proangiogenic",
                                      "proinvasive", "tumor_signal"]
    assert agents.var.loc["oxygen", "unit"] == "mmHg"
    for j, name in enumerate(agents.var_names):
        np.testing.assert_array_equal(agents.X[:, j], f[f"field_{name}"][f["agent_x"], f["agent_y"]])


def test_uns_carries_the_provenance(run, agents):
    params, result, folder = run
    u = agents.uns
    assert u["seed"] == SEED and u["params_digest"] == params.digest()
    assert u["time_h"] == pytest.approx(12.0) and u["voxel_um"] == params.domain.voxel_um
    assert u["run_dir"] == str(folder.resolve()) and u["stage"] == "advanced"
    assert "final state only" in u["snapshots"]


# --- the virtual single-cell experiment ---------------------------------------------------

def test_the_experiment_has_n_integer_barcodes_and_its_obs(run, cells):
    r = read_run(run[2])
    assert cells.n_obs == int(0.8 * len(scrna.capturable(r)))
    assert cells.X.format == "csr" and np.issubdtype(cells.X.dtype, np.integer)
    assert (cells.X.data > 0).all()
    assert len(np.unique(cells.obs["sim_agent"])) == cells.n_obs  # without replacement
    assert set(cells.obs["stage"]) == {"advanced"} and set(cells.obs["sample"]) == {f"seed{SEED}"}
    dead = np.isin(r.state_name[cells.obs["sim_agent"]], ["necrotic", "apoptotic"])
    assert not dead.any()


def test_doublets_are_the_sampled_bound_neutrophils(run, cells):
    r = read_run(run[2])
    sampled = cells.obs["sim_agent"].to_numpy()
    bound = r.partner[sampled] >= 0
    assert bound.sum() >= 3
    doublet = (cells.obs["pic_pair"] == "tumor").to_numpy()
    np.testing.assert_array_equal(doublet, bound)
    assert (cells.obs["cell_type"][doublet] == "neutrophil").all()
    np.testing.assert_array_equal(cells.obs["sim_partner"].to_numpy()[doublet], r.partner[sampled[bound]])
    assert cells.uns["virtual_scrna"]["doublets"] == bound.sum()
    # a doublet carries its partner's tumor identity on top of the neutrophil's
    krt8 = cells[:, "Krt8"].X.toarray().ravel()
    singlet_neut = ((cells.obs["cell_type"] == "neutrophil") & ~doublet).to_numpy()
    assert krt8[doublet].mean() > 10 * max(krt8[singlet_neut].mean(), 0.1)


def test_cycling_fraction_of_sampled_tumor_cells_is_the_runs(run, cells):
    f = run[1].final
    viable = np.isin(f["agent_state"][kinds(f) == "tumor"], [0, 1])
    p = f["tumor_in_cycle"].sum() / viable.sum()
    tumor = ((cells.obs["cell_type"] == "tumor") & (cells.obs["pic_pair"] == "")).to_numpy()
    n = tumor.sum()
    frac = cells.obs["sim_in_cycle"].to_numpy()[tumor].mean()
    assert abs(frac - p) <= 4 * np.sqrt(p * (1 - p) / n)  # binomial (without replacement: less)
    # and the counts show it: the cycling programme is higher in the cells in cycle
    sub = cells[tumor]
    genes = [g for s in scrna.load_expression().states if s.name == "tumor_cycling" for g in s.genes]
    x = sub[:, genes].X.toarray() / np.asarray(sub.X.sum(axis=1)) * 1e4
    score = np.log1p(x).mean(axis=1)
    in_cycle = sub.obs["sim_in_cycle"].to_numpy()
    assert score[in_cycle].mean() > score[~in_cycle].mean() + 1.0


def test_library_sizes_centre_on_the_planted_medians(cells):
    expr = scrna.load_expression()
    library = np.asarray(cells.X.sum(axis=1)).ravel()
    singlet = (cells.obs["pic_pair"] == "").to_numpy()
    for cell_type, median in expr.library_median.items():
        rows = singlet & (cells.obs["cell_type"] == cell_type).to_numpy()
        n = rows.sum()
        if n < 20:
            continue
        # standard error of a median of log-normal draws, in log units, x 4 (plus 5% for the
        # negative-binomial spread of the sum)
        tolerance = 4 * 1.2533 * expr.library_sigma / np.sqrt(n) + 0.05
        assert abs(np.log(np.median(library[rows]) / median)) < tolerance, cell_type


def test_touching_pairs_are_doublets_only_when_asked(run):
    r = read_run(run[2])
    n = len(scrna.capturable(r))
    never = scrna.virtual_experiment(r, n, seed=1, touch_doublets=0.0)
    always = scrna.virtual_experiment(r, n, seed=1, touch_doublets=1.0)
    neut = r.rows_of("neutrophil")
    touching = [a for a in neut if r.partner[a] < 0 and len(scrna.touching_tumor(r, a))]
    bound = (r.partner[neut] >= 0).sum()
    assert len(touching) > 0
    assert (never.obs["pic_pair"] == "tumor").sum() == bound
    assert (always.obs["pic_pair"] == "tumor").sum() == bound + len(touching)


def test_same_run_n_and_seed_give_the_same_file(run, tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert export(str(run[2]), "--scrna", "300", "--seed", seed,
                      "--out-counts", str(tmp_path / f"{name}.h5ad"), "--quiet") == 0
    a, b, c = (anndata.read_h5ad(tmp_path / f"{n}.h5ad") for n in "abc")
    assert (a.X != b.X).nnz == 0 and a.obs.equals(b.obs)
    assert (tmp_path / "a.h5ad").read_bytes() == (tmp_path / "b.h5ad").read_bytes()
    assert (a.X != c.X).nnz > 0


# --- the command --------------------------------------------------------------------------

def test_the_command_writes_agents_counts_and_mapping(run, tmp_path, capsys):
    out = tmp_path / "sub" / "run.h5ad"
    assert export(str(run[2]), "--anndata", str(out), "--scrna", "200") == 0
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "run.h5ad", "run.scrna.h5ad", "run.scrna.mapping.toml"]
    back = anndata.read_h5ad(out)
    assert back.obsp["bonds"].nnz > 0 and back.obs["cell_type"].dtype == "category"
    mapping = tomllib.loads((out.parent / "run.scrna.mapping.toml").read_text())
    counts = anndata.read_h5ad(out.parent / "run.scrna.h5ad")
    for key in ("cell_type_key", "stage_key", "sample_key", "doublet_key"):
        assert mapping[key] in counts.obs
    assert mapping["reference_stage"] == "early" and mapping["stages"]["advanced"] == "advanced"
    assert set(mapping["cell_types"]) == set(counts.obs["cell_type"].cat.categories)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "not_a_run", "exists", "too_many", "nothing"])
def test_bad_input_is_one_message_and_exit_2(run, tmp_path, capsys, case):
    out = tmp_path / "out.h5ad"
    argv = {
        "missing": [str(tmp_path / "nope"), "--anndata", str(out)],
        "not_a_run": [str(tmp_path), "--anndata", str(out)],
        "exists": [str(run[2]), "--anndata", str(run[2] / "manifest.json")],
        "too_many": [str(run[2]), "--anndata", str(out), "--scrna", "100000"],
        "nothing": [str(run[2])],
    }[case]
    named = {"missing": "nope", "not_a_run": str(tmp_path), "exists": "manifest.json",
             "too_many": str(run[2]), "nothing": "--anndata"}[case]
    assert export(*argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neutrosim: error: ") and named in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("n", ["0", "-3", "1.5", "many"])
def test_n_must_be_a_positive_whole_number(run, tmp_path, capsys, n):
    with pytest.raises(SystemExit) as exc:
        export(str(run[2]), "--anndata", str(tmp_path / "x.h5ad"), "--scrna", n)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--scrna" in err and "Traceback" not in err


def test_a_failed_export_leaves_no_file(run, tmp_path, monkeypatch):
    def fail(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scrna, "mapping_toml", fail)
    assert export(str(run[2]), "--anndata", str(tmp_path / "a.h5ad"), "--scrna", "50") == 1
    assert list(tmp_path.iterdir()) == []


# --- the expression model ---------------------------------------------------------------

def test_the_panel_holds_every_programme_gene_and_axis_gene():
    expr = scrna.load_expression()
    sums = expr.baseline.sum(axis=1)
    assert ((sums > 9000) & (sums < 11000)).all()  # housekeeping carries the rest
    assert (expr.roles[expr.roles == "housekeeping"].index.size >= 10)
    folder = params_dir() / "calibration"
    if not (folder / "programmes.toml").is_file() or not (folder / "axes.toml").is_file():
        pytest.skip("params/calibration/programmes.toml or axes.toml not present")
    ambient = expr.baseline.min().min()
    raised = {s.name: set(s.genes) for s in expr.states}
    for name, prog in tomllib.loads((folder / "programmes.toml").read_text()).items():
        assert set(prog["genes"]) <= raised[name], name
        assert (expr.baseline.loc[prog["cell_type"], prog["genes"]] > ambient).all(), name
    for name, axis in tomllib.loads((folder / "axes.toml").read_text()).items():
        for ligand, receptor in axis["pairs"]:
            for sender in axis["senders"]:
                assert expr.baseline.loc[sender, ligand] > ambient, (name, ligand, sender)
            for subunit in receptor:
                assert expr.baseline.loc[axis["receiver"], subunit] > ambient, (name, subunit)
