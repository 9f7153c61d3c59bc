"""The `neutrosim` command as a user meets it: outputs, errors, nothing half-written."""

import json
import os
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
    assert man["field_threads"] == 2 and man["field_threads_steps"] == {"2": man["steps"]}
    state = np.load(out / "final_state.npz")
    assert state["field_oxygen"].shape == (60, 60)
    assert len(state["agent_x"]) == len(state["agent_kind"]) == len(state["agent_state"])
    png = (out / "final_state.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


_RULES = (ROOT / "params" / "rules.csv").read_text().splitlines()
_BAD_RULE = "\n".join([_RULES[0], _RULES[1].replace(",1,1,", ",0,1,", 1), *_RULES[2:]])  # half_max 0


@pytest.mark.parametrize(
    "args, words, files",
    [
        (["--set", "tumor.bogus=1"], ["unknown key 'tumor.bogus'"], {}),
        (["--set", "neutrophil.chemotaxis_bias=2"], ["neutrophil.chemotaxis_bias", "[0.0, 1.0]"], {}),
        (["--set", "neutrophil.chemotaxis_bias=strong"], ["chemotaxis_bias", "expected a number"], {}),
        (["--set", "oxygen.tumor_uptake_per_min=-1"], ["oxygen.tumor_uptake_per_min", "out of range"], {}),
        (["--set", "tumor.migration_speed_um_per_min=5"],
         ["--set tumor.migration_speed_um_per_min=5: time.dt_min = 6.0 is too long", "<= 4"], {}),
        (["--params", "no/such.toml"], ["no/such.toml", "not found"], {}),
        (["--params", "{in}/bad.toml"], ["bad.toml", "not valid TOML"], {"bad.toml": b"x = [\n"}),
        (["--params", "{in}/latin1.toml"], ["latin1.toml", "not a UTF-8"],
         {"latin1.toml": b"# caf\xe9\n"}),
        # a bad value in the file is blamed on the file, not on the --grid given beside it
        (["--params", "{in}/mine.toml", "--grid", "60", "60", "--record-every", "12"],
         ["mine.toml: neutrophil.chemotaxis_bias = 2.0", "[0.0, 1.0]"],
         {"mine.toml": b"[neutrophil]\nchemotaxis_bias = 2.0\n"}),
        (["--rules", "{in}"], ["is a folder"], {}),
        (["--rules", "{in}/rules.csv"], ["rules.csv", "row 2", "half_max"],
         {"rules.csv": _BAD_RULE.encode()}),
        (["--set", "chemoattractant.boundary=open"],
         ["chemoattractant.boundary = 'open'", "allowed 'dirichlet', 'noflux'"], {}),
        (["--scenario", "cure"], ["unknown scenario 'cure'"], {}),
        (["--grid", "5", "5"], ["--grid 5 5: domain.nx = 5", "[20, 4000]"], {}),
        (["--record-every", "0.25"], ["--record-every 0.25: time.record_every_h"], {}),
        (["--out", "{in}/a_file"], ["a_file: exists and is not a folder"], {"a_file": b"x"}),
        (["--out", "{in}/a_file/run"], ["a_file is not a writable folder"], {"a_file": b"x"}),
    ],
)
def test_bad_input_one_message_no_traceback_nothing_written(tmp_path, args, words, files):
    inputs, work = tmp_path / "in", tmp_path / "work"
    inputs.mkdir()
    work.mkdir()
    for name, data in files.items():
        (inputs / name).write_bytes(data)
    out = work / "never"
    args = [a.replace("{in}", str(inputs)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "sim", "run", "--out", str(out), "--quiet",
                           *args], capture_output=True, text=True, cwd=work)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("neutrosim: error:") and proc.stderr.count("\n") == 1
    for w in words:
        assert w in proc.stderr
    assert "--set" not in proc.stderr or "--set" in args
    assert not out.exists()
    assert list(work.iterdir()) == []  # no temporary folder left behind either
    assert sorted(p.name for p in inputs.iterdir()) == sorted(files)  # inputs untouched


def test_negative_seed_is_refused_by_the_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sim", "run", "--seed", "-1", "--out",
                           str(tmp_path / "never")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--seed: must be >= 0, got -1" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_run_is_refused_then_replaced_with_overwrite(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--seed", "1", *TINY]) == 0
    first = json.loads((out / "manifest.json").read_text())
    assert main(["run", "--out", str(out), "--seed", "2", *TINY]) == 2
    assert json.loads((out / "manifest.json").read_text()) == first
    assert main(["run", "--out", str(out), "--seed", "2", "--overwrite", *TINY]) == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left beside it


