"""Sweeps: spec validation, Sobol indices of a known function through the real runner and
analysis, a real Dask cluster equal to serial, Ctrl-C and resume, failures recorded."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.experiments.sensitivity import analyze
from sim.config.errors import ParameterError
from sim.experiments.sweep import load_spec, run_sweep
from sim.runs.ensemble import execute_run, load_failures, load_runs, part_meta
from sim.runs.executors import DaskExecutor, ProcessExecutor, SerialExecutor
from tests.conftest import execute_notebook, images
from tests.ishigami import INPUTS, ISHIGAMI_INDICES, OUTCOME, simulate_ishigami

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ROOT / "params" / "sweeps"
ISHIGAMI = Path(__file__).resolve().parent / "data" / "ishigami.toml"


def _write(tmp_path, text: str, name="spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """
[sweep]
design = "morris"
samples = 2
arms = ["control", "depletion"]
days = 1
[sweep.set]
"domain.nx" = 50
"domain.ny" = 50
"initial.tumor_radius_um" = 200.0
"intervention.start_day" = 0.5
[parameters]
"tumor.cycle_rate_per_min" = { low = 0.0002, high = 0.0004 }
"neutrophil.chemotaxis_bias" = { low = 0.1, high = 0.5 }
"""


@pytest.mark.parametrize("edit, message", [
    (('"tumor.cycle_rate_per_min"', '"tumor.cycle_rate"'), "unknown parameter (did you mean tumor.cycle_rate_per_min?)"),
    (("high = 0.0004", "high = 0.0002"), "empty range low = 0.0002, high = 0.0002"),
    (('design = "morris"', 'design = "montecarlo"'), "design = 'montecarlo': allowed: grid, lhs, sobol, morris"),
    (("samples = 2", "sampels = 2"), "unknown key(s) in [sweep]: ['sampels']"),
    (('arms = ["control", "depletion"]', 'arms = ["control", "deplete"]'), "arms: unknown ['deplete']"),
    (("high = 0.5 }", "high = 1.5 }"), "neutrophil.chemotaxis_bias range [0.1, 1.5]"),
    (("[parameters]", "[parameters]\n\"x\" = 3"), "unknown parameter"),
    (('design = "morris"', 'design = "sobol"\nlevels = 4'), None),  # samples = 2 is a power of 2: fine
    (('design = "morris"\nsamples = 2', 'design = "sobol"\nsamples = 3'), "needs a power of 2"),
    (("days = 1", "days = -1"), "days = -1: must be a number > 0"),
    (('design = "morris"', 'design = "morris"\nmodel = "ishigami"'), "unknown key(s) in [sweep]: ['model']"),
])
def test_malformed_specs_are_rejected_before_any_run(tmp_path, capsys, edit, message):
    spec = _write(tmp_path, GOOD.replace(*edit))
    out = tmp_path / "out"
    if message is None:
        assert load_spec(spec).design == "sobol"
        return
    assert main(["sweep", str(spec), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_missing_and_empty_specs(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.toml: file not found" in capsys.readouterr().err
    empty = _write(tmp_path, '[sweep]\ndesign = "lhs"\n')
    assert main(["sweep", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "[parameters] is empty" in capsys.readouterr().err


@pytest.mark.parametrize("text", [
    GOOD,
    # the sets alone are invalid (the default tumor does not fit 50 x 50 voxels), so every
    # point is loaded whole
    GOOD.replace('"initial.tumor_radius_um" = 200.0\n', "").split("[parameters]")[0]
    + '[parameters]\n"initial.tumor_radius_um" = { low = 150.0, high = 200.0 }\n',
])
def test_every_point_has_the_parameters_of_loading_it_whole(tmp_path, text):
    """Points are resolved from each arm's parameters (the files read once per arm): the
    values and digests must be those of loading defaults, scenario, sets and point at once."""
    spec = load_spec(_write(tmp_path, text))
    points = spec.points()
    for run in spec.run_specs():
        whole = spec.base_params(run.labels["arm"], points[run.labels["point"]])
        assert run.params.to_dict() == whole.to_dict() and run.digest == whole.digest()


def test_out_that_is_a_file_or_a_foreign_folder_is_refused_before_any_run(tmp_path, capsys):
    spec = _write(tmp_path, GOOD)
    (tmp_path / "a_file").write_text("x")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "a_file"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a_file: exists and is not a folder" in err and err.count("\n") == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "mine"), "--quiet"]) == 2
    assert "folder exists, is not empty and is not a sweep folder" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["keep.txt"]


@pytest.mark.experiment
def test_sobol_indices_of_ishigami_match_the_known_values(tmp_path):
    spec = load_spec(ISHIGAMI)
    assert [(f.name, f.low, f.high) for f in spec.factors] == list(INPUTS.values())
    with ProcessExecutor(2) as pool:
        report = run_sweep(spec, tmp_path, pool, progress=False, simulate=simulate_ishigami)
    assert len(report.done) == 512 * 5 and not report.failed
    table = analyze(tmp_path).set_index("parameter")
    for which in ("S1", "ST"):
        for name, known in ISHIGAMI_INDICES[which].items():
            est, conf = table.loc[name, which], table.loc[name, f"{which}_conf"]
            assert abs(est - known) <= conf, (which, name, est, known, conf)
    assert (tmp_path / "analysis" / f"indices_{OUTCOME}.svg").is_file()


def test_a_run_that_raises_is_recorded_and_the_rest_finish(tmp_path, monkeypatch):
    import tests.ishigami as tf

    real = tf.ishigami

    def broken(x1, x2, x3):
        if x1 > 3.0:
            raise FloatingPointError("planted")
        return real(x1, x2, x3)

    monkeypatch.setattr(tf, "ishigami", broken)
    spec = load_spec(_write(tmp_path, ISHIGAMI.read_text().replace("samples = 512", "samples = 16")))
    report = run_sweep(spec, tmp_path / "out", SerialExecutor(), progress=False,
                       simulate=simulate_ishigami)
    assert report.failed and len(report.done) + len(report.failed) == 80
    assert set(load_failures(tmp_path / "out")) == set(report.failed)
    assert all("planted" in e for e in report.failed.values())
    with pytest.warns(UserWarning, match="missing runs were not analysed"):
        assert analyze(tmp_path / "out").empty
    monkeypatch.setattr(tf, "ishigami", real)  # fixed: the same command finishes the sweep
    again = run_sweep(spec, tmp_path / "out", SerialExecutor(), progress=False,
                      simulate=simulate_ishigami)
    assert sorted(again.done) == sorted(report.failed) and not load_failures(tmp_path / "out")
    assert not analyze(tmp_path / "out").empty


def test_a_different_spec_over_the_same_folder_is_refused(tmp_path):
    spec = load_spec(_write(tmp_path, ISHIGAMI.read_text().replace("samples = 512", "samples = 2")))
    run_sweep(spec, tmp_path / "out", SerialExecutor(), progress=False, simulate=simulate_ishigami)
    other = load_spec(_write(tmp_path, ISHIGAMI.read_text().replace("samples = 512", "samples = 4"),
                             "other.toml"))
    with pytest.raises(Exception, match="holds a different sweep"):
        run_sweep(other, tmp_path / "out", SerialExecutor(), progress=False,
                  simulate=simulate_ishigami)
    with pytest.raises(Exception, match=r"holds a different sweep \(differs in \['model'\]\)"):
        run_sweep(spec, tmp_path / "out", SerialExecutor(), progress=False)  # the model itself


@pytest.mark.experiment
def test_interrupted_sweep_resumes_cleanly(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it), then the same command
    (the neutrosim command, its sweeps evaluating the Ishigami function)."""
    spec = _write(tmp_path, ISHIGAMI.read_text().replace("samples = 512", "samples = 256"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tests.ishigami", "sweep", str(spec), "--out", str(out),
           "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(list((out / "runs").glob("*.parquet"))) < 200:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    finished = {p.name for p in (out / "runs").glob("*.parquet")}
    assert 200 <= len(finished) < 1280, "interrupted partway"
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs_resumed_from_disk"] == len(finished)
    assert manifest["runs_this_call"] == 1280 - len(finished)
    runs = load_runs(out)
    assert len(runs) == 1280 and not runs.duplicated(["point", "arm", "replicate"]).any()
    assert not [p for p in out.rglob("*.tmp")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster():
    """A real scheduler and two single-threaded workers on loopback, as separate processes."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or "dask"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(1.0)
    for _ in range(2):
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                       "--no-dashboard"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=120)
    yield address, procs
    for p in reversed(procs):  # workers first, then the scheduler they would report to
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.mark.dask
def test_a_real_dask_cluster_gives_the_serial_results_bit_for_bit(tmp_path, dask_cluster):
    address, _ = dask_cluster
    spec = load_spec(_write(tmp_path, GOOD))
    with DaskExecutor(address) as ex:
        assert ex.workers == 2
        report = run_sweep(spec, tmp_path / "dask", ex, progress=False)
    assert not report.failed and len(report.done) == 2 * 3 * 2
    run_sweep(spec, tmp_path / "serial", SerialExecutor(), progress=False)
    a, b = load_runs(tmp_path / "dask"), load_runs(tmp_path / "serial")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    hosts = {part_meta(p)["host"] for p in (tmp_path / "dask" / "runs").glob("*.parquet")}
    assert len(hosts) == 2, hosts  # both worker processes ran some


@pytest.mark.dask
def test_runs_of_a_dask_worker_that_dies_are_rerun_elsewhere(tmp_path, dask_cluster):
    address, procs = dask_cluster
    spec = load_spec(_write(tmp_path, GOOD.replace("days = 1", "days = 2")))
    out = tmp_path / "out"
    with DaskExecutor(address) as ex:
        runs = ex.imap_unordered(execute_run, spec.run_specs())
        first = next(runs)  # a run finished: both workers are busy with others now
        procs[1].kill()     # one worker dies mid-run
        results = [first, *runs]
    assert len(results) == 12 and all(exc is None for _, _, exc in results)
    assert all(outcome.error is None for _, outcome, _ in results)
    run_sweep(spec, out, SerialExecutor(), progress=False)
    for _, outcome, _ in results:  # every run completed once, equal to the serial run
        serial = pd.read_parquet(out / "runs" / f"{outcome.key}.parquet")
        pd.testing.assert_frame_equal(outcome.table, serial, check_exact=True)


@pytest.mark.experiment
@pytest.mark.notebooks
def test_analysis_of_a_model_sweep_and_the_sensitivity_notebook(tmp_path, monkeypatch):
    out = tmp_path / "ci_small"
    assert main(["sweep", str(SWEEPS / "ci_small.toml"), "--out", str(out), "--workers", "2",
                 "--quiet"]) == 0
    assert main(["analyze", str(out)]) == 0
    ind = pd.read_csv(out / "analysis" / "indices.csv")
    assert set(ind["outcome"]) == {"tumor_cells", "tumor_cells:depletion_vs_control_pct",
                                   "vessel_density_per_mm2",
                                   "vessel_density_per_mm2:depletion_vs_control_pct"}
    # the tumor's own division rate must dominate its size at the endpoint
    size = ind[ind["outcome"] == "tumor_cells"].set_index("parameter")["mu_star"]
    assert size.idxmax() == "tumor.cycle_rate_per_min"
    outputs = execute_notebook("sensitivity.ipynb", monkeypatch, NEUTROSIM_SWEEP=str(out))
    assert len(images(outputs)) == 4  # one index chart per outcome
    assert "tumor_cells: tumor.cycle_rate_per_min" in "".join(o.get("text", "") for o in outputs)


def test_two_factor_grid_heatmap_shows_the_planted_response_surface(tmp_path):
    from sim.experiments.sensitivity import indices, plot_heatmap

    spec = load_spec(_write(tmp_path, GOOD.replace('design = "morris"', 'design = "grid"').replace(
        '{ low = 0.0002, high = 0.0004 }', '{ levels = [0.0002, 0.0003, 0.0004] }').replace(
        '{ low = 0.1, high = 0.5 }', '{ levels = [0.1, 0.5] }')))
    x = spec.design_matrix()
    assert x.shape == (6, 2)
    y = 1e4 * x[:, 0] + 10 * x[:, 1]  # planted: rises along both factors
    table = pd.DataFrame({"x:tumor.cycle_rate_per_min": x[:, 0],
                          "x:neutrophil.chemotaxis_bias": x[:, 1], "tumor_cells": y})
    image = plot_heatmap(table, spec, "tumor_cells").axes[0].images[0].get_array()
    assert image.shape == (2, 3)  # rows: chemotaxis bias levels; columns: cycle rate levels
    assert image[0, 0] == pytest.approx(2 + 1) and image[1, 2] == pytest.approx(4 + 5)
    ranges = indices(spec, x, y).set_index("parameter")["main_effect_range"]
    assert ranges["tumor.cycle_rate_per_min"] == pytest.approx(2.0)
    assert ranges["neutrophil.chemotaxis_bias"] == pytest.approx(4.0)


@pytest.mark.experiment
def test_latin_hypercube_with_rbd_fast_ranks_the_ishigami_inputs(tmp_path):
    spec = load_spec(_write(tmp_path, ISHIGAMI.read_text()
                            .replace('design = "sobol"', 'design = "lhs"')
                            .replace("samples = 512", "samples = 600")))
    run_sweep(spec, tmp_path / "out", SerialExecutor(), progress=False, simulate=simulate_ishigami)
    s1 = analyze(tmp_path / "out").set_index("parameter")["S1"]
    for name, known in ISHIGAMI_INDICES["S1"].items():
        assert abs(s1[name] - known) < 0.1, (name, s1[name], known)


def test_dotted_keys_read_as_the_quoted_ones(tmp_path):
    """TOML nests ``domain.nx = 50``; a spec means the same with and without quotes."""
    quoted = load_spec(_write(tmp_path, GOOD, "quoted.toml"))
    bare = GOOD.replace('"domain.nx"', "domain.nx").replace('"tumor.cycle_rate_per_min"',
                                                             "tumor.cycle_rate_per_min")
    assert bare != GOOD
    dotted = load_spec(_write(tmp_path, bare, "dotted.toml"))
    assert dotted.sets == quoted.sets and dotted.factors == quoted.factors
    assert dotted.sets["domain.nx"] == 50


def test_rules_from_the_spec_or_the_command_line(tmp_path):
    from tests.conftest import planted_rules

    for name, value in (("a", 0.01), ("b", 0.02)):
        (tmp_path / name).mkdir()
        planted_rules(tmp_path / name, neutrophil__tumor_contact__increases__binding=value).rename(
            tmp_path / f"{name}.csv")
    spec_path = _write(tmp_path, GOOD.replace("days = 1", 'days = 1\nrules = "a.csv"'))
    for rules, want in ((None, 0.01), (tmp_path / "b.csv", 0.02)):
        spec = load_spec(spec_path, rules=rules)
        binding = spec.base_params("control").rules.max_value("neutrophil", "binding", 0.0)
        assert binding == want


def test_a_rule_rows_saturation_is_a_sweep_factor(tmp_path):
    """A factor ``rules.CELL.BEHAVIOUR.DIRECTION`` sets that group's saturation at each
    point, in every arm; a misspelt one is refused when the spec loads."""
    text = GOOD.replace('"neutrophil.chemotaxis_bias" = { low = 0.1, high = 0.5 }',
                        '"rules.neutrophil.kill.increases" = { low = 0.0, high = 0.02 }')
    spec = load_spec(_write(tmp_path, text))
    runs = spec.run_specs()
    kills = {(r.labels["point"], r.labels["arm"]): r.params.rules.max_value("neutrophil", "kill", 0.0)
             for r in runs}
    for (point, arm), value in kills.items():
        assert value == spec.points()[point]["rules.neutrophil.kill.increases"]
        assert value == kills[(point, "control")]  # the same in every arm
    assert len(set(kills.values())) > 1
    with pytest.raises(ParameterError, match="unknown parameter.*did you mean rules.neutrophil.kill.increases"):
        load_spec(_write(tmp_path, text.replace("kill.increases", "kil.increases"), "bad.toml"))
