"""Checkpoints: a run split by a save and a load equals the straight run bit for bit (in
this process and in a new one, both source lags, one and two threads, across the
intervention's start), the command line's --checkpoint-every / --resume-from through a
SIGKILL, the Mesa side after a restore, and the refusals."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.config.errors import ParameterError
from sim.config.params import load_params
from sim.model.model import NeutroModel
from sim.runs import checkpoint as ckpt
from sim.runs.checkpoint import checkpoint_bytes, load_checkpoint, save_checkpoint
from sim.runs.snapshot import final_state
from tests.test_model import assert_arrays_match_agents

ROOT = Path(__file__).resolve().parent.parent
DT_DAYS = 6 / 1440  # one model step of the default time.dt_min, in days
#: a small tissue recorded every 5 steps; depletion from step 24
SMALL = {"domain.nx": 60, "domain.ny": 60, "initial.tumor_radius_um": 300.0,
         "time.record_every_h": 0.5, "intervention.start_day": 24 * DT_DAYS}
STEPS = 40  # the straight run


def small_params(lag: int = 1, **more):
    return load_params(scenario="depletion",
                       overrides={**SMALL, "time.source_lag_steps": lag,
                                  "time.days": STEPS * DT_DAYS, **more})


def run_steps(model: NeutroModel, steps: int) -> NeutroModel:
    model.set_end(steps * DT_DAYS)
    while model.running:
        model.step()
    return model


def assert_same_run(a: NeutroModel, b: NeutroModel) -> None:
    """Every final array equal, and the time series equal (DataFrame.equals)."""
    fa, fb = final_state(a), final_state(b)
    assert sorted(fa) == sorted(fb)
    for key in fa:
        assert np.array_equal(fa[key], fb[key]), key
    ta = a.datacollector.get_model_vars_dataframe()
    tb = b.datacollector.get_model_vars_dataframe()
    assert ta.equals(tb)
    assert (a.steps, a.killed, a.recruited, a.macrophages_recruited) == \
        (b.steps, b.killed, b.recruited, b.macrophages_recruited)
    assert a.treatment == b.treatment


@pytest.fixture(scope="module")
def straight():
    """The straight runs, by (lag, threads)."""
    cache = {}

    def get(lag: int, threads: int) -> NeutroModel:
        if (lag, threads) not in cache:
            cache[lag, threads] = run_steps(NeutroModel(small_params(lag), rng=5,
                                                        threads=threads), STEPS)
        return cache[lag, threads]
    return get


@pytest.mark.parametrize("lag", [1, 0])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("split", [17, 30])  # before and after the intervention's start
def test_split_run_equals_straight_run(straight, lag, threads, split):
    """Saved at step ``split`` (off the record schedule: the saved run recorded there only
    because it ended there), loaded with the other thread count, run on to the end."""
    first = run_steps(NeutroModel(small_params(lag), rng=5, threads=threads), split)
    assert first.treatment.started == (split >= 24)
    model = load_checkpoint(checkpoint_bytes(first), threads=3 - threads)
    assert model.steps == split and model.running
    run_steps(model, STEPS)
    assert_same_run(straight(lag, threads), model)


CONTINUE = """
import sys, numpy as np
from sim.runs.checkpoint import load_checkpoint
from sim.runs.snapshot import final_state
m = load_checkpoint(sys.argv[1], threads=2)
while m.running:
    m.step()
