"""The `neutrosim` command as a user meets it: outputs, errors, nothing half-written."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--grid", "60", "60", "--set", "initial.tumor_radius_um=200", "--days", "0.5", "--quiet"]


def test_run_writes_every_output(tmp_path):
    out = tmp_path / "demo"
    assert main(["run", "--seed", "3", "--out", str(out), "--threads", "2", *TINY]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"timeseries.csv", "timeseries.parquet", "final_state.npz", "final_state.png",
                     "manifest.json"}
    csv = pd.read_csv(out / "timeseries.csv")
    pq = pd.read_parquet(out / "timeseries.parquet")
    pd.testing.assert_frame_equal(csv, pq, check_dtype=False)
    assert list(csv["time_h"]) == [0.0, 6.0, 12.0]
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 3 and man["scenario"] == "control"
    assert man["parameters"]["domain"]["nx"] == 60
    assert {"mesa", "numpy", "numba", "python"} <= set(man["versions"])
    assert man["git_revision"] and man["wall_time_s"] > 0 and len(man["rules"]) >= 15
    assert man["field_threads"] == 2
    state = np.load(out / "final_state.npz")
    assert state["field_oxygen"].shape == (60, 60)
    assert len(state["agent_x"]) == len(state["agent_kind"]) == len(state["agent_state"])
    png = (out / "final_state.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "tumor.bogus=1"], ["unknown key 'tumor.bogus'"]),
        (["--set", "neutrophil.chemotaxis_bias=2"], ["neutrophil.chemotaxis_bias", "[0.0, 1.0]"]),
        (["--params", "no/such.toml"], ["no/such.toml", "not found"]),
        (["--scenario", "cure"], ["unknown scenario 'cure'"]),
        (["--grid", "5", "5"], ["domain.nx", "[20, 4000]"]),
    ],
)
def test_bad_input_one_message_no_traceback_nothing_written(tmp_path, args, words):
    out = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "sim", "run", "--out", str(out), "--quiet",
                           *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("neutrosim: error:") and proc.stderr.count("\n") == 1
    for w in words:
        assert w in proc.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind either


def test_existing_output_is_refused_then_replaced_with_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["run", "--out", str(out), *TINY]) == 2
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["run", "--out", str(out), "--overwrite", *TINY]) == 0
    assert not (out / "keep.txt").exists() and (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    from sim import run as run_mod

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(np, "savez_compressed", boom)
    out = tmp_path / "x"
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(["run", "--out", str(out), *TINY])
    assert list(tmp_path.iterdir()) == []
    assert run_mod  # the module under test


def test_help_documents_the_options():
    proc = subprocess.run([sys.executable, "-m", "sim", "run", "--help"], capture_output=True,
                          text=True)
    for opt in ("--days", "--seed", "--out", "--params", "--set", "--scenario", "--grid",
                "--record-every", "--threads", "--quiet"):
        assert opt in proc.stdout


def test_wheel_ships_the_default_parameters(tmp_path):
    """The defaults work from an installed package, not only from a checkout."""
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("neutrosim-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("sim/_defaults/default.toml", "sim/_defaults/rules.csv",
              "sim/_defaults/scenarios/depletion.toml"):
        assert f in names
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True)
    probe = subprocess.run(
        [sys.executable, "-c", "import sim, sim.params as p; print(p.params_dir()); "
         "print(sim.load_params(scenario='depletion').intervention.neutrophil_depletion)"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""})
    assert probe.returncode == 0, probe.stderr
    where, eff = probe.stdout.split()
    assert where.startswith(str(site)) and float(eff) > 0
