"""`neutrosim deplete`: clear errors before any run, the paired design, kill and resume,
the outputs, and the notebook that reads them (executed here, as in CI)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from tests.conftest import execute_notebook, images

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--set", "domain.nx=60", "--set", "domain.ny=60", "--set", "initial.tumor_radius_um=250"]
SETUP = ["--replicates", "3", "--days", "2", "--start-day", "1", *SMALL]


@pytest.mark.parametrize("argv, message", [
    (["--arms", "control,bogus"], "unknown arm 'bogus'; allowed: contact_blockade, control"),
    (["--arms", "depletion"], "needs 'control'"),
    (["--arms", "control,depletion,control"], "listed twice"),
    (["--efficiency", "1.5"], "--efficiency 1.5: out of range; allowed [0, 1]"),
    (["--days", "3", "--start-day", "5"], "use --days > --start-day"),
    (["--set", "tumor.no_such_key=1"], "unknown key 'tumor.no_such_key'"),
    (["--set", "neutrophil.lifespan_naive_day=-3"], "out of range"),
    (["--params", "missing.toml"], "missing.toml: file not found"),
    (["--replicates", "1"], "must be a whole number >= 2"),
])
def test_bad_options_give_one_clear_error_and_write_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main(["deplete", *argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_unparseable_option_values_are_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["deplete", "--workers", "0", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "must be >= 1" in capsys.readouterr().err


def test_existing_folder_needs_resume(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("user data")
    assert main(["deplete", *SETUP, "--out", str(tmp_path), "--quiet"]) == 2
    assert "use --resume" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "sim", "deplete", *args]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """An experiment killed after two runs (SIGKILL to its process group), then resumed."""
    out = tmp_path_factory.mktemp("depletion") / "exp"
    proc = subprocess.Popen(_cli(*SETUP, "--workers", "1", "--out", str(out), "--quiet"),
                            cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while len(list((out / "runs").glob("*.parquet"))) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no run finished in 10 minutes"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.parquet")}
    left_behind = sorted(p.name for p in out.iterdir())
    gone = proc.pid  # what a kill mid-write leaves: temporaries of a process that has ended
    for folder, name in ((out / "runs", "control-r02.parquet"), (out / "final", "x.npz"),
                         (out, "runs.parquet")):
        folder.mkdir(exist_ok=True)
        (folder / f".{name}.{gone}-0badcafe.tmp").write_bytes(b"half")
    done = subprocess.run(_cli("--resume", "--out", str(out), "--quiet"), cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return out, before, left_behind


@pytest.mark.experiment
def test_killed_experiment_resumes_without_losing_or_duplicating_runs(resumed):
    out, before, left_behind = resumed
    assert "summary.csv" not in left_behind and "report.md" not in left_behind
    parts = sorted(p.name for p in (out / "runs").glob("*.parquet"))
    assert parts == [f"{a}-r0{r}.parquet" for a in ("control", "depletion") for r in range(3)]
    for name, mtime in before.items():  # finished runs were kept, not redone
        assert (out / "runs" / name).stat().st_mtime_ns == mtime
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs_resumed_from_disk"] == len(before)
    assert manifest["runs_this_call"] == 6 - len(before)
    runs = pd.read_parquet(out / "runs.parquet")
    assert not runs.duplicated(["arm", "replicate", "time_h"]).any()
    assert len(runs) == 6 * runs["time_h"].nunique()
    csv = pd.read_csv(out / "runs.csv")
    assert len(csv) == len(runs)
    # no temporary survives the resume: neither the planted ones nor any the kill left
    assert not [p for p in out.rglob("*") if p.name.endswith((".tmp", ".partial", ".old"))]


@pytest.mark.experiment
def test_arms_are_paired_by_seed_and_identical_before_treatment(resumed):
    out, _, _ = resumed
    runs = pd.read_parquet(out / "runs.parquet")
    seeds = runs.groupby(["arm", "replicate"])["seed"].first().unstack("arm")
    assert (seeds["control"] == seeds["depletion"]).all()
    assert list(seeds["control"]) == [1, 2, 3]
    pre = runs[runs["time_h"] < 24.0]
    c, d = (pre[pre["arm"] == a].drop(columns=["arm", "params_digest"]).reset_index(drop=True)
            for a in ("control", "depletion"))
    pd.testing.assert_frame_equal(c, d, check_exact=True)
    summary = pd.read_csv(out / "summary.csv")
    start = summary[(summary["time_point"] == "treatment_start") & (summary["arm"] == "depletion")]
    assert (start["change_pct"] == 0).all() and (start["p_wilcoxon"] == 1).all()
    # depletion removes 90% of the neutrophils from day 1 on, in every pair
    end = runs[runs["time_h"] == runs["time_h"].max()].pivot(index="replicate", columns="arm",
                                                               values="neutrophils")
    assert (end["depletion"] < end["control"]).all()


@pytest.mark.experiment
def test_outputs_figures_report_and_manifest(resumed):
    out, _, _ = resumed
    for name in ("growth_curves", "endpoint_panels", "final_snapshots"):
        for ext in ("png", "svg"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["time_point"]) == {"treatment_start", "endpoint"}
    assert {"mean", "sd", "ci95_low", "ci95_high", "change_pct", "change_ci95_low",
            "change_ci95_high", "p_wilcoxon", "effect_size_dz", "n_for_80pct_power"} <= set(summary)
    report = (out / "report.md").read_text()
    assert "Arms: control, depletion; 3 paired replicates" in report
    assert "figures/growth_curves.png" in report and "Readouts against the study" in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seeds"] == [1, 2, 3]
    assert manifest["arms"]["depletion"]["intervention"]["neutrophil_depletion"] == 0.9
    assert manifest["arms"]["depletion"]["intervention"]["start_day"] == 1.0


@pytest.mark.experiment
@pytest.mark.notebooks
def test_notebook_reproduces_the_main_figure_from_the_folder(resumed, monkeypatch):
    out, _, _ = resumed
    outputs = execute_notebook("depletion.ipynb", monkeypatch, NEUTROSIM_RESULTS=str(out))
    assert len(images(outputs)) == 2  # growth curves and endpoint panels
    text = "".join(o.get("text", "") for o in outputs)
    assert str(out) in text and "3 paired replicates" in text


def test_report_verdicts_follow_direction_significance_and_the_studys_standing():
    from sim.experiments.report import verdict

    assert verdict(-40.0, -45.0, -35.0, 0.0078, "down") == "agrees with the study"
    assert verdict(-40.0, -45.0, -35.0, 0.0078, "down", "implied").startswith("agrees with what")
    assert verdict(-5.0, -12.0, 3.0, 0.2, "down").startswith("same direction as expected, but not")
    assert verdict(20.0, 10.0, 30.0, 0.0078, "down") == \
        "disagrees with the study (opposite direction, significant)"
    assert verdict(0.0, 0.0, 0.0, 1.0, "down").startswith("does not reproduce")
    assert verdict(30.0, 20.0, 40.0, 0.0078, None).startswith("no study statement")


def test_arms_the_study_did_not_test_are_predictions_never_agreements():
    from sim.experiments.report import TESTED_ARMS, verdict

    assert TESTED_ARMS == {"depletion"}
    for change, lo, hi, p in ((-40.0, -45.0, -35.0, 0.0078), (20.0, 10.0, 30.0, 0.0078),
                              (-5.0, -12.0, 3.0, 0.2)):
        said = verdict(change, lo, hi, p, "down", tested=False)
        assert said.startswith("prediction:") and "agrees" not in said
    assert "same direction as the study's depletion result" in verdict(
        -40.0, -45.0, -35.0, 0.0078, "down", tested=False)
    assert "opposite direction to" in verdict(20.0, 10.0, 30.0, 0.0078, "down", tested=False)


def test_a_rules_file_reaches_every_arm_and_the_record(tmp_path):
    from sim.experiments.depletion import DepletionSetup
    from tests.conftest import planted_rules

    path = planted_rules(tmp_path, neutrophil__tumor_contact__increases__binding=0.01)
    setup = DepletionSetup(rules_file=str(path))
    for p in setup.arm_params().values():
        assert p.rules.path == str(path)
        assert p.rules.max_value("neutrophil", "binding", 0.0) == 0.01
    assert DepletionSetup.from_dict(setup.to_dict(), "x") == setup


def test_a_stage_reaches_every_arm():
    from sim.experiments.depletion import DepletionSetup

    params = DepletionSetup(stage="early", days=20).arm_params()
    assert {p.initial.stage for p in params.values()} == {"early"}
    assert {p.time.days for p in params.values()} == {20.0}  # the option wins over the preset
    assert {p.initial.tumor_radius_um for p in params.values()} == {100.0}


@pytest.mark.experiment
def test_arms_branching_from_a_shared_state_give_the_same_results(tmp_path):
    """The arms of a replicate simulate the days before the treatment once and continue
    from a saved state; every table and final state equals the arms run straight through
    (four arms, so the shared stretch serves three branches)."""
    import numpy as np

    from sim.experiments.depletion import DepletionSetup, run_depletion
    from sim.runs.ensemble import RunSpec, branch_groups, load_final

    setup = DepletionSetup(arms=("control", "depletion", "cxcr2_inhibition", "contact_blockade"),
                           replicates=2, days=1.5, start_day=0.5,
                           sets=(("domain.nx", "40"), ("domain.ny", "40"),
                                 ("initial.tumor_radius_um", "200")))
    specs = setup.specs()
    groups = branch_groups(specs)
    assert sorted(len(g) for g in groups) == [4, 4]  # one group a replicate
    other_seeds = [RunSpec("a", specs[0].params, 1), RunSpec("b", specs[1].params, 2)]
    assert [len(g) for g in branch_groups(other_seeds)] == [1, 1]  # nothing to share
    runs = {}
    for branch in (True, False):
        out = tmp_path / f"branch_{branch}"
        run_depletion(setup, out, workers=1, progress=False, branch=branch)
        runs[branch] = out
    a, b = (pd.read_parquet(out / "runs.parquet") for out in runs.values())
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for spec in specs:
        fa, fb = load_final(runs[True], spec.key), load_final(runs[False], spec.key)
        assert (fa is None) == (fb is None)
        if fa is not None:
            assert fa.keys() == fb.keys()
            assert all(np.array_equal(fa[k], fb[k]) for k in fa)