def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch):
    from sim.runs import run as run_mod

    written = []  # what the run had written when the write failed

    def boom(*a, **k):
        written.extend(sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")))
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(run_mod, "write_npz", boom)  # what sim.runs.run writes the npz with
    out = tmp_path / "x"
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(["run", "--out", str(out), *TINY])
    # it failed mid-write: the time series were written by then (into a temporary folder
    # beside --out, not into --out), and neither they nor the folder were left behind
    assert {w.rsplit("/", 1)[-1] for w in written} >= {"timeseries.csv", "timeseries.parquet"}
    assert "x" not in written
    assert list(tmp_path.iterdir()) == []


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
        [sys.executable, "-c", "import sim, sim.config.params as p; print(p.params_dir()); "
         "print(sim.load_params(scenario='depletion').intervention.neutrophil_depletion)"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""})
    assert probe.returncode == 0, probe.stderr
    where, eff = probe.stdout.split()
    assert where.startswith(str(site)) and float(eff) > 0
    # an installed copy inside somebody's checkout does not claim that checkout's commit
    repo = tmp_path / "checkout"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(repo / "site"), str(wheel)], check=True)
    probe = subprocess.run([sys.executable, "-c",
                            "import sim.runs.provenance as p; print(p.git_revision())"],
                           capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(repo / "site")})
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("unknown (an installed copy")


def test_same_seed_writes_identical_files_different_seed_does_not(tmp_path):
    """Bit-identical reruns, judged on the files a user gets (not only the tables)."""
    outs = {}
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        outs[name] = tmp_path / name
        assert main(["run", "--seed", str(seed), "--out", str(outs[name]), *TINY]) == 0
    csv = {k: (p / "timeseries.csv").read_bytes() for k, p in outs.items()}
    assert csv["a"] == csv["b"] and csv["a"] != csv["c"]
    a, b = np.load(outs["a"] / "final_state.npz"), np.load(outs["b"] / "final_state.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_final_state_picture_has_legend_scale_bar_and_colour_bar(tmp_path):
    """The picture's guides, read off the figure: every legend entry, a 1 mm bar of the
    right length in voxels, a colour bar with units, and tumor voxels painted in place."""
    from matplotlib.colors import to_rgba
    from matplotlib.offsetbox import AnchoredOffsetbox

    from sim import run_one
    from sim.config.params import load_params
    from sim.plots.state import STYLE, plot_final_state

    params = load_params(overrides={"domain.nx": 60, "domain.ny": 60, "time.days": 0.25,
                                    "initial.tumor_radius_um": 200.0})
    state = run_one(params, 2).final
    fig = plot_final_state(state, "oxygen")
    ax, cbar_ax = fig.axes[0], fig.axes[1]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [label for label, _ in STYLE.values()]
    bars = [a for a in ax.artists if isinstance(a, AnchoredOffsetbox)]
    assert len(bars) == 1
    bar, label = bars[0].get_child().get_children()  # the bar above its label
    (rect,) = bar.get_children()
    assert rect.get_width() == pytest.approx(1000.0 / params.domain.voxel_um)  # 1 mm = 50 voxels
    assert label.get_text() == "1 mm"
    assert cbar_ax.get_ylabel() == "oxygen [mmHg]"
    kinds = [str(k) for k in state["kind_names"]]
    rows = np.flatnonzero(state["agent_kind"] == kinds.index("tumor"))
    plain = rows[(state["agent_state"][rows] == 0) & ~np.asarray(state["invasive"], dtype=bool)]
    vessel = np.zeros((60, 60), bool)  # vessels are drawn over the tumor cells they cross
    e = state["agent_kind"] == kinds.index("endothelial")
    vessel[state["agent_x"][e], state["agent_y"][e]] = True
    plain = plain[~vessel[state["agent_x"][plain], state["agent_y"][plain]]]
    assert plain.size > 50
    x, y = state["agent_x"][plain], state["agent_y"][plain]
    image = ax.get_images()[1].get_array()  # the agents' layer, over the field
    np.testing.assert_allclose(image[y, x], np.tile(to_rgba(STYLE[("tumor", 0)][1], 0.9),
                                                    (plain.size, 1)))