np.savez(sys.argv[2], **final_state(m))
m.datacollector.get_model_vars_dataframe().to_pickle(sys.argv[3])
"""


def test_loaded_in_a_new_process(straight, tmp_path):
    """Saved here, loaded and run on in another Python process."""
    first = run_steps(NeutroModel(small_params(1), rng=5, threads=1), 12)
    path = save_checkpoint(first, tmp_path / "c.npz")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", CONTINUE, str(path), str(tmp_path / "f.npz"),
                    str(tmp_path / "t.pkl")], check=True, env=env, cwd=tmp_path)
    import pandas as pd

    other = np.load(tmp_path / "f.npz")
    mine = final_state(straight(1, 1))
    assert sorted(other.files) == sorted(mine)
    for key in mine:
        assert np.array_equal(other[key], mine[key]), key
    assert pd.read_pickle(tmp_path / "t.pkl").equals(
        straight(1, 1).datacollector.get_model_vars_dataframe())


def test_checkpoint_holds_no_pickle_and_the_same_state_gives_the_same_bytes():
    model = run_steps(NeutroModel(small_params(), rng=2, threads=1), 10)  # on the schedule
    data = checkpoint_bytes(model)
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:  # no object arrays
        header = json.loads(npz["header"].tobytes())
    assert header["format_version"] == ckpt.FORMAT_VERSION and header["step"] == 10
    assert checkpoint_bytes(load_checkpoint(data)) == data


def test_mesa_side_after_restore_mirrors_the_arrays():
    """A model whose Mesa side was built, restored into an earlier state (its agents
    replaced) and loaded anew: in both the Mesa side equals the arrays, and stepping on
    keeps it so."""
    model = NeutroModel(small_params(), rng=4, threads=1, mesa="eager")
    run_steps(model, 5)
    saved = model.state()
    data = checkpoint_bytes(model)
    run_steps(model, 20)
    model.restore(saved)
    assert not model.mesa_built  # rebuilt when read
    assert_arrays_match_agents(model)
    loaded = load_checkpoint(data, mesa="eager")
    assert_arrays_match_agents(loaded)
    for m in (model, loaded):
        run_steps(m, 10)
        assert_arrays_match_agents(m)
    assert_same_run(model, loaded)


def test_branch_with_other_intervention_before_its_start():
    """A pre-treatment state continued with another arm's intervention equals that arm
    run straight (same seed); after the start, or starting before the checkpoint, refused."""
    control = load_params(overrides={**SMALL, "time.days": STEPS * DT_DAYS})
    depleted = small_params()
    pre = run_steps(NeutroModel(control, rng=5, threads=1), 17)
    arm = load_checkpoint(checkpoint_bytes(pre), params=depleted)
    run_steps(arm, STEPS)
    assert_same_run(run_steps(NeutroModel(depleted, rng=5, threads=1), STEPS), arm)
    untreated = control.replace({"intervention.start_day": 1.0})  # not started at step 30
    late = run_steps(NeutroModel(untreated, rng=5, threads=1), 30)
    with pytest.raises(ParameterError, match="intervention.start_day .* before the checkpoint"):
        load_checkpoint(checkpoint_bytes(late), params=depleted)
    treated = checkpoint_bytes(run_steps(NeutroModel(depleted, rng=5, threads=1), 30))
    with pytest.raises(ParameterError, match="intervention had started"):
        load_checkpoint(treated, params=control.replace({"intervention.start_day": 1.0}))


# ------------------------------------------------------------------ refusals
def rewritten(data: bytes, **header) -> bytes:
    """The checkpoint ``data`` with header values replaced."""
    from sim.runs.output import write_npz

    with np.load(io.BytesIO(data)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    head = json.loads(arrays["header"].tobytes())
    head.update(header)
    arrays["header"] = np.frombuffer(json.dumps(head).encode(), np.uint8)
    buf = io.BytesIO()
    write_npz(buf, arrays)
    return buf.getvalue()


@pytest.fixture(scope="module")
def saved():
    return checkpoint_bytes(run_steps(NeutroModel(small_params(), rng=1, threads=1), 10))


def test_refuses_other_versions(saved):
    with pytest.raises(ParameterError, match="format version 2; this neutrosim reads version 1"):
        load_checkpoint(rewritten(saved, format_version=2))
    with pytest.raises(ParameterError, match=r"written by neutrosim 0\.0\.1, this is neutrosim "
                       + ckpt.neutrosim_version().replace(".", r"\.")):
        load_checkpoint(rewritten(saved, neutrosim_version="0.0.1"))


def test_refuses_other_parameters_naming_them(saved):
    other = small_params(**{"tumor.cycle_rate_per_min": 0.0123, "domain.nx": 61})
    with pytest.raises(ParameterError, match=r"differ from the checkpoint's in domain\.nx "
                       r"\(checkpoint 60, given 61\); tumor\.cycle_rate_per_min"):
        load_checkpoint(saved, params=other)
    load_checkpoint(saved, params=small_params(**{"time.days": 1.0}))  # the end may differ


def test_refuses_a_missing_corrupt_or_foreign_file(saved, tmp_path):
    with pytest.raises(ParameterError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.npz")
    (tmp_path / "cut.npz").write_bytes(saved[: len(saved) // 2])
    with pytest.raises(ParameterError, match="cut.npz: not a readable neutrosim checkpoint"):
        load_checkpoint(tmp_path / "cut.npz")
    flipped = bytearray(saved)
    flipped[len(saved) // 3] ^= 0xFF
    with pytest.raises(ParameterError, match="not a readable neutrosim checkpoint"):
        load_checkpoint(bytes(flipped))
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ParameterError, match="not a readable neutrosim checkpoint"):
        load_checkpoint(tmp_path / "other.npz")
    with pytest.raises(ParameterError, match="do not match their digest"):
        load_checkpoint(rewritten(saved, params_digest="0" * 16))


def test_refuses_an_end_before_the_checkpoint(saved):
    with pytest.raises(ParameterError, match=r"ends before the checkpoint's time"):
        load_checkpoint(saved, days=5 * DT_DAYS)


# ------------------------------------------------------------------ the command line
TINY = ["--grid", "60", "60", "--set", "initial.tumor_radius_um=200", "--set",
        "intervention.start_day=0.3", "--scenario", "depletion", "--record-every", "1",
        "--threads", "1", "--quiet"]


def test_cli_run_killed_after_a_checkpoint_resumes_to_identical_files(tmp_path):
    """``run --checkpoint-every`` killed with SIGKILL after its first checkpoint, resumed
    from it: timeseries.csv and final_state.npz byte-identical to the uninterrupted run's;
    the manifest names the checkpoint."""
    days, every = "3", "0.1"
    ck = tmp_path / "ck"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "sim", "run", "--days", days, "--out",
                             str(tmp_path / "killed"), "--checkpoint-every", every,
                             "--checkpoint-dir", str(ck), *TINY], env=env, cwd=tmp_path,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(ck.glob("checkpoint_day*.npz")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert not (tmp_path / "killed").exists()
    first = sorted(ck.glob("checkpoint_day*.npz"))[-1]
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    assert main(["run", "--resume-from", str(first), "--days", days, "--out", str(resumed),
                 "--threads", "2", "--quiet"]) == 0
    assert main(["run", "--days", days, "--out", str(straight), *TINY]) == 0
    for name in ("timeseries.csv", "final_state.npz"):
        assert (resumed / name).read_bytes() == (straight / name).read_bytes(), name
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert manifest["resumed_from"]["checkpoint"] == str(first)
    assert manifest["seed"] == 1 and manifest["parameters"]["time"]["days"] == float(days)
    assert manifest["field_threads_steps"] == {"2": manifest["steps"] - manifest["resumed_from"]["step"]}


def test_cli_writes_checkpoints_beside_out_by_default(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--days", "0.2", "--out", str(out), "--checkpoint-every", "0.1",
                 *TINY]) == 0
    names = sorted(p.name for p in (tmp_path / "run.checkpoints").iterdir())
    assert names == ["checkpoint_day0000.1000.npz", "checkpoint_day0000.2000.npz"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["timeseries.csv", "timeseries.parquet", "final_state.npz", "final_state.png",
         "manifest.json"])


def test_cli_refusals(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--days", "0.1", "--out", str(out), "--checkpoint-every", "0.1",
                 *TINY]) == 0
    ck = tmp_path / "run.checkpoints" / "checkpoint_day0000.1000.npz"
    cases = [
        (["--resume-from", str(ck), "--days", "0.05"], "--days 0.05: not after the checkpoint's time"),
        (["--resume-from", str(ck), "--days", "0.1"], "--days 0.1: not after the checkpoint's time"),
        (["--resume-from", str(ck), "--set", "tumor.cycle_rate_per_min=0.01", "--seed", "2"],
         "--resume-from takes the parameters and seed from the checkpoint; drop --set, --seed"),
        (["--resume-from", str(tmp_path / "nothing.npz")], "nothing.npz: checkpoint not found"),
        (["--checkpoint-every", "0.1", "--checkpoint-dir", str(tmp_path / "x" / "ck"),
          "--days", "0.2"], "inside --out"),
        (["--checkpoint-dir", str(tmp_path / "ck")], "give --checkpoint-every DAYS too"),
        (["--checkpoint-every", "0.0001"], "must be at least one model step"),
    ]
    for extra, message in cases:
        target = tmp_path / "x"
        assert main(["run", "--out", str(target), "--quiet", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not target.exists()
